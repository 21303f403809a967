//! Unix `SOCK_SEQPACKET` sockets for tokio, which has no type for them:
//! a socket2 [`Socket`] registered with the reactor through [`AsyncFd`].
//!
//! Seqpacket is connected and reliable like a stream, but keeps message
//! boundaries like datagrams. sockit keeps them too:
//!
//! - [`SeqPacketStream::send`] and every `AsyncWrite` write send exactly one
//!   message (`send(2)` on seqpacket is all or nothing), so `write_all`
//!   is one message;
//! - [`SeqPacketStream::recv_message`] and [`Connection::try_read_buf`]
//!   append exactly one whole message, however long (the buffer grows);
//! - every `AsyncRead` read returns bytes of one message, never of two. A
//!   message longer than the read buffer is kept and handed out over the
//!   following reads (no byte is lost, unlike `recv(2)`, which drops the
//!   rest).
//!
//! So a service written for streams works unchanged, and one that reads
//! with `try_read_buf` and answers each read with one write (the `echo`
//! service) answers each message with exactly one message. A zero-length message reads as end of stream, as with
//! `recv(2)`, which returns 0 for both.
//!
//! Sockets are opened in [`crate::socket`] ([`seqpacket_listener`],
//! [`seqpacket_connect`]); this module only drives them.
//!
//! [`seqpacket_listener`]: crate::socket::seqpacket_listener
//! [`seqpacket_connect`]: crate::socket::seqpacket_connect

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use nix::sys::socket::MsgFlags;
use socket2::{SockAddr, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::conn::Connection;

/// Registers `socket` with the tokio reactor for `interest`.
#[allow(unsafe_code)]
fn register(socket: Socket, interest: Interest) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `AsyncFd::register_with_interest` needs the descriptor to stay
    // open and the same for the `AsyncFd`'s whole life. The `Socket` is moved
    // in and owns its descriptor: nothing else can close it, and
    // `Socket::as_raw_fd` always returns that one descriptor.
    unsafe { AsyncFd::register_with_interest(socket, interest) }.map_err(io::Error::from)
}

/// A listening Unix `SOCK_SEQPACKET` socket.
#[derive(Debug)]
pub struct SeqPacketListener {
    io: AsyncFd<Socket>,
}

impl SeqPacketListener {
    /// Wraps a bound, listening, non-blocking socket.
    pub(crate) fn new(socket: Socket) -> io::Result<SeqPacketListener> {
        Ok(SeqPacketListener {
            io: register(socket, Interest::READABLE)?,
        })
    }

    /// Accepts one connection, corresponding to `accept4(2)` with
    /// `SOCK_CLOEXEC`; the new socket is then made non-blocking.
    ///
    /// # Errors
    ///
    /// The `accept4` error (see the accept loop for which are transient).
    pub async fn accept(&self) -> io::Result<(SeqPacketStream, SockAddr)> {
        let (socket, peer) = self
            .io
            .async_io(Interest::READABLE, |socket| socket.accept())
            .await?;
        socket.set_nonblocking(true)?;
        Ok((SeqPacketStream::new(socket)?, peer))
    }

    /// The bound address, corresponding to `getsockname(2)`.
    ///
    /// # Errors
    ///
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<SockAddr> {
        self.io.get_ref().local_addr()
    }
}

/// A connected Unix `SOCK_SEQPACKET` socket. See the [module docs](self)
/// for how messages map onto reads and writes.
#[derive(Debug)]
pub struct SeqPacketStream {
    io: AsyncFd<Socket>,
    /// The unread tail of a message longer than the last `AsyncRead` buffer.
    rest: Mutex<BytesMut>,
}

impl SeqPacketStream {
    /// Wraps a connected, non-blocking socket.
    pub(crate) fn new(socket: Socket) -> io::Result<SeqPacketStream> {
        Ok(SeqPacketStream {
            io: register(socket, Interest::READABLE | Interest::WRITABLE)?,
            rest: Mutex::new(BytesMut::new()),
        })
    }

    fn rest(&self) -> MutexGuard<'_, BytesMut> {
        // A panic elsewhere cannot leave the buffer half-updated.
        self.rest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves the kept tail of a message, if any, onto the end of `buf`.
    fn take_rest(&self, buf: &mut BytesMut) -> Option<usize> {
        let mut rest = self.rest();
        if rest.is_empty() {
            return None;
        }
        let n = rest.len();
        buf.extend_from_slice(&rest);
        rest.clear();
        Some(n)
    }

    /// Sends `message` as one message, corresponding to `send(2)` with
    /// `MSG_NOSIGNAL`. Returns its length.
    ///
    /// # Errors
    ///
    /// `EMSGSIZE` for a message larger than the socket's send buffer,
    /// `EPIPE` once the peer has closed, or another OS error.
    pub async fn send(&self, message: &[u8]) -> io::Result<usize> {
        self.io
            .async_io(Interest::WRITABLE, |socket| {
                send(socket.as_raw_fd(), message)
            })
            .await
    }

