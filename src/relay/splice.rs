//! Zero-copy forwarding with `splice(2)`: socket → pipe → socket, the bytes
//! never entering user space.
//!
//! `splice` moves data between a pipe and another descriptor by passing
//! page references, so a relay direction is two system calls per chunk and
//! no copy through a user buffer. Each direction of a pair has its own
//! pipe; per chunk:
//! 1. wait until the source socket is readable, then `splice` up to
//!    [`CHUNK`] bytes from it into the (empty) pipe, non-blocking
//!    (`SPLICE_F_NONBLOCK`); `EAGAIN` means the readiness was stale: clear
//!    it and wait again; 0 means end of stream;
//! 2. `splice` from the pipe into the destination socket until the pipe is
//!    empty again, waiting for writability whenever it says `EAGAIN`.
//!
//! The pipe is empty whenever step 1 runs, so the pipe itself never
//! blocks and needs no registration with the reactor. Linux splices from
//! and to TCP and Unix stream sockets; other pairs use the buffered copy.
//!
//! Everything here goes through nix's safe wrappers: no `unsafe`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use tokio::io::Interest;

use super::pair::Progress;

/// Most bytes per `splice(2)` from a socket: 64 KiB, the default pipe
/// capacity on Linux (16 pages), so one splice can fill the pipe.
pub const CHUNK: usize = 64 * 1024;

/// A socket `splice(2)` can read from and write to.
#[derive(Debug, Clone, Copy)]
pub enum Spliceable<'a> {
    /// A TCP stream.
    Tcp(&'a tokio::net::TcpStream),
    /// A Unix stream socket.
    Unix(&'a tokio::net::UnixStream),
}

impl Spliceable<'_> {
    async fn ready(&self, interest: Interest) -> io::Result<()> {
        match self {
            Spliceable::Tcp(s) => s.ready(interest).await.map(drop),
            Spliceable::Unix(s) => s.ready(interest).await.map(drop),
        }
    }

    /// Runs `f` as an I/O operation of `interest` on the socket, clearing
    /// the readiness tokio holds when it returns `WouldBlock`.
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Spliceable::Tcp(s) => s.try_io(interest, f),
            Spliceable::Unix(s) => s.try_io(interest, f),
        }
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Spliceable::Tcp(s) => s.as_fd(),
            Spliceable::Unix(s) => s.as_fd(),
        }
    }

    /// `shutdown(SHUT_WR)`: the peer reads end of stream.
    fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }
}

impl AsFd for Spliceable<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        Spliceable::as_fd(self)
    }
}

/// One direction's pipe: `pipe2(O_CLOEXEC | O_NONBLOCK)`.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    /// Opens a pipe.
    ///
    /// # Errors
    ///
    /// The `pipe2` error (`EMFILE` when out of descriptors).
    pub(crate) fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Pipe { read, write })
    }
}

/// Moves everything from `from` to `to` through `pipe` (see the [module
/// docs](self)), then shuts down `to`'s write side. Counts the bytes in
/// `counter` through `progress`.
///
/// # Errors
///
/// The first error of either socket or of `splice` itself.
pub(crate) async fn copy(
    from: Spliceable<'_>,
    to: Spliceable<'_>,
    pipe: &Pipe,
    counter: &AtomicU64,
    progress: &Progress,
) -> io::Result<()> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        from.ready(Interest::READABLE).await?;
        let filled = from.try_io(Interest::READABLE, || {
            Ok(splice(from, None, &pipe.write, None, CHUNK, flags)?)
        });
        let n = match filled {
            Ok(0) => {
                return match to.shutdown_write() {
                    // The other side is already gone: nothing to tell it.
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
                    other => other,
                };
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        };
        let mut left = n;
        while left > 0 {
            to.ready(Interest::WRITABLE).await?;
            match to.try_io(Interest::WRITABLE, || {
                Ok(splice(&pipe.read, None, to, None, left, flags)?)
            }) {
                // The pipe holds `left` bytes, so 0 would mean a kernel bug;
                // fail rather than spin.
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        progress.moved(counter, n);
    }
}
