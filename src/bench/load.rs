//! The load loop: one thread, its own current-thread runtime, its share of
//! the connections, its own histogram and counters.
//!
//! Per connection, in order:
//! 1. take a request (closed loop: at once; open loop: wait for its intended
//!    time) — with `-n`, from the thread's share of the count;
//! 2. connect if there is no connection (a refused connect counts a
//!    `connect` error for that request and is retried after a short backoff);
//! 3. write up to `pipeline` requests in one write;
//! 4. read until a reply completes, recording its latency from the
//!    request's start (closed loop: when it was taken; open loop: its
//!    intended time), or until the oldest request's timeout, which counts a
//!    timeout for every request in flight and replaces the connection.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::http::ResponseReader;
use super::schedule::{RateProfile, Schedule};
use super::series::{self, Recorder, SecondData};
use super::{BenchConfig, Protocol, ReplyEnd, Resolved};
use crate::endpoint::UnixAddr;
use crate::{Error, Result};

/// Bytes a connection reads at once.
const READ_BUFFER: usize = 16 * 1024;

/// First wait after a failed connect; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Highest latency the histogram holds (longer ones are clamped): 1 hour.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// When the run starts, when measuring starts, when it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub start: Instant,
    /// End of the warm-up: requests started before are not measured.
    pub measure_from: Instant,
    /// End of the run, when time-bound.
    pub deadline: Option<Instant>,
}

/// Everything a thread needs, read-only, shared by all threads.
#[derive(Debug)]
pub(crate) struct Plan {
    addr: Resolved,
    /// `pipeline` copies of the request, so up to a window goes in one write.
    batch: Vec<u8>,
    request_len: usize,
    reply: Reply,
    head_only: bool,
    /// One request per connection: `--close`, or replies ending at end of stream.
    one_per_connection: bool,
    pipeline: usize,
    timeout: Duration,
    rate: Option<Arc<RateProfile>>,
    connections: usize,
    clock: Clock,
}

/// How a reply ends.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Http,
    Bytes(usize),
    EndOfStream,
    Datagram,
}

impl Plan {
    pub fn new(config: &BenchConfig, addr: Resolved, clock: Clock) -> Plan {
        let (request, reply, head_only) = match &config.target.protocol {
            Protocol::Http(req) => (req.to_bytes(config.close), Reply::Http, req.is_head()),
            Protocol::Raw { payload, reply_end } => (
                payload.to_vec(),
                match reply_end {
                    ReplyEnd::Bytes(n) => Reply::Bytes(*n),
                    ReplyEnd::EndOfStream => Reply::EndOfStream,
                    ReplyEnd::Datagram => Reply::Datagram,
                },
                false,
            ),
        };
        let one_per_connection = config.close || matches!(reply, Reply::EndOfStream);
        let pipeline = if one_per_connection {
            1
        } else {
            config.pipeline
        };
        Plan {
            addr,
            batch: request.repeat(pipeline),
            request_len: request.len(),
            reply,
            head_only,
            one_per_connection,
            pipeline,
            timeout: config.timeout,
            rate: config.rate.clone().map(Arc::new),
            connections: config.connections,
            clock,
        }
    }
}

/// A thread's share: which connections, and how many requests with `-n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Share {
    first_connection: usize,
    connections: usize,
    requests: Option<u64>,
}

impl Share {
    /// Thread `index` of `threads`: connections and requests split as evenly
    /// as they go, the first threads taking one more of the remainder.
    pub fn of(index: usize, threads: usize, connections: usize, requests: Option<u64>) -> Share {
        let split = |total: usize| {
            let (base, extra) = (total / threads, total % threads);
            let count = base + usize::from(index < extra);
            let first = index * base + index.min(extra);
            (first, count)
        };
        let (first_connection, count) = split(connections);
        Share {
            first_connection,
            connections: count,
            requests: requests.map(|n| {
                let (base, extra) = (n / threads as u64, n % threads as u64);
                base + u64::from((index as u64) < extra)
            }),
        }
    }
}

/// Counters a thread publishes for the progress display (written by that
/// thread only).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

/// Errors by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    pub bad_response: u64,
    /// Complete replies with a status outside 2xx, by code.
    pub status: BTreeMap<u16, u64>,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect
            + self.read
            + self.write
            + self.timeout
            + self.bad_response
            + self.status.values().sum::<u64>()
    }
}

