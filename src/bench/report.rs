//! The figures of a run: as text for people, as one JSON object for
//! scripts (`--json`), and as an HDR percentile distribution for plotting
//! (`--latency-histogram`, wrk2's format).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::load::Stats;
use super::{BenchConfig, Protocol, ReplyEnd};

/// What a run measured. Serialized as-is by `--json`.
///
/// Latencies are in microseconds (fractions kept). Only requests taken
/// after the warm-up count.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target, as given.
    pub target: String,
    /// `http`, `raw` (stream, reply of `--expect-bytes` or to end of
    /// stream) or `datagram`.
    pub mode: &'static str,
    /// `closed` (next request when the previous reply is in) or `open`
    /// (`--rate`: requests at intended times, latency corrected for
    /// coordinated omission).
    pub model: &'static str,
    /// Connections (`-c`).
    pub connections: usize,
    /// Threads actually used (`-t`, at most one per connection).
    pub threads: usize,
    /// Requests in flight per connection (`--pipeline`).
    pub pipeline: usize,
    /// The open loop's target rate in requests per second, `null` for the
    /// closed loop.
    pub rate: Option<f64>,
    /// Measured seconds (after the warm-up).
    pub duration_secs: f64,
    /// Complete replies, whatever their status. With `-n N` and no errors,
    /// `N`.
    pub requests: u64,
    /// `requests / duration_secs`.
    pub requests_per_sec: f64,
    /// Bytes received.
    pub bytes_read: u64,
    /// Bytes sent.
    pub bytes_written: u64,
    /// `bytes_read / duration_secs`.
    pub read_bytes_per_sec: f64,
    /// Latency of complete replies.
    pub latency: Latency,
    /// Failed requests by kind.
    pub errors: ErrorCounts,
    /// Whether the run was cut short by Ctrl-C.
    pub interrupted: bool,
    #[serde(skip)]
    histogram: Histogram<u64>,
}

/// Latency figures, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Latency {
    /// Fastest reply.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Standard deviation.
    pub stdev_us: f64,
    /// Slowest reply.
    pub max_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 75th percentile.
    pub p75_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p99_9_us: f64,
    /// 99.99th percentile.
    pub p99_99_us: f64,
}

/// Failed requests, by kind. `total` is their sum.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// All of the below.
    pub total: u64,
    /// Connecting failed (refused, unreachable); retried after a backoff.
    pub connect: u64,
    /// Reading failed, or the server closed with the request unanswered.
    pub read: u64,
    /// Writing the request failed.
    pub write: u64,
    /// No complete reply within `--timeout`; the connection was replaced.
    pub timeout: u64,
    /// A reply that is not valid (bad status line, truncated, bad chunking).
    pub bad_response: u64,
    /// Complete replies with a status outside 2xx, by code (`{"404": 3}`).
    pub status: BTreeMap<String, u64>,
}

