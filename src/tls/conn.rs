//! A TLS stream as the [`Connection`] that [`Conn`](crate::conn::Conn) drives.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::Connection;

/// Plaintext read while only readiness was asked for; larger than one
/// typical request head, smaller than one TLS record (16 KiB), so a bigger
/// record stays decrypted inside rustls until the next read.
const READY_CHUNK: usize = 4096;

/// A TLS stream (client or server side) that [`Conn`](crate::conn::Conn)
/// can drive: readiness means decrypted bytes (or the end), not bytes on
/// the socket, since a socket can be readable with half a record on it.
///
/// [`Connection`]'s readiness methods take `&self` while rustls needs
/// `&mut` to decrypt, hence the mutex; the read and write paths go through
/// `Pin<&mut Self>` and never lock.
#[derive(Debug)]
pub struct TlsConn<S: AsyncWrite + Unpin> {
    state: Mutex<State<S>>,
}

#[derive(Debug)]
struct State<S> {
    stream: S,
    /// Plaintext decrypted by a readiness poll, handed out first by the
    /// next read; empty (no allocation) otherwise.
    pending: BytesMut,
}

impl<S: AsyncWrite + Unpin> TlsConn<S> {
    /// Wraps an established TLS stream.
    pub fn new(stream: S) -> TlsConn<S> {
        TlsConn {
            state: Mutex::new(State {
                stream,
                pending: BytesMut::new(),
            }),
        }
    }

    /// The TLS stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.state_mut().stream
    }

    /// Runs `f` on the TLS stream, from a `&self`.
    pub(crate) fn with_stream<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stream)
    }

    fn state_mut(&mut self) -> &mut State<S> {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S> State<S> {
    /// Moves what the readiness poll decrypted into `buf`.
    fn drain_pending(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        if self.pending.is_empty() {
            // Free the buffer: an idle connection holds none.
            self.pending = BytesMut::new();
        }
        true
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsConn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let state = self.get_mut().state_mut();
        if state.drain_pending(buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut state.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsConn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().state_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().state_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().state_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().state_mut().stream).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for TlsConn<S> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        // Decrypting is the only way to know whether a whole record is
        // there; the chunk lives on the stack, not in the idle task.
        let mut chunk = [0u8; READY_CHUNK];
        let mut read = ReadBuf::new(&mut chunk);
        match Pin::new(&mut state.stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                // Nothing read is the end of the stream: ready, and the
                // next read returns 0 again.
                state.pending.extend_from_slice(read.filled());
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.pending.is_empty() {
            let pending = std::mem::take(&mut state.pending);
            buf.extend_from_slice(&pending);
            return Ok(pending.len());
        }
        // Without waiting: a no-op waker, and `Pending` is `WouldBlock`; the
        // caller's next readiness poll registers its real waker again.
        let mut cx = Context::from_waker(noop_waker());
        match tokio_util::io::poll_read_buf(Pin::new(&mut state.stream), &mut cx, buf) {
            Poll::Ready(read) => read,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Services close by dropping their connection: send TLS's close_notify
/// then (RFC 8446 §6.1), without waiting, so the peer can tell the end of
/// the data from a cut connection. A full send buffer drops the alert; the
/// peer then sees an EOF without it, as from any abrupt close.
impl<S: AsyncWrite + Unpin> Drop for TlsConn<S> {
    fn drop(&mut self) {
        let state = self.state_mut();
        let mut cx = Context::from_waker(noop_waker());
        let _ = Pin::new(&mut state.stream).poll_shutdown(&mut cx);
    }
}

/// A waker that does nothing (`Waker::noop` is newer than this crate's
/// minimum Rust), made once.
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}