/// CPU time a thread used over its wall time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ThreadUsage {
    /// User plus system time (`getrusage(RUSAGE_THREAD)`); `None` where the
    /// OS does not tell.
    pub cpu: Option<Duration>,
    /// From the thread's start to its end.
    pub wall: Duration,
}

/// What one thread measured.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    /// Latencies of complete replies, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Complete replies (any status).
    pub replies: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: Errors,
    /// Measured requests taken (written, or attempted).
    pub sent: u64,
    /// Per second, after [`Stats::finish`].
    pub series: Vec<SecondData>,
    /// Per second, while running.
    recorder: Option<Recorder>,
    /// Per thread.
    pub usage: Vec<ThreadUsage>,
}

impl Stats {
    /// Empty figures; the series counts seconds from `measure_from`.
    pub fn new(measure_from: Instant) -> Stats {
        Stats {
            // 3 significant digits from 1 ns to an hour: ~100 KiB per thread.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("constant histogram bounds are valid"),
            replies: 0,
            bytes_read: 0,
            bytes_written: 0,
            errors: Errors::default(),
            sent: 0,
            series: Vec::new(),
            recorder: Some(Recorder::new(measure_from)),
            usage: Vec::new(),
        }
    }

    /// Records a reply in the series only, for tests of the report.
    #[cfg(test)]
    pub fn record_reply_for_test(&mut self, now: Instant, latency_ns: u64) {
        if let Some(r) = self.recorder.as_mut() {
            r.sent(now);
            r.completed(now, latency_ns, false);
        }
    }

    /// Ends recording: the series is complete.
    pub fn finish(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            self.series = recorder.finish();
        }
    }

    /// Adds a finished thread's figures into these.
    pub fn merge(&mut self, mut other: Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.finish();
        other.finish();
        // Both series were encoded here, so they decode.
        let _ = series::merge(&mut self.series, &other.series, 0);
        self.sent += other.sent;
        self.usage.extend(other.usage);
        self.replies += other.replies;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        let e = other.errors;
        self.errors.connect += e.connect;
        self.errors.read += e.read;
        self.errors.write += e.write;
        self.errors.timeout += e.timeout;
        self.errors.bad_response += e.bad_response;
        for (code, n) in e.status {
            *self.errors.status.entry(code).or_default() += n;
        }
    }
}

/// The kinds of failed request.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Connect,
    Read,
    Write,
    Timeout,
    BadResponse,
}

/// A request taken and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Where its latency counts from.
    origin: Instant,
    /// When it was written (its timeout counts from here).
    sent: Instant,
    /// Whether it counts (taken after the warm-up).
    measured: bool,
}

/// One thread's state, shared by its connections (single-threaded: `Cell`s).
struct Thread<'a> {
    plan: &'a Plan,
    stats: RefCell<Stats>,
    /// Requests left of the thread's `-n` share.
    budget: Cell<Option<u64>>,
    counters: Arc<Counters>,
}

impl Thread<'_> {
    /// Takes a request starting now (or at `intended`, open loop), or `None`
    /// when the run is over.
    /// `now` is when it is taken, for the series.
    fn take(&self, origin: Instant, now: Instant) -> Option<bool> {
        let clock = &self.plan.clock;
        if clock.deadline.is_some_and(|d| origin >= d) {
            return None;
        }
        if origin < clock.measure_from {
            return Some(false);
        }
        match self.budget.get() {
            Some(0) => return None,
            Some(n) => self.budget.set(Some(n - 1)),
            None => {}
        }
        let mut stats = self.stats.borrow_mut();
        stats.sent += 1;
        if let Some(r) = stats.recorder.as_mut() {
            r.sent(now);
        }
        Some(true)
    }

    fn fail(&self, failure: Failure, requests: impl IntoIterator<Item = InFlight>) {
        let n = requests.into_iter().filter(|r| r.measured).count() as u64;
        if n == 0 {
            return;
        }
        let mut stats = self.stats.borrow_mut();
        let slot = match failure {
            Failure::Connect => &mut stats.errors.connect,
            Failure::Read => &mut stats.errors.read,
            Failure::Write => &mut stats.errors.write,
            Failure::Timeout => &mut stats.errors.timeout,
            Failure::BadResponse => &mut stats.errors.bad_response,
        };
        *slot += n;
        if let Some(r) = stats.recorder.as_mut() {
            r.errors(Instant::now(), n);
        }
        self.counters.done.fetch_add(n, Ordering::Relaxed);
        self.counters.errors.fetch_add(n, Ordering::Relaxed);
    }

    fn reply(&self, request: InFlight, status: Option<u16>, now: Instant) {
        if !request.measured {
            return;
        }
        let mut stats = self.stats.borrow_mut();
        stats.replies += 1;
        let ns = now.saturating_duration_since(request.origin).as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX).max(1);
        stats.latency.saturating_record(ns);
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        let failed = status.filter(|c| !(200..300).contains(c));
        if let Some(code) = failed {
            *stats.errors.status.entry(code).or_default() += 1;
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(r) = stats.recorder.as_mut() {
            r.completed(now, ns, failed.is_some());
        }
    }

    fn bytes(&self, read: usize, written: usize) {
        let mut stats = self.stats.borrow_mut();
        stats.bytes_read += read as u64;
        stats.bytes_written += written as u64;
    }
}

