//! Services: what a server does with each connection. One trait, one file
//! per service; every transport runs every service through the same
//! accept loop.
//!
//! Services read with `read_more` and write with `write_all`, which
//! hold every connection to the server's [`Limits`]:
//! header, idle and write timeouts, through one timer per connection that
//! is armed only when a wait really starts (never when the socket is ready,
//! as it is under load).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::conn::{ConnContext, ConnReport, Connection};
use crate::server::Limits;

pub mod chargen;
pub mod daytime;
pub mod discard;
pub mod echo;
pub mod hello;
#[cfg(test)]
pub(crate) mod mock;

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
///
/// A panic inside `serve` is caught by the server: the connection closes,
/// the panic is logged once with the peer, and the server keeps serving.
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
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Bytes were appended.
    Data,
    /// The peer closed its write side.
    Eof,
    /// The server is shutting down and the connection was idle.
    Shutdown,
    /// A timeout of [`Limits`] ran out: close the connection.
    TimedOut(Timeout),
}

/// Which timeout ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// [`Limits::header_timeout`]: a request head took too long.
    Header,
    /// [`Limits::idle_timeout`] between requests.
    Idle,
    /// [`Limits::idle_timeout`] between two reads of a request body.
    Body,
    /// [`Limits::write_timeout`]: the client stopped reading.
    Write,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Header => "header timeout: request head incomplete",
            Timeout::Idle => "idle timeout",
            Timeout::Body => "idle timeout while reading a request body",
            Timeout::Write => "write timeout: the client stopped reading",
        })
    }
}

/// A connection's timeouts: where it is in its request, which decides how
/// long the next read may wait, and the one timer every wait reuses. One
/// per connection, kept by the service.
///
/// A request–response service starts with [`Clock::for_requests`] and
/// tells the clock when a head is complete ([`Clock::head_done`]) and when
/// the request is over ([`Clock::request_done`]); these are plain stores,
/// free on the hot path. A stream service (echo, discard) uses
/// [`Clock::for_stream`] and only ever sees the idle timeout.
///
/// # Notes
///
/// The timer is allocated at the first wait and then reset for each one:
/// a `tokio::time::Sleep` is 96 bytes, and inline it would sit in every
/// connection's task state, idle or not. It is registered with the runtime
/// only when a wait finds the socket not ready.
#[derive(Debug)]
pub(crate) struct Clock {
    phase: Phase,
    timer: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: [`Limits::idle_timeout`] applies once the buffer
    /// is empty; bytes left in it start a head.
    Idle,
    /// A head is arriving; it must be complete by the deadline set at its
    /// first wait. Once `armed`, the timer holds that deadline (so the
    /// phase stays one byte: every connection's task carries it).
    Head { armed: bool },
    /// A body is arriving: each read may wait [`Limits::idle_timeout`], and
    /// shutdown waits for the body.
    Body,
}

impl Clock {
    /// For request–response services: the first head is held to
    /// [`Limits::header_timeout`] from the first wait after accept, so a
    /// client that connects and sends nothing is closed as a slowloris is.
    pub(crate) fn for_requests() -> Self {
        Clock {
            phase: Phase::Head { armed: false },
            timer: None,
        }
    }

    /// For stream services: only [`Limits::idle_timeout`] applies.
    pub(crate) fn for_stream() -> Self {
        Clock {
            phase: Phase::Idle,
            timer: None,
        }
    }

    /// A head is complete; `body_follows` if a body must still be read.
    pub(crate) fn head_done(&mut self, body_follows: bool) {
        self.phase = if body_follows {
            Phase::Body
        } else {
            Phase::Idle
        };
    }

    /// The request (and its body) has been read in full.
    pub(crate) fn request_done(&mut self) {
        self.phase = Phase::Idle;
    }

    /// Whether a wait with this buffer is idle: nothing of a request is
    /// pending, so shutdown may end it.
    fn is_idle(&self, buf: &BytesMut) -> bool {
        buf.is_empty() && self.phase != Phase::Body
    }

    /// Arms the timer for a read wait about to start, and says which
    /// timeout it is.
    fn arm_read(&mut self, buf_empty: bool, limits: &Limits) -> Timeout {
        match self.phase {
            Phase::Idle if buf_empty => {
                self.arm(limits.idle_timeout);
                Timeout::Idle
            }
            Phase::Idle | Phase::Head { armed: false } => {
                self.arm(limits.header_timeout);
                self.phase = Phase::Head { armed: true };
                Timeout::Header
            }
            // The head's deadline is already in the timer.
            Phase::Head { armed: true } => Timeout::Header,
            Phase::Body => {
                self.arm(limits.idle_timeout);
                Timeout::Body
            }
        }
    }

