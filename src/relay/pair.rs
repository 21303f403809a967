//! A relayed pair: two streams joined until both directions have ended.
//!
//! The rules, the same for every transport:
//! 1. end of stream from one side (its FIN) becomes `shutdown(SHUT_WR)` on
//!    the other, and the opposite direction keeps flowing: a client that
//!    half-closes after its request still gets the whole reply;
//! 2. once both directions have ended, both sockets are closed normally;
//! 3. an error on either side (a reset, a failed write) ends the pair at
//!    once, and both sockets are closed with `SO_LINGER` 0, so the other
//!    peer sees a reset too, not a clean end that would pass truncated data
//!    off as whole;
//! 4. no byte moving either way for the idle timeout ends the pair, with a
//!    normal close.
//!
//! TCP and Unix stream sockets are joined with `splice(2)` (see
//! [`super::splice`]); every other pair is copied through a buffer per
//! direction by tokio's `copy_bidirectional`, which keeps rule 1.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::exec::ExecStream;
use super::splice::{self, Spliceable};
use crate::seqpacket::SeqPacketStream;

/// Bytes per read of the buffered copy, per direction: 64 KiB, as the
/// netcat bridge ([`crate::bridge::DEFAULT_CHUNK`]) measured best.
pub const BUFFER: usize = 64 * 1024;

/// A stream a relay can join to another: every stream a relay accepts or
/// opens.
pub trait RelayStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The socket, when the kernel can move its bytes with `splice(2)`.
    fn spliceable(&self) -> Option<Spliceable<'_>> {
        None
    }

    /// Makes the close that follows send a reset, corresponding to
    /// `SO_LINGER` with a zero timeout. Does nothing where the transport has
    /// no reset.
    fn set_reset_on_close(&self) {}

    /// The local IP address and port, corresponding to `getsockname(2)`,
    /// for the destination of a PROXY header.
    fn local_inet(&self) -> Option<SocketAddr> {
        None
    }
}

fn set_zero_linger(socket: socket2::SockRef<'_>) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}

impl RelayStream for tokio::net::TcpStream {
    fn spliceable(&self) -> Option<Spliceable<'_>> {
        Some(Spliceable::Tcp(self))
    }

    fn set_reset_on_close(&self) {
        set_zero_linger(socket2::SockRef::from(self));
    }

    fn local_inet(&self) -> Option<SocketAddr> {
        self.local_addr().ok()
    }
}

impl RelayStream for tokio::net::UnixStream {
    fn spliceable(&self) -> Option<Spliceable<'_>> {
        Some(Spliceable::Unix(self))
    }
}

impl RelayStream for SeqPacketStream {}

impl RelayStream for ExecStream {}

/// Bytes moved each way, and when anything last moved.
#[derive(Debug)]
pub(crate) struct Progress {
    start: Instant,
    /// Client → upstream.
    pub(crate) up: AtomicU64,
    /// Upstream → client.
    pub(crate) down: AtomicU64,
    /// Milliseconds from `start` to the last move.
    last_ms: AtomicU64,
    /// Whether the pair was joined with `splice(2)`.
    spliced: AtomicBool,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            start: Instant::now(),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            spliced: AtomicBool::new(false),
        }
    }

    /// Counts `n` bytes moved on `counter` (`up` or `down`).
    pub(crate) fn moved(&self, counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long nothing has moved.
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// How the bytes moved: `splice` or `buffered`.
    pub(crate) fn copy_mode(&self) -> &'static str {
        if self.spliced.load(Ordering::Relaxed) {
            "splice"
        } else {
            "buffered"
        }
    }

    /// How long the pair has existed.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Resolves once nothing has moved for `limit` (never, for
    /// `Duration::MAX`). The timer is moved only when it fires, not per
    /// chunk: a busy pair costs no timer work.
    async fn idle(&self, limit: Duration) {
        if limit == Duration::MAX {
            return std::future::pending().await;
        }
        loop {
            let quiet = self.quiet_for();
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// How a pair ended.
#[derive(Debug)]
pub enum PairEnd {
    /// Both directions reached end of stream.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// One side failed (a reset, a write to a closed peer); both were reset.
    Reset(io::Error),
}

impl std::fmt::Display for PairEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairEnd::Closed => f.write_str("closed"),
            PairEnd::Idle => f.write_str("idle timeout"),
            PairEnd::Reset(err) => write!(f, "reset ({err})"),
        }
    }
}

/// Joins `client` and `upstream` until the pair ends (see the [module
/// docs](self)), counting bytes in `progress`. The caller closes both.
pub(crate) async fn join<A: RelayStream, B: RelayStream>(
    client: &mut A,
    upstream: &mut B,
    idle: Duration,
    progress: &Progress,
) -> PairEnd {
    let copied = match (client.spliceable(), upstream.spliceable()) {
        (Some(a), Some(b)) => match (splice::Pipe::new(), splice::Pipe::new()) {
            (Ok(up_pipe), Ok(down_pipe)) => {
                progress.spliced.store(true, Ordering::Relaxed);
                let both = async {
                    tokio::try_join!(
                        splice::copy(a, b, &up_pipe, &progress.up, progress),
                        splice::copy(b, a, &down_pipe, &progress.down, progress),
                    )
                };
                Some(tokio::select! {
                    copied = both => copied.map(drop),
                    () = progress.idle(idle) => return PairEnd::Idle,
                })
            }
            // Out of descriptors for pipes: copy through buffers instead.
            (Err(err), _) | (_, Err(err)) => {
                tracing::debug!(%err, "no pipe for splice; copying through buffers");
                None
            }
        },
        _ => None,
    };
    let copied = match copied {
        Some(copied) => copied,
        None => {
            let mut a = Counted {
                inner: &mut *client,
                progress,
                counter: &progress.up,
            };
            let mut b = Counted {
                inner: &mut *upstream,
                progress,
                counter: &progress.down,
            };
            tokio::select! {
                copied = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUFFER, BUFFER) => copied.map(drop),
                () = progress.idle(idle) => return PairEnd::Idle,
            }
        }
    };
    match copied {
        Ok(()) => PairEnd::Closed,
        Err(err) => {
            client.set_reset_on_close();
            upstream.set_reset_on_close();
            PairEnd::Reset(err)
        }
    }
}

/// A stream whose reads count towards `counter` (bytes read from a side
/// are bytes moved in its direction).
struct Counted<'a, S> {
    inner: &'a mut S,
    progress: &'a Progress,
    counter: &'a AtomicU64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.progress.moved(self.counter, n);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

impl<Io: RelayStream> RelayStream for crate::tls::TlsConn<tokio_rustls::server::TlsStream<Io>> {
    // No splice: the bytes must go through rustls.
    fn set_reset_on_close(&self) {
        self.with_stream(|tls| tls.get_ref().0.set_reset_on_close());
    }

    fn local_inet(&self) -> Option<SocketAddr> {
        self.with_stream(|tls| tls.get_ref().0.local_inet())
    }
}
