//! `sockit bench`: a load generator for any server on any transport.
//!
//! Two models of load:
//! 1. closed loop (wrk's): each connection sends its next request as soon as
//!    the previous reply is in (or keeps `pipeline` requests in flight);
//! 2. open loop (wrk2's, [`BenchConfig::rate`]): requests go out at fixed
//!    intended times, and latency counts from the intended time, so a stall
//!    of the server shows in the percentiles ([`schedule`]).
//!
//! Each of [`BenchConfig::threads`] threads drives its share of the
//! connections on its own single-threaded tokio runtime, with its own
//! histogram and counters: threads share nothing on the hot path, and the
//! results are merged at the end.
//!
//! ```no_run
//! # async fn demo() -> sockit::Result<()> {
//! use sockit::bench::{self, BenchConfig, Target};
//!
//! let mut config = BenchConfig::new(Target::parse("http://127.0.0.1:8888/")?);
//! config.requests = Some(10_000);
//! let report = bench::run(config, std::future::pending(), |_| {}).await?;
//! println!("{}", report.text());
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`http`]: the HTTP/1.x response reader
//! - [`schedule`]: intended send times for `--rate` and `--stages`
//! - `series`: the per-second counters and histograms of each thread
//! - [`plot`]: `sockit bench plot`, a series drawn as SVG
//! - [`find_max`](mod@find_max): `--find-max`, the search for the highest rate meeting an SLO
//! - `load`: the per-thread, per-connection request loop
//! - [`report`]: the merged figures, as text, JSON and an HDR percentile file

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::endpoint::{Endpoint, HostPort, UnixAddr};
use crate::{Error, Result};

mod error;
pub mod find_max;
pub mod http;
mod load;
pub mod plot;
pub mod report;
pub mod schedule;
mod series;

pub use error::BenchError;
pub use find_max::{find_max, FindMax, FindMaxConfig, Slo};
pub use report::Report;
pub use schedule::{RateProfile, Stage};

/// Connections when none are asked for (`-c`).
pub const DEFAULT_CONNECTIONS: usize = 50;

/// Run length when neither a duration nor a request count is asked for (`-d`).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// How long a request may take before it counts as a timeout (`--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What to load: where, and what a request and its reply are.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// What to send and when a reply is complete.
    pub protocol: Protocol,
}

/// What a request is, and when its reply is complete.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// HTTP/1.1 requests; replies parsed by [`http::ResponseReader`].
    Http(HttpRequest),
    /// Raw bytes: `payload` per request, reply complete as `reply_end` says.
    Raw {
        /// Sent per request.
        payload: Bytes,
        /// When the reply is complete.
        reply_end: ReplyEnd,
    },
}

/// When a raw reply is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyEnd {
    /// After this many bytes; the connection is kept for the next request.
    Bytes(usize),
    /// At end of stream: one connection per request, as the tutorial's raw
    /// hello. The request side is shut down (`shutdown(SHUT_WR)`) after the
    /// payload, so a server that reads to end of stream answers too.
    EndOfStream,
    /// One datagram (UDP and other datagram endpoints).
    Datagram,
}

/// An HTTP request, as `-X`, `-H` and `--body` build it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The method. Default is `GET`.
    pub method: String,
    /// The request target (`/path?query`). Default is `/`.
    pub path: String,
    /// The `Host` header value, from the URL unless a header overrides it.
    pub host: String,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body; a `Content-Length` header is added when it is not empty.
    pub body: Bytes,
}

