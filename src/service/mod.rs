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

pub mod chargen;
pub mod daytime;
pub mod discard;
pub mod echo;
pub mod hello;

pub use chargen::Chargen;
pub use daytime::Daytime;
pub use discard::Discard;
pub use echo::Echo;
pub use hello::Hello;

/// A handler for every transport: stream connections through
/// [`serve`](Service::serve), datagrams through
/// [`reply_to_datagram`](Service::reply_to_datagram).
///
/// How each transport reaches it:
///
/// | transport | method | what the service sees |
/// |---|---|---|
/// | TCP, Unix stream | `serve` | a byte stream |
/// | Unix seqpacket | `serve` | a [`Connection`] whose every read is (part of) one message and every write one message (see [`crate::seqpacket`]), so answering each read with one write answers each message with one message |
/// | UDP, Unix datagram | `reply_to_datagram` | one datagram; the reply goes back to its sender |
pub trait Service: Send + Sync + 'static {
    /// Serves one connection.
    ///
    /// Implementations must close (drop) the stream on every path and
    /// finish the request in flight when `ctx.shutdown` is cancelled, then
    /// return.
    fn serve<C: Connection>(
        &self,
        conn: C,
        ctx: ConnContext,
    ) -> impl Future<Output = ConnReport> + Send;

    /// Answers one datagram: appends the reply to `reply` (which starts
    /// empty) and returns `true` to send it, or returns `false` to send
    /// nothing. An empty reply with `true` sends an empty datagram.
    ///
    /// This runs on the datagram loop itself, once per datagram: it must not
    /// block, and it keeps no state per sender.
    ///
    /// The default sends nothing, for a service written for streams only;
    /// every service sockit ships answers datagrams.
    fn reply_to_datagram(&self, datagram: &[u8], reply: &mut Vec<u8>) -> bool {
        let _ = (datagram, reply);
        false
    }
}

/// How much a read buffer grows by. 1 KiB holds a typical request head and
/// stays within glibc's per-thread cache, so allocating it per busy period
/// is cheap.
pub(crate) const READ_CHUNK: usize = 1024;

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
/// When `buf` is empty the connection is idle (between requests):
/// 1. during shutdown, one non-blocking read tells a request whose bytes
///    reached the kernel before the signal (in flight: read it and finish
///    it) from none (idle: [`Read::Shutdown`]);
/// 2. otherwise the buffer's memory is released, and the wait for
///    readability holds no buffer, so an idle keep-alive connection costs
///    no buffer memory; a shutdown signal ends the wait (back to step 1).
///
/// When `buf` holds part of a request, the read goes on through a shutdown
/// so the request in flight can finish.
///
/// The read itself goes through `AsyncRead`: tokio clears the socket's
/// readiness when a read comes back short, which saves the `EAGAIN` read a
/// keep-alive connection would otherwise make after every request.
pub(crate) async fn read_more<C: Connection>(
    conn: &mut C,
    buf: &mut BytesMut,
    shutdown: &CancellationToken,
) -> io::Result<Read> {
    while buf.is_empty() {
        if shutdown.is_cancelled() {
            buf.reserve(READ_CHUNK);
            return match conn.try_read_buf(buf) {
                Ok(0) => Ok(Read::Eof),
                Ok(_) => Ok(Read::Data),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::Shutdown),
                Err(e) => Err(e),
            };
        }
        if buf.capacity() > 0 {
            *buf = BytesMut::new();
        }
        let waiting = &mut *conn;
        tokio::select! {
            biased;
            ready = std::future::poll_fn(move |cx| waiting.poll_read_ready(cx)) => {
                ready?;
                break;
            }
            () = shutdown.cancelled() => {}
        }
    }
    buf.reserve(READ_CHUNK);
    match conn.read_buf(buf).await {
        Ok(0) => Ok(Read::Eof),
        Ok(_) => Ok(Read::Data),
        Err(e) => Err(e),
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
///
/// The future is boxed: its timer would otherwise make every connection's
/// task state bigger, though only closing connections use it.
pub(crate) async fn linger_close<C: Connection>(conn: &mut C) {
    Box::pin(linger_close_inner(conn)).await;
}

async fn linger_close_inner<C: Connection>(conn: &mut C) {
    if conn.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        // On the heap: an array here would sit in every connection's task
        // state, idle or not, since a future is as big as its largest await.
        let mut sink = vec![0u8; 4096];
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
