//! Services: what a server does with each connection. One trait, one file
//! per service; every transport runs every service through the same
//! accept loop.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::conn::{ConnContext, ConnReport, Connection};

pub mod hello;

pub use hello::Hello;

/// A connection handler: given an accepted stream, serve it until it ends.
///
/// Implementations must close (drop) the stream on every path and finish
/// the request in flight when `ctx.shutdown` is cancelled, then return.
pub trait Service: Send + Sync + 'static {
    /// Serves one connection.
    fn serve<C: Connection>(
        &self,
        conn: C,
        ctx: ConnContext,
    ) -> impl Future<Output = ConnReport> + Send;
}

/// How much a read buffer grows by.
pub(crate) const READ_CHUNK: usize = 4096;

/// The outcome of [`read_more`].
#[derive(Debug)]
pub(crate) enum Read {
    /// Bytes were appended.
    Data,
    /// The peer closed its write side.
    Eof,
    /// The server is shutting down and the connection was idle.
    Shutdown,
}

/// Appends the next bytes from `conn` to `buf`.
///
/// When `buf` is empty the connection is idle (between requests): the
/// buffer's memory is released while waiting, and a shutdown ends the wait.
/// When `buf` holds part of a request, the read goes on through a shutdown
/// so the request in flight can finish.
pub(crate) async fn read_more<C: Connection>(
    conn: &mut C,
    buf: &mut BytesMut,
    shutdown: &CancellationToken,
) -> io::Result<Read> {
    loop {
        if buf.is_empty() {
            // Try first without waiting: under load the next request is
            // usually already here, and during shutdown a request whose
            // bytes reached the kernel before the signal is in flight, not
            // idle, so it is read and finished.
            if buf.capacity() > 0 || shutdown.is_cancelled() {
                // On an emptied buffer this reclaims its space, no allocation.
                buf.reserve(READ_CHUNK);
                match conn.try_read_buf(buf) {
                    Ok(0) => return Ok(Read::Eof),
                    Ok(_) => return Ok(Read::Data),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if shutdown.is_cancelled() {
                    return Ok(Read::Shutdown);
                }
                // Idle: give the buffer back while we wait.
                *buf = BytesMut::new();
            }
            tokio::select! {
                biased;
                ready = conn.readable() => ready?,
                // Loop once more: the try above tells in-flight from idle.
                () = shutdown.cancelled() => continue,
            }
        } else {
            conn.readable().await?;
        }
        buf.reserve(READ_CHUNK);
        match conn.try_read_buf(buf) {
            Ok(0) => return Ok(Read::Eof),
            Ok(_) => return Ok(Read::Data),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// How long a closing connection may keep sending before it is dropped.
const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection may send before it is dropped.
const LINGER_BYTES: usize = 1 << 20;

/// Closes the write side, then reads and discards what the peer still
/// sends, until it closes too (or [`LINGER`] passes).
///
/// Closing a socket whose receive queue holds unread bytes makes the kernel
/// send RST instead of FIN, and a RST can destroy the response the peer has
/// not read yet. Draining first (nginx's "lingering close") lets the
/// response arrive.
pub(crate) async fn linger_close<C: Connection>(conn: &mut C) {
    if conn.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match conn.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Whether an I/O error is the peer going away, which is routine for a
/// server and not worth an error count.
pub(crate) fn is_peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}
