//! What a service is handed for each accepted connection: [`Conn`], the
//! socket behind the connection's timeouts and write queue, with the peer's
//! address and the server's shutdown signal.
//!
//! - `handle.rs`: [`Conn`], the only way a service reaches its socket
//! - [`limits`]: [`ConnLimits`], the bounds every connection is held to
//! - `clock.rs`: which timeout applies to each wait, and the one timer

use std::fmt;
use std::io;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

mod clock;
mod handle;
pub mod limits;
#[cfg(test)]
pub(crate) mod mock;

pub use clock::Timeout;
pub(crate) use handle::Env;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use handle::READ_CHUNK;
pub use handle::{is_routine_end, Conn, Read};
pub use limits::ConnLimits;

/// A connected stream socket, as [`Conn`] drives it.
///
/// Besides `AsyncRead`/`AsyncWrite`, a service can wait for readability
/// without holding a buffer ([`Connection::poll_read_ready`] then a read):
/// an idle keep-alive connection then costs no buffer memory at all.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Polls until a read would not block (data, end of stream, or an
    /// error).
    ///
    /// A poll function rather than an `async fn`: its waker lives in the
    /// socket's reactor entry, so waiting adds nothing to the task's state
    /// (tokio's `readable()` future is 152 bytes, in every idle connection).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Reads what is ready into `buf`'s spare capacity, without waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is ready; otherwise as `recv(2)`.
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
}

impl Connection for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        tokio::net::TcpStream::try_read_buf(self, buf)
    }
}

impl Connection for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::UnixStream::poll_read_ready(self, cx)
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        tokio::net::UnixStream::try_read_buf(self, buf)
    }
}

/// The address of the peer of a connection, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// An IPv4 or IPv6 peer.
    Inet(std::net::SocketAddr),
    /// A Unix-domain peer; usually unnamed, shown as `unix:<unnamed>`.
    Unix(Option<String>),
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Inet(addr) => write!(f, "{addr}"),
            PeerAddr::Unix(Some(name)) => write!(f, "unix:{name}"),
            PeerAddr::Unix(None) => write!(f, "unix:<unnamed>"),
        }
    }
}

/// What a service reports when a connection ends, for the server's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnReport {
    /// Requests (or messages) answered.
    pub requests: u64,
    /// Whether the connection ended in an error (bad request, I/O error).
    pub error: bool,
}