/// Runs one thread's share to its end (or until `cancel`), on a fresh
/// current-thread runtime, and returns what it measured.
pub(crate) fn run_thread(
    plan: &Plan,
    share: Share,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) -> Result<Stats> {
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Unsupported(format!("cannot start a bench runtime: {e}")))?;
    let thread = Thread {
        plan,
        stats: RefCell::new(Stats::new(plan.clock.measure_from)),
        budget: Cell::new(share.requests),
        counters,
    };
    runtime.block_on(async {
        let connections = (0..share.connections).map(|i| {
            let index = share.first_connection + i;
            let schedule = plan.rate.as_ref().map(|profile| {
                Schedule::with_profile(
                    plan.clock.start,
                    Arc::clone(profile),
                    plan.connections,
                    index,
                )
            });
            drive(&thread, schedule)
        });
        let all = join_all(connections);
        let deadline = async {
            match plan.clock.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = all => {}
            () = cancel.cancelled() => {}
            () = deadline => {}
        }
    });
    let mut stats = thread.stats.into_inner();
    stats.finish();
    stats.usage.push(ThreadUsage {
        cpu: thread_cpu_time(),
        wall: started.elapsed(),
    });
    Ok(stats)
}

/// CPU time (user + system) of the calling thread, from
/// `getrusage(RUSAGE_THREAD)`.
fn thread_cpu_time() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
    let secs = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) as u32) * 1000)
    };
    Some(secs(usage.user_time()) + secs(usage.system_time()))
}

/// Polls all futures on this task until all are done (no `Send` needed, no
/// task per connection: one task drives them all, with a waker each).
async fn join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut done = vec![false; set.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, done) in set.iter_mut().zip(done.iter_mut()) {
            if !*done {
                if f.as_mut().poll(cx).is_ready() {
                    *done = true;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}

async fn drive(thread: &Thread<'_>, schedule: Option<Schedule>) {
    match &thread.plan.addr {
        Resolved::Tcp(addr) => drive_stream(thread, schedule, &TcpConnector(*addr)).await,
        Resolved::Unix(addr) => drive_stream(thread, schedule, &UnixConnector(addr.clone())).await,
        Resolved::Udp(addr) => drive_datagram(thread, schedule, *addr).await,
    }
}

/// Opens stream connections to the target.
pub(crate) trait Connector {
    type Stream: AsyncRead + AsyncWrite + Unpin;
    async fn connect(&self) -> io::Result<Self::Stream>;
}

struct TcpConnector(SocketAddr);

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        crate::socket::tcp_connect(self.0).await
    }
}

struct UnixConnector(UnixAddr);

impl Connector for UnixConnector {
    type Stream = tokio::net::UnixStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        crate::socket::unix_connect(&self.0).await
    }
}