impl HttpRequest {
    /// The request's bytes; `close` adds `Connection: close`.
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has("host") {
            out.push_str(&format!("Host: {}\r\n", self.host));
        }
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() && !has("content-length") {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if close && !has("connection") {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Whether the method is `HEAD` (replies have no body).
    pub fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }
}

impl Target {
    /// Parses `http://HOST:PORT/path` (an HTTP target) or any sockit
    /// endpoint (a raw target: `tcp://`, `unix:`, `udp://`, …) sending
    /// `Hello, world` and reading to end of stream, or one datagram.
    ///
    /// # Errors
    ///
    /// [`Error::Endpoint`] when the text is neither; [`Error::Unsupported`]
    /// for `https://`.
    pub fn parse(text: &str) -> Result<Target> {
        if text.starts_with("https://") {
            return Err(Error::Unsupported(format!(
                "cannot bench {text}: TLS is not supported yet; use http://"
            )));
        }
        if let Some(rest) = text.strip_prefix("http://") {
            let (authority, path) = match rest.find(['/', '?']) {
                Some(i) if rest[i..].starts_with('/') => (&rest[..i], &rest[i..]),
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let path = if path.starts_with('?') {
                format!("/{path}")
            } else {
                path.to_owned()
            };
            if authority.is_empty() || authority.starts_with(':') {
                return Err(Error::Unsupported(format!(
                    "invalid URL '{text}': expected http://HOST:PORT/path"
                )));
            }
            let has_port = authority
                .rsplit_once(':')
                .is_some_and(|(_, port)| !port.contains(']'));
            let with_port = if has_port {
                authority.to_owned()
            } else {
                format!("{authority}:80")
            };
            let endpoint: Endpoint = format!("tcp://{with_port}").parse().map_err(|_| {
                Error::Unsupported(format!(
                    "invalid URL '{text}': expected http://HOST:PORT/path"
                ))
            })?;
            return Ok(Target {
                endpoint,
                protocol: Protocol::Http(HttpRequest {
                    method: "GET".into(),
                    path,
                    host: authority.to_owned(),
                    headers: Vec::new(),
                    body: Bytes::new(),
                }),
            });
        }
        let endpoint: Endpoint = text.parse()?;
        let reply_end = if is_datagram(&endpoint) {
            ReplyEnd::Datagram
        } else {
            ReplyEnd::EndOfStream
        };
        Ok(Target {
            endpoint,
            protocol: Protocol::Raw {
                payload: Bytes::from_static(crate::client::DEFAULT_MESSAGE.as_bytes()),
                reply_end,
            },
        })
    }
}

/// How to run a benchmark. Build with [`BenchConfig::new`], then set fields.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// What to load.
    pub target: Target,
    /// Connections kept busy at once (`-c`). Default is 50
    /// ([`DEFAULT_CONNECTIONS`]).
    pub connections: usize,
    /// Threads, each with its own runtime and share of the connections
    /// (`-t`). Default is the number of available cores, at most
    /// `connections`.
    pub threads: usize,
    /// How long to measure after the warm-up (`-d`). `None` with
    /// `requests` set runs until they are done; with neither, the default is
    /// 10 s ([`DEFAULT_DURATION`]).
    pub duration: Option<Duration>,
    /// Stop after this many measured requests (`-n`), counting errors.
    /// Default is `None`.
    pub requests: Option<u64>,
    /// Load applied before measuring, whose samples are discarded
    /// (`--warmup`). Default is zero.
    pub warmup: Duration,
    /// Open loop: requests per second over all connections, constant or
    /// changing over the run (`--rate`, `--stages`), latency measured from
    /// each request's intended send time. `None` is the closed loop.
    /// Default is `None`.
    pub rate: Option<RateProfile>,
    /// Requests in flight per connection (`--pipeline`). Default is 1.
    pub pipeline: usize,
    /// HTTP: a new connection per request, with `Connection: close`
    /// (`--close`). Default is `false` (keep-alive).
    pub close: bool,
    /// How long one request may take before it counts as a timeout and its
    /// connection is replaced (`--timeout`). Default is 2 s
    /// ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl BenchConfig {
    /// The defaults, for `target`.
    pub fn new(target: Target) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        BenchConfig {
            target,
            connections: DEFAULT_CONNECTIONS,
            threads: cores,
            duration: None,
            requests: None,
            warmup: Duration::ZERO,
            rate: None,
            pipeline: 1,
            close: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The measured duration: as set; else the length of the rate's stages
    /// after the warm-up; else 10 s when no request count is set.
    pub fn effective_duration(&self) -> Option<Duration> {
        let stages = self.rate.as_ref().and_then(RateProfile::length);
        match (self.duration, stages, self.requests) {
            (Some(d), _, _) => Some(d),
            (None, Some(length), _) => Some(length.saturating_sub(self.warmup)),
            (None, None, None) => Some(DEFAULT_DURATION),
            (None, None, Some(_)) => None,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Unsupported(what));
        if self.connections == 0 {
            return bad("at least one connection is needed (-c)".into());
        }
        if self.threads == 0 {
            return bad("at least one thread is needed (-t)".into());
        }
        if self.pipeline == 0 {
            return bad("--pipeline must be at least 1".into());
        }
        if self.effective_duration().is_some_and(|d| d.is_zero()) {
            return bad("the run is 0 s long: give -d, or stages longer than --warmup".into());
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be above 0".into());
        }
        if self.requests == Some(0) {
            return bad("-n must be at least 1".into());
        }
        let datagram = is_datagram(&self.target.endpoint);
        match &self.target.protocol {
            Protocol::Http(_) if datagram => bad(format!(
                "{} is a datagram endpoint: HTTP needs a stream (tcp:// or unix:)",
                self.target.endpoint
            )),
            Protocol::Http(_) => Ok(()),
            Protocol::Raw { reply_end, .. } => match reply_end {
                ReplyEnd::Datagram if !datagram => bad(format!(
                    "{} is a stream endpoint: a reply ends after --expect-bytes N or at end of stream",
                    self.target.endpoint
                )),
                ReplyEnd::Bytes(_) | ReplyEnd::EndOfStream if datagram => bad(format!(
                    "{} is a datagram endpoint: a reply is one datagram (drop --expect-bytes)",
                    self.target.endpoint
                )),
                ReplyEnd::Bytes(0) => bad("--expect-bytes must be at least 1".into()),
                ReplyEnd::EndOfStream | ReplyEnd::Datagram if self.pipeline > 1 => bad(
                    "--pipeline needs replies of known length: HTTP or --expect-bytes N".into(),
                ),
                _ => Ok(()),
            },
        }
    }
}

/// Whether an endpoint carries datagrams (a reply is one datagram).
fn is_datagram(endpoint: &Endpoint) -> bool {
    matches!(endpoint, Endpoint::Udp(_) | Endpoint::UnixDgram(_))
}

/// An address to connect to, resolved once before the run.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(UnixAddr),
}

async fn resolve(endpoint: &Endpoint) -> Result<Resolved> {
    async fn first(hp: &HostPort) -> Result<SocketAddr> {
        hp.resolve(None)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Resolve {
                host: hp.to_string(),
                reason: "no addresses".into(),
            })
    }
    match endpoint {
        Endpoint::Tcp(hp) => Ok(Resolved::Tcp(first(hp).await?)),
        Endpoint::Udp(hp) => Ok(Resolved::Udp(first(hp).await?)),
        Endpoint::Unix(addr) => Ok(Resolved::Unix(addr.clone())),
        other => Err(Error::Unsupported(format!(
            "cannot bench {other}: the {} transport is not supported by bench yet",
            other.transport()
        ))),
    }
}