    /// Receives the next whole message, appending it to `buf`, and returns
    /// its length: `recv(2)` with `MSG_PEEK | MSG_TRUNC` to learn the length,
    /// then `recv(2)` of exactly that much. 0 means the peer has closed (or
    /// sent an empty message).
    ///
    /// # Errors
    ///
    /// The OS error of `recv`.
    pub async fn recv_message(&self, buf: &mut BytesMut) -> io::Result<usize> {
        if let Some(n) = self.take_rest(buf) {
            return Ok(n);
        }
        self.io
            .async_io(Interest::READABLE, |socket| {
                recv_appending(socket.as_raw_fd(), buf)
            })
            .await
    }

    /// Waits until a message can be sent.
    ///
    /// # Errors
    ///
    /// The reactor's error.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await.map(drop)
    }

    /// The peer's address, corresponding to `getpeername(2)`.
    ///
    /// # Errors
    ///
    /// The `getpeername` error.
    pub fn peer_addr(&self) -> io::Result<SockAddr> {
        self.io.get_ref().peer_addr()
    }
}

/// `send(2)` of one whole message, without `SIGPIPE`.
fn send(fd: RawFd, message: &[u8]) -> io::Result<usize> {
    Ok(nix::sys::socket::send(
        fd,
        message,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )?)
}

/// Receives the next whole message onto the end of `buf`, without waiting.
///
/// 1. `recv(MSG_PEEK | MSG_TRUNC)` into no buffer returns the message's full
///    length and leaves it queued;
/// 2. `buf` grows by that much and `recv(MSG_TRUNC)` takes the message,
///    returning its full length again, so a message that changed in between
///    (a second reader) shows up as an error instead of silent truncation.
fn recv_appending(fd: RawFd, buf: &mut BytesMut) -> io::Result<usize> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
    let len = nix::sys::socket::recv(fd, &mut [], flags | MsgFlags::MSG_PEEK)?;
    let start = buf.len();
    buf.resize(start + len, 0);
    match nix::sys::socket::recv(fd, &mut buf[start..], flags) {
        Ok(got) if got <= len => {
            buf.truncate(start + got);
            Ok(got)
        }
        Ok(got) => {
            buf.truncate(start);
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {got}-byte message was cut to {len} bytes by a concurrent reader"),
            ))
        }
        Err(errno) => {
            buf.truncate(start);
            Err(errno.into())
        }
    }
}

impl Connection for SeqPacketStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.rest().is_empty() {
            return Poll::Ready(Ok(()));
        }
        // Dropping the guard keeps the readiness: the read that follows
        // clears it if it finds nothing.
        self.io.poll_read_ready(cx).map(|ready| ready.map(drop))
    }

    /// Appends exactly one message (or the unread rest of one).
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        if let Some(n) = self.take_rest(buf) {
            return Ok(n);
        }
        self.io.try_io(Interest::READABLE, |socket| {
            recv_appending(socket.as_raw_fd(), buf)
        })
    }
}

impl AsyncRead for SeqPacketStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut rest = this.rest();
        while rest.is_empty() {
            let mut guard = ready!(this.io.poll_read_ready(cx))?;
            match guard.try_io(|socket| recv_appending(socket.get_ref().as_raw_fd(), &mut rest)) {
                Ok(Ok(0)) => return Poll::Ready(Ok(())),
                Ok(Ok(_)) => break,
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => continue,
            }
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        rest.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SeqPacketStream {
    /// Sends all of `buf` as one message.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.io.poll_write_ready(cx))?;
            match guard.try_io(|socket| send(socket.get_ref().as_raw_fd(), buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// `shutdown(SHUT_WR)`: the peer reads end of stream after the last
    /// message.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(
            match self.io.get_ref().shutdown(std::net::Shutdown::Write) {
                Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
                other => other,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (SeqPacketStream, SeqPacketStream) {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (
            SeqPacketStream::new(a).unwrap(),
            SeqPacketStream::new(b).unwrap(),
        )
    }

    #[tokio::test]
    async fn each_write_is_one_message_and_each_read_one_message() {
        let (mut a, b) = pair();
        a.write_all(b"first").await.unwrap();
        a.write_all(b"second message").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(b.recv_message(&mut buf).await.unwrap(), 5);
        assert_eq!(&buf[..], b"first");
        buf.clear();
        assert_eq!(b.recv_message(&mut buf).await.unwrap(), 14);
        assert_eq!(&buf[..], b"second message");
    }

    #[tokio::test]
    async fn a_message_longer_than_the_read_buffer_is_not_cut() {
        let (a, mut b) = pair();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        a.send(&big).await.unwrap();
        a.send(b"next").await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while got.len() < big.len() {
            let n = b.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, big, "the long message arrives whole");
        let n = b.read(&mut chunk).await.unwrap();
        assert_eq!(
            &chunk[..n],
            b"next",
            "and the next read is the next message"
        );
    }

    #[tokio::test]
    async fn shutdown_reads_as_end_of_stream() {
        let (mut a, mut b) = pair();
        a.write_all(b"last").await.unwrap();
        a.shutdown().await.unwrap();
        let mut all = Vec::new();
        b.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"last");
    }
}