/// Takes the next request for a connection: at once in the closed loop, at
/// its intended time in the open loop. `None` when the run is over.
async fn next_request(thread: &Thread<'_>, schedule: &mut Option<Schedule>) -> Option<InFlight> {
    let origin = match schedule {
        Some(schedule) => {
            let at = schedule.peek();
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            at
        }
        None => Instant::now(),
    };
    let now = if schedule.is_some() {
        Instant::now()
    } else {
        origin
    };
    let measured = thread.take(origin, now)?;
    if let Some(schedule) = schedule {
        schedule.take();
    }
    Some(InFlight {
        origin,
        sent: origin,
        measured,
    })
}

/// Why an exchange on a connection ended.
enum Ended {
    /// The run is over.
    Done,
    /// Connect again and go on.
    Reconnect,
}

/// One connection slot: connects, exchanges, and reconnects until the run
/// is over.
async fn drive_stream<C: Connector>(
    thread: &Thread<'_>,
    mut schedule: Option<Schedule>,
    connector: &C,
) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut backoff = FIRST_BACKOFF;
    loop {
        // The first request is taken before connecting, so a connection per
        // request counts its connect time in the request's latency.
        let Some(first) = next_request(thread, &mut schedule).await else {
            return;
        };
        let connected = tokio::time::timeout(thread.plan.timeout, connector.connect()).await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) => {
                thread.fail(Failure::Connect, [first]);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                thread.fail(Failure::Timeout, [first]);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        buf.clear();
        match exchange(thread, &mut schedule, stream, first, &mut buf).await {
            Ended::Done => return,
            Ended::Reconnect => continue,
        }
    }
}