    /// Sets the timer to `timeout` from now, allocating it the first time.
    ///
    /// Coarse by up to [`TIMER_SLACK`]: a pending timer already due a little
    /// before the new deadline is kept as it is. Each reset locks tokio's
    /// timer wheel, and a busy keep-alive connection waits once per request;
    /// this way it resets its timer about once a second instead, and a
    /// timeout may end a wait up to a second early.
    fn arm(&mut self, timeout: Duration) {
        let deadline = after(Instant::now(), timeout);
        match &mut self.timer {
            Some(timer) => {
                let due = timer.deadline();
                let close_enough =
                    due <= deadline && deadline - due < TIMER_SLACK && !timer.is_elapsed();
                if !close_enough {
                    timer.as_mut().reset(deadline);
                }
            }
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Polls the timer for a wait that found its socket not ready,
    /// arming it first if this wait has not yet (`armed` is the wait's own
    /// state, `None` at its start). Arming only here means a socket that is
    /// ready, as under load, never touches the timer.
    fn poll_expiry(
        &mut self,
        cx: &mut Context<'_>,
        armed: &mut Option<Timeout>,
        wait: Wait,
        limits: &Limits,
    ) -> Poll<Timeout> {
        let which = *armed.get_or_insert_with(|| match wait {
            Wait::Read { buf_empty } => self.arm_read(buf_empty, limits),
            Wait::Write => {
                self.arm(limits.write_timeout);
                Timeout::Write
            }
        });
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).map(|()| which),
            None => Poll::Pending,
        }
    }
}

/// How much earlier than asked a timeout may fire; see `Clock::arm`.
const TIMER_SLACK: Duration = Duration::from_secs(1);

/// What a wait is for, to pick its deadline.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// A read, with the buffer empty or not.
    Read { buf_empty: bool },
    /// A write that made no progress.
    Write,
}

/// `now + timeout`, where a timeout too large to add (`Duration::MAX`,
/// which the CLI's `0` means) never expires.
fn after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

