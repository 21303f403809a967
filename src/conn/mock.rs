//! A test double for [`Connection`]: one end of an in-memory pipe
//! (`tokio::io::duplex`), with the `poll_read_ready`/`try_read_buf` pair
//! the services wait with. The test holds the other end, so it can send bytes
//! at chosen (paused-clock) times, stop reading to fill the pipe, or close.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::conn::Connection;

/// The server's end of a mock connection.
#[derive(Debug, Clone)]
pub(crate) struct MockConn {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    pipe: DuplexStream,
    /// Bytes read from the pipe but not yet taken by the service.
    pending: BytesMut,
    eof: bool,
}

/// A connected pair: the service's [`MockConn`] and the client's end.
/// `pipe_bytes` is how much each direction holds before a write blocks.
pub(crate) fn pair(pipe_bytes: usize) -> (MockConn, DuplexStream) {
    let (server, client) = tokio::io::duplex(pipe_bytes);
    let conn = MockConn {
        inner: Arc::new(Mutex::new(Inner {
            pipe: server,
            pending: BytesMut::new(),
            eof: false,
        })),
    };
    (conn, client)
}

impl Inner {
    /// Fills `pending` from the pipe; ready once there are bytes or EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() || self.eof {
            return Poll::Ready(Ok(()));
        }
        let mut chunk = [0u8; 4096];
        let mut read = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.pipe).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                if read.filled().is_empty() {
                    self.eof = true;
                } else {
                    self.pending.extend_from_slice(read.filled());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Connection for MockConn {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.lock().unwrap().poll_fill(cx)
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut inner = self.inner.lock().unwrap();
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        let _ = inner.poll_fill(&mut cx);
        if inner.pending.is_empty() {
            return if inner.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = inner.pending.len().min(buf.capacity() - buf.len());
        buf.put_slice(&inner.pending[..n]);
        inner.pending.advance(n);
        Ok(n)
    }
}

/// A waker for polls whose wake-up nobody waits for (`try_read_buf`
/// never waits; `poll_read_ready` registers the task's own waker again).
fn futures_noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    std::task::Waker::from(Arc::new(Noop))
}

impl AsyncRead for MockConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.inner.lock().unwrap();
        if !inner.pending.is_empty() {
            let n = inner.pending.len().min(buf.remaining());
            buf.put_slice(&inner.pending[..n]);
            inner.pending.advance(n);
            return Poll::Ready(Ok(()));
        }
        if inner.eof {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut inner.pipe).poll_read(cx, buf)
    }
}

impl AsyncWrite for MockConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner.lock().unwrap().pipe).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner.lock().unwrap().pipe).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner.lock().unwrap().pipe).poll_shutdown(cx)
    }
}