/// Sends requests and reads replies on one connection until it must be
/// replaced or the run is over.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    thread: &Thread<'_>,
    schedule: &mut Option<Schedule>,
    mut stream: S,
    first: InFlight,
    buf: &mut BytesMut,
) -> Ended {
    let plan = thread.plan;
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(plan.pipeline);
    let mut reader = ResponseReader::new();
    let mut exact_left = match plan.reply {
        Reply::Bytes(n) => n,
        _ => 0,
    };
    let mut unsent = 1;
    inflight.push_back(first);
    let mut over = false;
    let timer = tokio::time::sleep(plan.timeout);
    tokio::pin!(timer);
    loop {
        // Fill the window: closed loop, as many as allowed; open loop, those
        // whose intended time has come.
        if !plan.one_per_connection && !over {
            while inflight.len() < plan.pipeline {
                let now = Instant::now();
                let origin = match schedule {
                    Some(s) if s.peek() > now => break,
                    Some(s) => s.peek(),
                    None => now,
                };
                match thread.take(origin, now) {
                    Some(measured) => {
                        if let Some(s) = schedule.as_mut() {
                            s.take();
                        }
                        inflight.push_back(InFlight {
                            origin,
                            sent: now,
                            measured,
                        });
                        unsent += 1;
                    }
                    None => {
                        over = true;
                        break;
                    }
                }
            }
        }
        if unsent > 0 {
            let now = Instant::now();
            let bytes = &plan.batch[..unsent * plan.request_len];
            for r in inflight.iter_mut().rev().take(unsent) {
                r.sent = now;
            }
            let written = stream.write_all(bytes).await;
            if written.is_err() {
                thread.fail(Failure::Write, inflight.drain(..));
                return Ended::Reconnect;
            }
            if matches!(plan.reply, Reply::EndOfStream) && stream.shutdown().await.is_err() {
                thread.fail(Failure::Write, inflight.drain(..));
                return Ended::Reconnect;
            }
            thread.bytes(0, bytes.len());
            unsent = 0;
        }
        let Some(oldest) = inflight.front() else {
            if over {
                return Ended::Done;
            }
            // Open loop, nothing in flight: wait for the next intended time.
            match next_request(thread, schedule).await {
                Some(request) => {
                    inflight.push_back(request);
                    unsent = 1;
                    continue;
                }
                None => return Ended::Done,
            }
        };
        timer.as_mut().reset(oldest.sent + plan.timeout);
        let wake_for_next = match schedule {
            Some(s) if !over && inflight.len() < plan.pipeline && !plan.one_per_connection => {
                Some(s.peek())
            }
            _ => None,
        };
        let read = tokio::select! {
            biased;
            read = stream.read_buf(buf) => read,
            () = &mut timer => {
                thread.fail(Failure::Timeout, inflight.drain(..));
                return Ended::Reconnect;
            }
            () = sleep_until_opt(wake_for_next), if wake_for_next.is_some() => continue,
        };
        let now = Instant::now();
        match read {
            Ok(0) => {
                match plan.reply {
                    Reply::Http => match reader.eof(buf) {
                        Ok(Some(resp)) => {
                            if let Some(r) = inflight.pop_front() {
                                thread.reply(r, Some(resp.status), now);
                            }
                            thread.fail(Failure::Read, inflight.drain(..));
                        }
                        Ok(None) => thread.fail(Failure::Read, inflight.drain(..)),
                        Err(_) => {
                            if let Some(r) = inflight.pop_front() {
                                thread.fail(Failure::BadResponse, [r]);
                            }
                            thread.fail(Failure::Read, inflight.drain(..));
                        }
                    },
                    Reply::EndOfStream => {
                        if let Some(r) = inflight.pop_front() {
                            thread.reply(r, None, now);
                        }
                    }
                    Reply::Bytes(_) | Reply::Datagram => {
                        if exact_left != expected_bytes(plan) {
                            if let Some(r) = inflight.pop_front() {
                                thread.fail(Failure::BadResponse, [r]);
                            }
                        }
                        thread.fail(Failure::Read, inflight.drain(..));
                    }
                }
                return if over { Ended::Done } else { Ended::Reconnect };
            }
            Ok(n) => {
                thread.bytes(n, 0);
                match plan.reply {
                    Reply::Http => loop {
                        match reader.feed(buf, plan.head_only) {
                            Ok(Some(resp)) => {
                                if let Some(r) = inflight.pop_front() {
                                    thread.reply(r, Some(resp.status), now);
                                } else {
                                    // A reply nobody asked for.
                                    thread.stats.borrow_mut().errors.bad_response += 1;
                                    return Ended::Reconnect;
                                }
                                if resp.close {
                                    thread.fail(Failure::Read, inflight.drain(..));
                                    return if over { Ended::Done } else { Ended::Reconnect };
                                }
                            }
                            Ok(None) => break,
                            Err(_) => {
                                if let Some(r) = inflight.pop_front() {
                                    thread.fail(Failure::BadResponse, [r]);
                                }
                                thread.fail(Failure::Read, inflight.drain(..));
                                return Ended::Reconnect;
                            }
                        }
                    },
                    Reply::Bytes(n) => {
                        while !buf.is_empty() {
                            let take = exact_left.min(buf.len());
                            buf.advance(take);
                            exact_left -= take;
                            if exact_left == 0 {
                                exact_left = n;
                                match inflight.pop_front() {
                                    Some(r) => thread.reply(r, None, now),
                                    None => {
                                        thread.stats.borrow_mut().errors.bad_response += 1;
                                        return Ended::Reconnect;
                                    }
                                }
                            }
                        }
                    }
                    Reply::EndOfStream | Reply::Datagram => buf.clear(),
                }
                if plan.one_per_connection && inflight.is_empty() {
                    return if over { Ended::Done } else { Ended::Reconnect };
                }
            }
            Err(_) => {
                thread.fail(Failure::Read, inflight.drain(..));
                return Ended::Reconnect;
            }
        }
    }
}