/// Appends the next bytes from `conn` to `buf`, waiting as long as the
/// connection's [`Clock`] and the server's [`Limits`] allow.
///
/// When nothing of a request is buffered the connection is idle (between
/// requests):
/// 1. during shutdown, one non-blocking read tells a request whose bytes
///    reached the kernel before the signal (in flight: read it and finish
///    it) from none (idle: [`Read::Shutdown`]);
/// 2. otherwise the buffer's memory is released, and the wait for
///    readability holds no buffer, so an idle keep-alive connection costs
///    no buffer memory; a shutdown signal ends the wait (back to step 1),
///    and so does the idle timeout (or, before a connection's first
///    request, the header timeout).
///
/// When `buf` holds part of a request head, the read goes on through a
/// shutdown so the request in flight can finish, until the header timeout,
/// counted from the first wait for this head and not reset by each byte
/// (slowloris). Each read of a request body may wait the idle timeout.
///
/// The read itself goes through `AsyncRead`: tokio clears the socket's
/// readiness when a read comes back short, which saves the `EAGAIN` read a
/// keep-alive connection would otherwise make after every request.
pub(crate) async fn read_more<C: Connection>(
    conn: &mut C,
    buf: &mut BytesMut,
    ctx: &ConnContext,
    clock: &mut Clock,
) -> io::Result<Read> {
    while clock.is_idle(buf) {
        if ctx.shutdown.is_cancelled() {
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
        // One poll function for readiness and the timer: smaller than two
        // futures in the `select!`, and every idle connection holds it.
        let (waiting, timing, limits) = (&mut *conn, &mut *clock, &*ctx.limits);
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
            () = ctx.shutdown.cancelled() => {}
        }
    }
    buf.reserve(READ_CHUNK);
    let wait = Wait::Read {
        buf_empty: buf.is_empty(),
    };
    let mut armed = None;
    let read = std::future::poll_fn(|cx| {
        if let Poll::Ready(read) = tokio_util::io::poll_read_buf(Pin::new(&mut *conn), cx, buf) {
            return Poll::Ready(Some(read));
        }
        clock
            .poll_expiry(cx, &mut armed, wait, &ctx.limits)
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

/// Writes all of `bytes`; once a write makes no progress for
/// [`Limits::write_timeout`] it fails with `TimedOut`.
///
/// The timer is armed only when the socket's send buffer is full, which is
/// when a client has stopped reading. While this waits the service reads
/// nothing more from the client, so a client that pipelines without
/// reading is held to what one batch of responses costs (backpressure).
///
/// # Errors
///
/// The write error, or `TimedOut` when the write timeout ran out.
pub(crate) async fn write_all<C: Connection>(
    conn: &mut C,
    mut bytes: &[u8],
    limits: &Limits,
    clock: &mut Clock,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let mut armed = None;
        let written = std::future::poll_fn(|cx| {
            if let Poll::Ready(written) = Pin::new(&mut *conn).poll_write(cx, bytes) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::conn::PeerAddr;
    use crate::service::mock::{self, MockConn};

    fn limits() -> Limits {
        Limits {
            max_connections: 1,
            ..Limits::default()
        }
    }

    fn context(limits: Limits) -> ConnContext {
        ConnContext {
            peer: PeerAddr::Unix(None),
            shutdown: CancellationToken::new(),
            limits: Arc::new(limits),
        }
    }

    fn serve_hello(conn: MockConn, ctx: ConnContext) -> JoinHandle<ConnReport> {
        tokio::spawn(async move { Hello::default().serve(conn, ctx).await })
    }

    /// Reads whatever arrives until the server closes; an error counts as a close.
    async fn read_all(client: &mut DuplexStream) -> Vec<u8> {
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got).await;
        got
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
        let (conn, mut client) = mock::pair(64 * 1024);
        let start = Instant::now();
        let server = serve_hello(conn, context(limits()));
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        // A byte a second: each one would reset a per-read timer, never this one.
        let mut dripped = 0;
        while !server.is_finished() && dripped < 100 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if client.write_all(b"X").await.is_err() {
                break;
            }
            dripped += 1;
        }
        let report = server.await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(10) && took < Duration::from_millis(11_500),
            "closed after {took:?}"
        );
        assert_eq!(report.requests, 0);
        assert!(read_all(&mut client).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_closed_at_the_header_timeout() {
        let (conn, mut client) = mock::pair(4096);
        let start = Instant::now();
        let report = serve_hello(conn, context(limits())).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(report, ConnReport::default());
        assert!(read_all(&mut client).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
        let (conn, mut client) = mock::pair(4096);
        let server = serve_hello(conn, context(limits()));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = [0u8; 12];
        client.read_exact(&mut response).await.unwrap();
        assert_eq!(&response, b"HTTP/1.1 200");
        let answered = Instant::now();
        let report = server.await.unwrap();
        let idle = answered.elapsed();
        assert!(
            idle >= Duration::from_secs(60) && idle < Duration::from_secs(61),
            "{idle:?}"
        );
        assert_eq!(report.requests, 1);
        assert!(!report.error);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_body_is_held_to_the_idle_timeout_per_read() {
        let (conn, mut client) = mock::pair(4096);
        let server = serve_hello(conn, context(limits()));
        client
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: 30\r\n\r\n")
            .await
            .unwrap();
        // 30 s in all, past the header timeout, but never 60 s between reads.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"b").await.unwrap();
        }
        let mut response = [0u8; 12];
        client.read_exact(&mut response).await.unwrap();
        assert_eq!(&response, b"HTTP/1.1 200");
        drop(client);
        assert_eq!(server.await.unwrap().requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_is_not_read_further_and_is_dropped_at_the_write_timeout() {
        let (conn, mut client) = mock::pair(4096);
        let start = Instant::now();
        let server = serve_hello(conn, context(limits()));
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut sent = 0usize;
        // 10,000 pipelined requests (270 KB); the server must stop taking them.
        for _ in 0..10_000 {
            let write = tokio::time::timeout(Duration::from_secs(1), client.write_all(request));
            match write.await {
                Ok(Ok(())) => sent += request.len(),
                _ => break,
            }
        }
        assert!(
            sent < 64 * 1024,
            "the server kept reading: {sent} bytes taken"
        );
        let report = server.await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(30) && took < Duration::from_secs(31),
            "{took:?}"
        );
        assert!(!report.error, "a stalled reader is the client's doing");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_idle_connections_and_finishes_partial_requests() {
        let (idle, _idle_client) = mock::pair(4096);
        let (busy, mut busy_client) = mock::pair(4096);
        let ctx = context(limits());
        let idle_server = serve_hello(idle, ctx.clone());
        let busy_server = serve_hello(busy, ctx.clone());
        busy_client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        ctx.shutdown.cancel();
        let report = idle_server.await.unwrap();
        assert_eq!(report, ConnReport::default());
        assert!(!busy_server.is_finished());
        busy_client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        let response = String::from_utf8(read_all(&mut busy_client).await).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
        assert_eq!(busy_server.await.unwrap().requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_resets_its_timer_about_once_a_second() {
        let limits = limits();
        let mut clock = Clock::for_stream();
        clock.arm(limits.idle_timeout);
        let first = clock.timer.as_ref().unwrap().deadline();
        // Requests 10 ms apart: the timer keeps its deadline for a second.
        tokio::time::sleep(Duration::from_millis(10)).await;
        clock.arm(limits.idle_timeout);
        assert_eq!(clock.timer.as_ref().unwrap().deadline(), first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.arm(limits.idle_timeout);
        let moved = clock.timer.as_ref().unwrap().deadline();
        assert_eq!(moved, Instant::now() + limits.idle_timeout);
        // A shorter deadline (a header or write wait) always resets it.
        clock.arm(limits.header_timeout);
        assert_eq!(
            clock.timer.as_ref().unwrap().deadline(),
            Instant::now() + limits.header_timeout
        );
    }

    #[tokio::test(start_paused = true)]
    async fn read_more_on_a_stream_clock_waits_for_the_idle_timeout_only() {
        let (mut conn, _client) = mock::pair(4096);
        let ctx = context(limits());
        let mut buf = BytesMut::new();
        let mut clock = Clock::for_stream();
        let start = Instant::now();
        let read = read_more(&mut conn, &mut buf, &ctx, &mut clock).await;
        assert_eq!(read.unwrap(), Read::TimedOut(Timeout::Idle));
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn write_all_without_a_reader_times_out_after_the_write_timeout() {
        let (mut conn, _client) = mock::pair(16);
        let start = Instant::now();
        let mut clock = Clock::for_requests();
        let err = write_all(&mut conn, &[7; 100], &limits(), &mut clock)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