impl Report {
    pub(crate) fn new(
        config: &BenchConfig,
        threads: usize,
        stats: Stats,
        elapsed: Duration,
        interrupted: bool,
    ) -> Report {
        let secs = elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let h = &stats.latency;
        let us = |ns: u64| ns as f64 / 1000.0;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                min_us: us(h.min()),
                mean_us: h.mean() / 1000.0,
                stdev_us: h.stdev() / 1000.0,
                max_us: us(h.max()),
                p50_us: us(h.value_at_quantile(0.5)),
                p75_us: us(h.value_at_quantile(0.75)),
                p90_us: us(h.value_at_quantile(0.9)),
                p99_us: us(h.value_at_quantile(0.99)),
                p99_9_us: us(h.value_at_quantile(0.999)),
                p99_99_us: us(h.value_at_quantile(0.9999)),
            }
        };
        let e = &stats.errors;
        let errors = ErrorCounts {
            total: e.total(),
            connect: e.connect,
            read: e.read,
            write: e.write,
            timeout: e.timeout,
            bad_response: e.bad_response,
            status: e.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let mode = match &config.target.protocol {
            Protocol::Http(_) => "http",
            Protocol::Raw {
                reply_end: ReplyEnd::Datagram,
                ..
            } => "datagram",
            Protocol::Raw { .. } => "raw",
        };
        let target = match &config.target.protocol {
            Protocol::Http(req) => format!("http://{}{}", req.host, req.path),
            Protocol::Raw { .. } => config.target.endpoint.to_string(),
        };
        Report {
            target,
            mode,
            model: if config.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            connections: config.connections,
            threads,
            pipeline: config.pipeline,
            rate: config.rate,
            duration_secs: secs,
            requests: stats.replies,
            requests_per_sec: per_sec(stats.replies),
            bytes_read: stats.bytes_read,
            bytes_written: stats.bytes_written,
            read_bytes_per_sec: per_sec(stats.bytes_read),
            latency,
            errors,
            interrupted,
            histogram: stats.latency,
        }
    }

    /// The report as one JSON object (the fields of [`Report`]).
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as text for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let model = match self.rate {
            Some(rate) => format!("open loop at {rate} req/s, latency from intended send times"),
            None => "closed loop".into(),
        };
        let pipeline = if self.pipeline > 1 {
            format!(", pipeline {}", self.pipeline)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} ({}): {} connections on {} threads{}, {}",
            self.target, self.mode, self.connections, self.threads, pipeline, model
        );
        if self.interrupted {
            let _ = writeln!(out, "  interrupted: figures so far");
        }
        let _ = writeln!(
            out,
            "  requests     {} in {:.2}s: {:.1} req/s, {}/s read",
            self.requests,
            self.duration_secs,
            self.requests_per_sec,
            bytes(self.read_bytes_per_sec)
        );
        if self.requests == 0 {
            let _ = writeln!(out, "  latency      no replies");
        } else {
            self.write_latency(&mut out);
        }
        let e = &self.errors;
        if e.total == 0 {
            let _ = writeln!(out, "  errors       0");
        } else {
            let mut parts = Vec::new();
            for (name, n) in [
                ("connect", e.connect),
                ("read", e.read),
                ("write", e.write),
                ("timeout", e.timeout),
                ("bad response", e.bad_response),
            ] {
                if n > 0 {
                    parts.push(format!("{name} {n}"));
                }
            }
            for (code, n) in &e.status {
                parts.push(format!("status {code}: {n}"));
            }
            let _ = writeln!(out, "  errors       {} ({})", e.total, parts.join(", "));
        }
        out
    }

    fn write_latency(&self, out: &mut String) {
        let l = &self.latency;
        let _ = writeln!(
            out,
            "  latency      min {}  mean {}  stdev {}  max {}",
            micros(l.min_us),
            micros(l.mean_us),
            micros(l.stdev_us),
            micros(l.max_us)
        );
        let _ = writeln!(
            out,
            "  percentiles  p50 {}  p75 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}",
            micros(l.p50_us),
            micros(l.p75_us),
            micros(l.p90_us),
            micros(l.p99_us),
            micros(l.p99_9_us),
            micros(l.p99_99_us)
        );
    }

    /// Writes the HDR percentile distribution in wrk2's format (values in
    /// milliseconds), for plotting with HdrHistogram's plotter.
    ///
    /// # Errors
    ///
    /// The writer's error.
    pub fn write_histogram(&self, mut w: impl io::Write) -> io::Result<()> {
        let h = &self.histogram;
        writeln!(
            w,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        )?;
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut total = 0u64;
        for v in h.iter_quantiles(1) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    w,
                    "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                    ms(v.value_iterated_to()),
                    q,
                    total,
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(
                    w,
                    "{:>12.3} {:>14.12} {:>10}",
                    ms(v.value_iterated_to()),
                    q,
                    total
                )?;
            }
        }
        writeln!(
            w,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
            h.mean() / 1e6,
            h.stdev() / 1e6
        )?;
        writeln!(
            w,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            ms(h.max()),
            h.len()
        )?;
        writeln!(
            w,
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
            h.buckets(),
            h.distinct_values()
        )?;
        Ok(())
    }
}

/// A latency in microseconds, shown with a fitting unit.
fn micros(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{us:.0}µs")
    }
}

/// A byte rate, in binary units.
fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
