//! [`Conn`]: the handle a service is given for each connection, and the
//! only way it reaches the socket. Every read and write goes through the
//! connection's [`ConnLimits`], so no service can hold a slot past them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::clock::{Clock, Wait};
use super::{ConnLimits, Connection, PeerAddr, Timeout};

/// How much a read buffer grows by. 1 KiB holds a typical request head and
/// stays within glibc's per-thread cache, so allocating it per busy period
/// is cheap.
pub(crate) const READ_CHUNK: usize = 1024;

/// How much a buffer grows by for [`Conn::read_message`]: a whole seqpacket
/// message must fit, and a stream service's throughput wants big reads.
const MESSAGE_CHUNK: usize = 16 * 1024;

/// How long a closing connection may keep sending before it is dropped.
const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection may send before it is dropped.
const LINGER_BYTES: usize = 1 << 20;

/// What a service formatting into the write queue may read of the
/// connection meanwhile ([`Conn::queue_and_env`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) limits: &'a ConnLimits,
    pub(crate) peer: &'a PeerAddr,
    /// The server is shutting down.
    pub(crate) closing: bool,
}

/// The outcome of a read ([`Conn::read`], [`Conn::read_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Bytes were appended.
    Data,
    /// The peer closed its write side.
    Eof,
    /// The server is shutting down and the connection was idle.
    Shutdown,
    /// A timeout of [`ConnLimits`] ran out: close the connection.
    TimedOut(Timeout),
}

/// One accepted connection, as a service sees it: the socket, behind the
/// connection's timeouts and write queue; who the peer is; and whether the
/// server is shutting down.
///
/// The socket itself is not reachable: every wait goes through one of the
/// methods here, each bounded by a timeout of [`ConnLimits`]:
///
/// | method | waits at most |
/// |---|---|
/// | [`read`](Conn::read), [`read_message`](Conn::read_message) | the header timeout for a request head in progress (and, for a request–response service, for the first request), the idle timeout otherwise |
/// | [`write_all`](Conn::write_all), [`flush`](Conn::flush), and the flush every read starts with | the write timeout without progress |
/// | [`linger_close`](Conn::linger_close) | 2 s |
///
/// Writes may be batched with [`queue`](Conn::queue): queued bytes go out
/// before the next read waits, and nothing more is read until they are
/// written, so a client that sends without reading is held to
/// [`ConnLimits::max_unwritten_bytes`] of output (backpressure).
///
/// A request–response service tells the handle where each request is
/// ([`head_done`](Conn::head_done), [`request_done`](Conn::request_done)),
/// which picks the timeout of the next read. A stream service calls
/// [`stream_timeouts`](Conn::stream_timeouts) once, and every read may then
/// wait the idle timeout.
#[derive(Debug)]
pub struct Conn<C> {
    io: C,
    peer: PeerAddr,
    /// Cancelled when the server starts shutting down.
    shutdown: CancellationToken,
    limits: Arc<ConnLimits>,
    clock: Clock,
    /// Bytes queued and not yet written, on the heap only once a service
    /// queues (8 bytes in every connection, not 24). Released while the
    /// connection is idle, so an idle connection holds no buffer.
    #[allow(clippy::box_collection)] // 8 bytes per connection instead of 24
    out: Option<Box<Vec<u8>>>,
}

impl<C: Connection> Conn<C> {
    /// Wraps an accepted socket. The server does this for every connection
    /// it accepts; tests and other drivers may too.
    pub fn new(
        io: C,
        peer: PeerAddr,
        shutdown: CancellationToken,
        limits: Arc<ConnLimits>,
    ) -> Self {
        Conn {
            io,
            peer,
            shutdown,
            limits,
            clock: Clock::for_requests(),
            out: None,
        }
    }

    /// Who is on the other end.
    pub fn peer(&self) -> &PeerAddr {
        &self.peer
    }

    /// The limits this connection is held to.
    pub fn limits(&self) -> &ConnLimits {
        &self.limits
    }

    /// Whether the server has started shutting down: finish the request in
    /// flight, then return.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Holds this connection to the idle timeout only, for a service
    /// without requests (echo, discard): each read may wait
    /// [`ConnLimits::idle_timeout`]. Without it, the first read is held to
    /// the header timeout, as a request–response service's first request.
    pub fn stream_timeouts(&mut self) {
        self.clock = Clock::for_stream();
    }

    /// A request head is complete; `body_follows` if a body must still be
    /// read (each of its reads may wait the idle timeout).
    pub fn head_done(&mut self, body_follows: bool) {
        self.clock.head_done(body_follows);
    }

    /// The request (and its body) has been read in full: the next read
    /// waits the idle timeout, then the header timeout once a head starts.
    pub fn request_done(&mut self) {
        self.clock.request_done();
    }