fn expected_bytes(plan: &Plan) -> usize {
    match plan.reply {
        Reply::Bytes(n) => n,
        _ => 0,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One slot sending datagrams: each request is one datagram, each reply one
/// datagram back (a lost one is a timeout).
async fn drive_datagram(thread: &Thread<'_>, mut schedule: Option<Schedule>, addr: SocketAddr) {
    let plan = thread.plan;
    let mut buf = vec![0u8; 65536];
    let mut backoff = FIRST_BACKOFF;
    'socket: loop {
        let Ok(socket) = crate::socket::udp_connect(addr) else {
            return;
        };
        loop {
            let Some(mut request) = next_request(thread, &mut schedule).await else {
                return;
            };
            request.sent = Instant::now();
            let payload = &plan.batch[..plan.request_len];
            if socket.send(payload).await.is_err() {
                // ECONNREFUSED from an earlier ICMP port unreachable.
                thread.fail(Failure::Connect, [request]);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue 'socket;
            }
            thread.bytes(0, payload.len());
            match tokio::time::timeout(plan.timeout, socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    backoff = FIRST_BACKOFF;
                    thread.bytes(n, 0);
                    thread.reply(request, None, Instant::now());
                }
                Ok(Err(_)) => {
                    thread.fail(Failure::Connect, [request]);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue 'socket;
                }
                // A late reply to this request would be taken for the next
                // one's: start over on a fresh socket.
                Err(_) => {
                    thread.fail(Failure::Timeout, [request]);
                    continue 'socket;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Target, DEFAULT_TIMEOUT};
    use std::rc::Rc;

    /// A connector to an in-memory HTTP server that answers each request
    /// after `service` (and after `stall` for request number `stall_at`).
    struct FakeServer {
        service: Duration,
        stall_at: u64,
        stall: Duration,
        answered: Rc<Cell<u64>>,
    }

    impl Connector for FakeServer {
        type Stream = tokio::io::DuplexStream;
        async fn connect(&self) -> io::Result<Self::Stream> {
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            let (service, stall_at, stall) = (self.service, self.stall_at, self.stall);
            let answered = Rc::clone(&self.answered);
            tokio::task::spawn_local(async move {
                let mut buf = BytesMut::new();
                loop {
                    match server.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.advance(end + 4);
                        let n = answered.get();
                        answered.set(n + 1);
                        let wait = if n == stall_at { stall } else { service };
                        tokio::time::sleep(wait).await;
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if server.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok(client)
        }
    }

    fn plan(rate: Option<f64>, requests: u64, timeout: Duration) -> Plan {
        let profile = rate.map(|r| RateProfile::constant(r).unwrap());
        plan_with(profile, 1, requests, timeout)
    }

    fn plan_with(
        profile: Option<RateProfile>,
        connections: usize,
        requests: u64,
        timeout: Duration,
    ) -> Plan {
        let mut config = BenchConfig::new(Target::parse("http://127.0.0.1:1/").unwrap());
        config.connections = connections;
        config.rate = profile;
        config.requests = Some(requests);
        config.timeout = timeout;
        let now = Instant::now();
        let clock = Clock {
            start: now,
            measure_from: now,
            deadline: None,
        };
        Plan::new(&config, Resolved::Tcp(([127, 0, 0, 1], 1).into()), clock)
    }

    /// Runs one connection slot against `server` and returns what it measured.
    async fn measure(plan: &Plan, requests: u64, server: FakeServer) -> Stats {
        let thread = Thread {
            plan,
            stats: RefCell::new(Stats::new(plan.clock.measure_from)),
            budget: Cell::new(Some(requests)),
            counters: Arc::default(),
        };
        let connections = (0..plan.connections).map(|i| {
            let schedule = plan.rate.as_ref().map(|profile| {
                Schedule::with_profile(plan.clock.start, Arc::clone(profile), plan.connections, i)
            });
            drive_stream(&thread, schedule, &server)
        });
        tokio::task::LocalSet::new()
            .run_until(join_all(connections))
            .await;
        let mut stats = thread.stats.into_inner();
        stats.finish();
        stats
    }

    fn stalling_server() -> FakeServer {
        FakeServer {
            service: Duration::from_millis(1),
            stall_at: 100,
            stall: Duration::from_secs(1),
            answered: Rc::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_counts_a_stall_against_every_request_it_delays() {
        // 100 req/s for 3 s; request 100 takes 1 s instead of 1 ms.
        let plan = plan(Some(100.0), 300, DEFAULT_TIMEOUT);
        let stats = measure(&plan, 300, stalling_server()).await;
        assert_eq!(stats.replies, 300);
        assert_eq!(stats.errors.total(), 0);
        let h = &stats.latency;
        // ~110 requests were due during the stall or its backlog: well over
        // 1% of 300, so p99 shows the stall, and the median does not.
        assert!(
            h.value_at_quantile(0.99) > 900_000_000,
            "p99 {}",
            h.value_at_quantile(0.99)
        );
        assert!(
            h.value_at_quantile(0.5) < 2_000_000,
            "p50 {}",
            h.value_at_quantile(0.5)
        );
        let slow = h.count_between(10_000_000, MAX_LATENCY_NS);
        assert!((100..=115).contains(&slow), "{slow} slow requests");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_sees_the_same_stall_as_one_slow_request() {
        let plan = plan(None, 300, DEFAULT_TIMEOUT);
        let stats = measure(&plan, 300, stalling_server()).await;
        assert_eq!(stats.replies, 300);
        let slow = stats.latency.count_between(10_000_000, MAX_LATENCY_NS);
        assert_eq!(slow, 1, "coordinated omission: the stall hides");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_gives_counted_timeouts_and_reconnects() {
        let server = FakeServer {
            stall_at: 0,
            stall: Duration::from_secs(3600),
            ..stalling_server()
        };
        let plan = plan(None, 5, Duration::from_millis(200));
        let stats = measure(&plan, 5, server).await;
        assert_eq!(stats.replies, 4);
        assert_eq!(stats.errors.timeout, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_requests_all_complete() {
        let mut plan = plan(None, 1000, DEFAULT_TIMEOUT);
        plan.pipeline = 16;
        plan.batch = plan.batch.repeat(16);
        let stats = measure(&plan, 1000, stalling_server()).await;
        assert_eq!(stats.replies, 1000);
        assert_eq!(stats.errors.total(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_follows_a_ramp_second_by_second() {
        // 0 → 400 req/s over 4 s, then 400 held for 2 s: 800 + 800 requests,
        // second s of the ramp due (2s + 1) · 50 of them.
        let profile = RateProfile::parse_stages("400/4s,400/2s").unwrap();
        let plan = plan_with(Some(profile), 4, 1600, DEFAULT_TIMEOUT);
        let stats = measure(&plan, 1600, stalling_server_never()).await;
        assert_eq!(stats.replies, 1600);
        assert_eq!(stats.sent, 1600);
        let sent: Vec<u64> = stats.series.iter().map(|s| s.sent).collect();
        let want = [50, 150, 250, 350, 400, 400];
        assert_eq!(sent.len(), 6, "{sent:?}");
        for (second, (got, want)) in sent.iter().zip(want).enumerate() {
            assert!(got.abs_diff(want) <= 1, "second {second}: {sent:?}");
        }
        // Every reply was quick: no latency from the schedule itself.
        assert!(stats.latency.max() < 2_000_000, "{}", stats.latency.max());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_during_a_ramp_counts_against_every_request_it_delays() {
        // 100 → 300 req/s over 4 s (800 requests) on one connection;
        // request 300 (at 2 s, 200 req/s) stalls for 1 s. The requests due
        // during the stall, Λ(3 s) − 300 = 225 by the integral of the rate
        // (200 at the stall's start rate), are all late, and so are those
        // due while the backlog drains at 1000/s against ~250/s arriving.
        let profile = RateProfile::parse_rate("100..300/4s").unwrap();
        let plan = plan_with(Some(profile.clone()), 1, 800, DEFAULT_TIMEOUT);
        let server = FakeServer {
            stall_at: 300,
            ..stalling_server()
        };
        let stats = measure(&plan, 800, server).await;
        assert_eq!(stats.replies, 800);
        let slow = stats.latency.count_between(10_000_000, MAX_LATENCY_NS);
        let t = profile.time_of(300.0).unwrap();
        assert!((t - 2.0).abs() < 1e-9);
        let due_in_stall = profile.due(t + 1.0) - 300.0;
        let arriving = profile.rate_at(t + 1.0);
        let want = due_in_stall * 1000.0 / (1000.0 - arriving);
        assert!(
            (slow as f64 - want).abs() < 0.07 * want,
            "{slow} slow, {want:.0} expected ({due_in_stall:.0} due during the stall)"
        );
        assert!(stats.latency.max() >= 1_000_000_000);
    }

    fn stalling_server_never() -> FakeServer {
        FakeServer {
            stall_at: u64::MAX,
            ..stalling_server()
        }
    }

    #[test]
    fn shares_split_connections_and_requests_exactly() {
        let shares: Vec<_> = (0..3).map(|i| Share::of(i, 3, 50, Some(1000))).collect();
        assert_eq!(shares.iter().map(|s| s.connections).sum::<usize>(), 50);
        assert_eq!(shares.iter().filter_map(|s| s.requests).sum::<u64>(), 1000);
        assert_eq!(shares[1].first_connection, shares[0].connections);
        assert_eq!(
            shares[2].first_connection,
            shares[0].connections + shares[1].connections
        );
    }
}
