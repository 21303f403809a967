//! The file a Unix socket server binds: cleared when stale, refused when it
//! is anything else, removed when the server stops.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tracing::{debug, info};

use crate::endpoint::UnixAddr;
use crate::socket::{self, UnixType};
use crate::{Error, Result};

/// A socket file this server created; dropping it removes the file, but
/// only while the path still holds that same file (a server started after
/// us on the same path keeps its own).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file `bind(2)` created.
    id: (u64, u64),
}

impl SocketFile {
    /// Records the file just bound at `path`.
    ///
    /// # Errors
    ///
    /// The `stat(2)` error.
    pub fn bound(path: &Path) -> std::io::Result<SocketFile> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// The socket file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.id => {
                match std::fs::remove_file(&self.path) {
                    Ok(()) => debug!(path = %self.path.display(), "removed socket file"),
                    Err(err) => {
                        debug!(path = %self.path.display(), %err, "cannot remove socket file")
                    }
                }
            }
            _ => debug!(path = %self.path.display(), "socket file replaced or gone; left alone"),
        }
    }
}

/// Binds a Unix socket of type `ty` at `addr` with `bind`, first clearing a
/// stale socket file (see [`socket::remove_stale_socket_file`]), and returns
/// it with the guard for its file (`None` for an abstract name).
///
/// # Errors
///
/// [`Error::Bind`] naming the endpoint: a live server there, a path that
/// is not a socket, or the OS error of binding.
pub(crate) fn bind_unix<T>(
    ty: UnixType,
    endpoint: &str,
    addr: &UnixAddr,
    bind: impl FnOnce() -> std::io::Result<T>,
) -> Result<(T, Option<SocketFile>)> {
    let err = |source| Error::Bind {
        addr: endpoint.to_owned(),
        source,
    };
    let UnixAddr::Path(path) = addr else {
        return Ok((bind().map_err(err)?, None));
    };
    if socket::remove_stale_socket_file(path, ty).map_err(err)? {
        info!("removed stale socket file {}", path.display());
    }
    let bound = bind().map_err(err)?;
    let file = SocketFile::bound(path).map_err(err)?;
    Ok((bound, Some(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_removes_only_the_file_it_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let first = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let guard = SocketFile::bound(&path).unwrap();
        drop(guard);
        assert!(!path.exists(), "our own file is removed");
        drop(first);

        // Another server took the path over after us: its file stays.
        let _old = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let guard = SocketFile::bound(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let _new = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        drop(guard);
        assert!(path.exists(), "a newer server's file was removed");
    }
}