    /// Writes what is queued, then appends the next bytes from the peer to
    /// `buf`, waiting as long as the connection's limits allow.
    ///
    /// When `buf` is empty the connection is idle (between requests):
    /// 1. during shutdown, one non-blocking read tells a request whose bytes
    ///    reached the kernel before the signal (in flight: read it and finish
    ///    it) from none (idle: [`Read::Shutdown`]);
    /// 2. otherwise the buffers' memory is released, and the wait for
    ///    readability holds no buffer, so an idle keep-alive connection costs
    ///    no buffer memory; a shutdown signal ends the wait (back to step 1),
    ///    and so does the idle timeout (or, before a connection's first
    ///    request, the header timeout).
    ///
    /// When `buf` holds part of a request head, the read goes on through a
    /// shutdown so the request in flight can finish, until the header
    /// timeout, counted from the first wait for this head and not reset by
    /// each byte (slowloris). Each read of a request body may wait the idle
    /// timeout.
    ///
    /// The read goes through `AsyncRead`: tokio clears the socket's
    /// readiness when a read comes back short, which saves the `EAGAIN` read
    /// a keep-alive connection would otherwise make after every request. On
    /// seqpacket a read may return part of a message; see
    /// [`read_message`](Conn::read_message).
    ///
    /// # Errors
    ///
    /// The read error, or the error of writing what was queued (`TimedOut`
    /// when the write timeout ran out).
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<Read> {
        self.flush_queued().await?;
        // `wait_readable`'s steps, written out here rather than awaited: a
        // nested future's frame would sit in every idle connection's task.
        while self.clock.is_idle(buf) {
            if self.shutdown.is_cancelled() {
                return self.read_during_shutdown(buf);
            }
            self.release_buffers(buf);
            let (waiting, timing, limits) = (&mut self.io, &mut self.clock, &*self.limits);
            let mut armed = None;
            let ready = std::future::poll_fn(move |cx| {
                if let Poll::Ready(ready) = waiting.poll_read_ready(cx) {
                    return Poll::Ready(ready.map(|()| None));
                }
                let wait = Wait::Read { buf_empty: true };
                timing
                    .poll_expiry(cx, &mut armed, wait, limits)
                    .map(|timeout| Ok(Some(timeout)))
            });
            tokio::select! {
                biased;
                ready = ready => match ready? {
                    None => break,
                    Some(timeout) => return Ok(Read::TimedOut(timeout)),
                },
                () = self.shutdown.cancelled() => {}
            }
        }
        buf.reserve(READ_CHUNK);
        let wait = Wait::Read {
            buf_empty: buf.is_empty(),
        };
        let mut armed = None;
        let (io, clock, limits) = (&mut self.io, &mut self.clock, &*self.limits);
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready(read) = tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
                return Poll::Ready(Some(read));
            }
            clock
                .poll_expiry(cx, &mut armed, wait, limits)
                .map(|_| None)
        })
        .await;
        match read {
            Some(Ok(0)) => Ok(Read::Eof),
            Some(Ok(_)) => Ok(Read::Data),
            Some(Err(e)) => Err(e),
            None => Ok(Read::TimedOut(armed.unwrap_or(Timeout::Header))),
        }
    }

    /// As [`read`](Conn::read), but appends exactly what one `recv(2)`
    /// returns: on seqpacket one whole message, so answering each read with
    /// one write answers each message with one message; on a stream
    /// whatever has arrived, up to 16 KiB.
    ///
    /// # Errors
    ///
    /// As [`read`](Conn::read).
    pub async fn read_message(&mut self, buf: &mut BytesMut) -> io::Result<Read> {
        self.flush_queued().await?;
        loop {
            if let Some(outcome) = self.wait_readable(buf).await? {
                return Ok(outcome);
            }
            buf.reserve(MESSAGE_CHUNK);
            let wait = Wait::Read {
                buf_empty: buf.is_empty(),
            };
            let mut armed = None;
            let (io, clock, limits) = (&mut self.io, &mut self.clock, &*self.limits);
            let armed_ref = &mut armed;
            // `move`: the closure holds `&mut C`, so the future is `Send`
            // without `C: Sync`.
            let read = std::future::poll_fn(move |cx| {
                if let Poll::Ready(ready) = io.poll_read_ready(cx) {
                    return Poll::Ready(Some(ready));
                }
                clock.poll_expiry(cx, armed_ref, wait, limits).map(|_| None)
            })
            .await;
            match read {
                Some(Ok(())) => match self.io.try_read_buf(buf) {
                    Ok(0) => return Ok(Read::Eof),
                    Ok(_) => return Ok(Read::Data),
                    // Readiness was stale: wait again.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                },
                Some(Err(e)) => return Err(e),
                None => return Ok(Read::TimedOut(armed.unwrap_or(Timeout::Idle))),
            }
        }
    }

    /// While nothing of a request is buffered, waits until the socket is
    /// readable (`None`: go on and read), or says why the read ends here.
    /// The steps of [`Conn::read`]'s idle wait, for `read_message`.
    async fn wait_readable(&mut self, buf: &mut BytesMut) -> io::Result<Option<Read>> {
        while self.clock.is_idle(buf) {
            if self.shutdown.is_cancelled() {
                return self.read_during_shutdown(buf).map(Some);
            }
            self.release_buffers(buf);
            let (waiting, timing, limits) = (&mut self.io, &mut self.clock, &*self.limits);
            let mut armed = None;
            let ready = std::future::poll_fn(move |cx| {
                if let Poll::Ready(ready) = waiting.poll_read_ready(cx) {
                    return Poll::Ready(ready.map(|()| None));
                }
                let wait = Wait::Read { buf_empty: true };
                timing
                    .poll_expiry(cx, &mut armed, wait, limits)
                    .map(|timeout| Ok(Some(timeout)))
            });
            tokio::select! {
                biased;
                ready = ready => match ready? {
                    None => return Ok(None),
                    Some(timeout) => return Ok(Some(Read::TimedOut(timeout))),
                },
                () = self.shutdown.cancelled() => {}
            }
        }
        Ok(None)
    }

    /// Shutting down and idle: one non-blocking read tells a request whose
    /// bytes reached the kernel before the signal (finish it) from none.
    fn read_during_shutdown(&mut self, buf: &mut BytesMut) -> io::Result<Read> {
        buf.reserve(READ_CHUNK);
        match self.io.try_read_buf(buf) {
            Ok(0) => Ok(Read::Eof),
            Ok(_) => Ok(Read::Data),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::Shutdown),
            Err(e) => Err(e),
        }
    }

    /// An idle connection holds no buffer: the read buffer and the write
    /// queue are freed before the wait.
    fn release_buffers(&mut self, buf: &mut BytesMut) {
        if buf.capacity() > 0 {
            *buf = BytesMut::new();
        }
        self.out = None;
    }

    /// Queues `bytes` to be written before the next read, or at once once
    /// [`ConnLimits::max_unwritten_bytes`] are queued.
    ///
    /// # Errors
    ///
    /// As [`flush`](Conn::flush), when the queue was full.
    pub async fn queue(&mut self, bytes: &[u8]) -> io::Result<()> {
        let out = self.out.get_or_insert_with(Box::default);
        out.extend_from_slice(bytes);
        if out.len() >= self.limits.max_unwritten_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    /// How many bytes are queued.
    pub fn queued(&self) -> usize {
        self.out.as_ref().map_or(0, |out| out.len())
    }

    /// The write queue to format into, with what a request–response
    /// service needs to know meanwhile; for hello, whose responses are
    /// formatted in place. It must flush (or read) before the queue passes
    /// [`ConnLimits::max_unwritten_bytes`].
    pub(crate) fn queue_and_env(&mut self) -> (&mut Vec<u8>, Env<'_>) {
        let env = Env {
            limits: &self.limits,
            peer: &self.peer,
            closing: self.shutdown.is_cancelled(),
        };
        (self.out.get_or_insert_with(Box::default), env)
    }

    /// Drops what is queued, unwritten.
    pub(crate) fn clear_queue(&mut self) {
        if let Some(out) = &mut self.out {
            out.clear();
        }
    }

    /// Writes everything queued.
    ///
    /// # Errors
    ///
    /// As [`write_all`](Conn::write_all).
    pub async fn flush(&mut self) -> io::Result<()> {
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        let written = self.write_direct(&out).await;
        out.clear();
        self.out = Some(out);
        written
    }

    /// Writes what is queued, then all of `bytes`; once a write makes no
    /// progress for [`ConnLimits::write_timeout`] it fails with `TimedOut`.
    ///
    /// The timer is armed only when the socket's send buffer is full, which
    /// is when a client has stopped reading. While this waits the service
    /// reads nothing more from the client.
    ///
    /// # Errors
    ///
    /// The write error, or `TimedOut` when the write timeout ran out.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.queued() > 0 {
            Box::pin(self.flush()).await?;
        }
        self.write_direct(bytes).await
    }

    /// As [`write_all`](Conn::write_all), but gives up as soon as the server
    /// starts shutting down (`Ok(false)`), for a service whose output has no
    /// end (chargen): there is no request in flight to finish, and a client
    /// that reads slowly must not hold up the shutdown.
    ///
    /// # Errors
    ///
    /// As [`write_all`](Conn::write_all).
    pub async fn write_all_or_shutdown(&mut self, bytes: &[u8]) -> io::Result<bool> {
        let shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => Ok(false),
            written = self.write_all(bytes) => written.map(|()| true),
        }
    }

    /// [`flush`](Conn::flush) on the heap, for the reads and writes that
    /// start with one: inline, its state would sit in every connection's
    /// task, though only services that queue ever have anything to flush.
    async fn flush_queued(&mut self) -> io::Result<()> {
        if self.queued() == 0 {
            return Ok(());
        }
        Box::pin(self.flush()).await
    }

    async fn write_direct(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let (io, clock, limits) = (&mut self.io, &mut self.clock, &*self.limits);
        while !bytes.is_empty() {
            let mut armed = None;
            let written = std::future::poll_fn(|cx| {
                if let Poll::Ready(written) = Pin::new(&mut *io).poll_write(cx, bytes) {
                    return Poll::Ready(written);
                }
                clock
                    .poll_expiry(cx, &mut armed, Wait::Write, limits)
                    .map(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "write timeout: the client read nothing for {}s",
                                limits.write_timeout.as_secs_f64()
                            ),
                        ))
                    })
            })
            .await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[written..];
        }
        Ok(())
    }

    /// Writes what is queued, then shuts down the sending side
    /// (`shutdown(SHUT_WR)`): the peer reads end of stream, and may still
    /// send.
    ///
    /// # Errors
    ///
    /// As [`flush`](Conn::flush), or the `shutdown(2)` error.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.io.shutdown().await
    }

    /// Writes what is queued, closes the write side, then reads and
    /// discards what the peer still sends, until it closes too (at most 2 s
    /// and 1 MiB).
    ///
    /// Closing a socket whose receive queue holds unread bytes makes the
    /// kernel send RST instead of FIN, and a RST can destroy the response
    /// the peer has not read yet. Draining first (nginx's "lingering
    /// close") lets the response arrive.
    ///
    /// The future is boxed: its timer would otherwise make every
    /// connection's task state bigger, though only closing connections use
    /// it.
    pub async fn linger_close(&mut self) {
        Box::pin(self.linger_close_inner()).await;
    }

    async fn linger_close_inner(&mut self) {
        if self.shutdown_write().await.is_err() {
            return;
        }
        let io = &mut self.io;
        let drain = async {
            // On the heap: an array here would sit in every connection's task
            // state, idle or not, since a future is as big as its largest await.
            let mut sink = vec![0u8; 4096];
            let mut total = 0;
            while total < LINGER_BYTES {
                match io.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// Whether an I/O error is the peer going away (or a timeout of the
/// connection's limits), which is routine for a server and not worth an
/// error count.
pub fn is_routine_end(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::conn::mock::{self, MockConn};

    fn conn(io: MockConn) -> Conn<MockConn> {
        Conn::new(
            io,
            PeerAddr::Unix(None),
            CancellationToken::new(),
            Arc::new(ConnLimits::default()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_with_stream_timeouts_waits_for_the_idle_timeout_only() {
        let (io, _client) = mock::pair(4096);
        let mut conn = conn(io);
        conn.stream_timeouts();
        let mut buf = BytesMut::new();
        let start = tokio::time::Instant::now();
        let read = conn.read(&mut buf).await;
        assert_eq!(read.unwrap(), Read::TimedOut(Timeout::Idle));
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        let start = tokio::time::Instant::now();
        let read = conn.read_message(&mut buf).await;
        assert_eq!(read.unwrap(), Read::TimedOut(Timeout::Idle));
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_read_of_a_request_connection_waits_for_the_header_timeout() {
        let (io, _client) = mock::pair(4096);
        let mut conn = conn(io);
        let start = tokio::time::Instant::now();
        let read = conn.read(&mut BytesMut::new()).await;
        assert_eq!(read.unwrap(), Read::TimedOut(Timeout::Header));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_without_a_reader_times_out_after_the_write_timeout() {
        let (io, _client) = mock::pair(16);
        let mut conn = conn(io);
        let start = tokio::time::Instant::now();
        let err = conn.write_all(&[7; 100]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(is_routine_end(&err));
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn queued_bytes_go_out_before_a_read_and_at_the_cap() {
        let (io, mut client) = mock::pair(1 << 20);
        let mut conn = conn(io);
        conn.queue(b"first").await.unwrap();
        assert_eq!(conn.queued(), 5);
        client.write_all(b"x").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(conn.read(&mut buf).await.unwrap(), Read::Data);
        assert_eq!(conn.queued(), 0, "a read writes what is queued first");
        let mut got = [0u8; 5];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"first");
        // At the cap the queue is written at once.
        let cap = conn.limits().max_unwritten_bytes;
        conn.queue(&vec![1; cap - 1]).await.unwrap();
        assert_eq!(conn.queued(), cap - 1);
        conn.queue(b"z").await.unwrap();
        assert_eq!(conn.queued(), 0);
    }
}