/// A snapshot of a running benchmark, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the start, warm-up included.
    pub elapsed: Duration,
    /// The whole planned run (warm-up included), when it is time-bound.
    pub total: Option<Duration>,
    /// Measured requests done (replies and errors).
    pub done: u64,
    /// The planned request count, when count-bound.
    pub planned: Option<u64>,
    /// Errors so far.
    pub errors: u64,
    /// Whether the warm-up is still going on.
    pub warming_up: bool,
}

/// How often the progress callback runs.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Runs a benchmark to its end, or until `stop` completes (Ctrl-C), and
/// returns the report of what was measured.
///
/// Worker threads are started here, each with its own current-thread
/// runtime; the caller's runtime only waits, and calls `on_progress` every
/// 100 ms.
///
/// # Errors
///
/// [`Error::Unsupported`] for an invalid configuration or a transport bench
/// cannot drive, [`Error::Resolve`] when the host does not resolve. Errors of
/// single requests (refused, timed out, bad reply) are counted in the
/// report, never returned.
pub async fn run(
    config: BenchConfig,
    stop: impl Future<Output = ()>,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Report> {
    config.validate()?;
    let resolved = resolve(&config.target.endpoint).await?;
    let threads = config.threads.min(config.connections);
    let duration = config.effective_duration();
    let start = Instant::now();
    let wall_start = std::time::SystemTime::now();
    let clock = load::Clock {
        start,
        measure_from: start + config.warmup,
        deadline: duration.map(|d| start + config.warmup + d),
    };
    let plan = Arc::new(load::Plan::new(&config, resolved, clock));
    let cancel = CancellationToken::new();
    let mut receivers = Vec::with_capacity(threads);
    let mut counters = Vec::with_capacity(threads);
    for index in 0..threads {
        let share = load::Share::of(index, threads, config.connections, config.requests);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let published = Arc::new(load::Counters::default());
        counters.push(Arc::clone(&published));
        let plan = Arc::clone(&plan);
        let cancel = cancel.clone();
        std::thread::Builder::new()
            .name(format!("sockit-bench-{index}"))
            .spawn(move || {
                let _ = tx.send(load::run_thread(&plan, share, published, cancel));
            })
            .map_err(|e| Error::Unsupported(format!("cannot start a bench thread: {e}")))?;
        receivers.push(rx);
    }

    let mut stop = std::pin::pin!(stop);
    let mut interrupted = None;
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut results = Vec::with_capacity(threads);
    for rx in &mut receivers {
        loop {
            tokio::select! {
                result = &mut *rx => {
                    results.push(result.map_err(|_| {
                        Error::Unsupported("a bench thread failed".into())
                    })??);
                    break;
                }
                () = &mut stop, if interrupted.is_none() => {
                    interrupted = Some(Instant::now());
                    cancel.cancel();
                }
                _ = ticker.tick() => {
                    let now = Instant::now();
                    let (done, errors) = totals(&counters);
                    on_progress(&Progress {
                        elapsed: now - start,
                        total: duration.map(|d| d + config.warmup),
                        done,
                        planned: config.requests,
                        errors,
                        warming_up: now < clock.measure_from,
                    });
                }
            }
        }
    }
    let end = interrupted.unwrap_or_else(|| {
        let now = Instant::now();
        clock.deadline.map_or(now, |d| d.min(now))
    });
    let elapsed = end.saturating_duration_since(clock.measure_from);
    let mut stats = load::Stats::new(clock.measure_from);
    for result in results {
        stats.merge(result);
    }
    let started_unix_secs = wall_start
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d + config.warmup).as_secs_f64());
    Ok(Report::new(
        &config,
        threads,
        stats,
        report::Ending {
            elapsed,
            interrupted: interrupted.is_some(),
            started_unix_secs,
        },
    ))
}

fn totals(counters: &[Arc<load::Counters>]) -> (u64, u64) {
    counters.iter().fold((0, 0), |(d, e), c| {
        (
            d + c.done.load(Ordering::Relaxed),
            e + c.errors.load(Ordering::Relaxed),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(text: &str) -> (Endpoint, HttpRequest) {
        match Target::parse(text).unwrap() {
            Target {
                endpoint,
                protocol: Protocol::Http(req),
            } => (endpoint, req),
            other => panic!("not HTTP: {other:?}"),
        }
    }

    #[test]
    fn urls_give_the_endpoint_path_and_host_header() {
        let (endpoint, req) = http("http://127.0.0.1:8080/a/b?c=d");
        assert_eq!(endpoint, "tcp://127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (req.path.as_str(), req.host.as_str()),
            ("/a/b?c=d", "127.0.0.1:8080")
        );
        let (endpoint, req) = http("http://localhost");
        assert_eq!(endpoint, "tcp://localhost:80".parse().unwrap());
        assert_eq!(req.path, "/");
        let (endpoint, req) = http("http://[::1]:9000?x");
        assert_eq!(endpoint, "tcp://[::1]:9000".parse().unwrap());
        assert_eq!(req.path, "/?x");
        let (endpoint, _) = http("http://[::1]/");
        assert_eq!(endpoint, "tcp://[::1]:80".parse().unwrap());
    }

    #[test]
    fn bad_urls_and_endpoints_are_errors() {
        for bad in [
            "http://",
            "http://:80/",
            "https://x/",
            "nonsense",
            "ftp://x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_raw_targets_with_the_reply_end_of_their_kind() {
        let t = Target::parse("tcp://127.0.0.1:8888").unwrap();
        assert!(matches!(
            t.protocol,
            Protocol::Raw {
                reply_end: ReplyEnd::EndOfStream,
                ..
            }
        ));
        let t = Target::parse("udp://127.0.0.1:7").unwrap();
        assert!(matches!(
            t.protocol,
            Protocol::Raw {
                reply_end: ReplyEnd::Datagram,
                ..
            }
        ));
    }

    #[test]
    fn requests_carry_headers_body_length_and_close() {
        let (_, mut req) = http("http://h:1/p");
        req.method = "POST".into();
        req.headers.push(("X-A".into(), "1".into()));
        req.body = Bytes::from_static(b"abc");
        assert_eq!(
            req.to_bytes(true),
            b"POST /p HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        req.headers.push(("host".into(), "other".into()));
        assert!(!String::from_utf8(req.to_bytes(false))
            .unwrap()
            .contains("Host: h:1"));
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let target = Target::parse("http://127.0.0.1:1/").unwrap();
        for change in [
            (|c: &mut BenchConfig| c.connections = 0) as fn(&mut BenchConfig),
            |c| c.pipeline = 0,
            |c| {
                c.rate = Some(RateProfile::parse_rate("0..10/2s").unwrap());
                c.warmup = Duration::from_secs(2);
            },
            |c| c.timeout = Duration::ZERO,
            |c| c.requests = Some(0),
        ] {
            let mut config = BenchConfig::new(target.clone());
            change(&mut config);
            assert!(config.validate().is_err(), "{config:?}");
        }
        let mut raw = BenchConfig::new(Target::parse("tcp://127.0.0.1:1").unwrap());
        raw.pipeline = 4;
        assert!(raw.validate().is_err(), "pipelining needs --expect-bytes");
    }
}
