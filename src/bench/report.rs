//! The figures of a run: as text for people, as one JSON object for
//! scripts (`--json`), as an HDR percentile distribution for plotting
//! (`--latency-histogram`, wrk2's format), as a time series (`--series`),
//! and as a saved run that merges with others (`--save`, `bench merge`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::load::{Stats, ThreadUsage};
use super::schedule::Stage;
use super::series::{self, SecondData};
use super::{BenchConfig, BenchError, Protocol, ReplyEnd};

/// Highest latency the run's histogram holds: 1 hour, in nanoseconds.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// A thread busier than this share of its wall time was probably the
/// bottleneck.
const BUSY_CPU: f64 = 0.9;

/// The open loop sent fewer than this share of the requests due: it fell
/// behind its schedule.
const BEHIND: f64 = 0.01;

/// Runs that started further apart than this are merged with their series
/// aligned at their starts rather than by the clock: an hour.
const MAX_MERGE_OFFSET_SECS: f64 = 3600.0;

/// What `--save` writes, and `bench merge` reads, in `format`.
pub const SAVED_FORMAT: &str = "sockit-bench-run/1";

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant histogram bounds are valid")
}

/// What a run measured. Serialized as-is by `--json`.
///
/// Latencies are in microseconds (fractions kept). Only requests taken
/// after the warm-up count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The target, as given.
    pub target: String,
    /// `http`, `raw` (stream, reply of `--expect-bytes` or to end of
    /// stream) or `datagram`.
    pub mode: String,
    /// `closed` (next request when the previous reply is in) or `open`
    /// (`--rate`: requests at intended times, latency corrected for
    /// coordinated omission).
    pub model: String,
    /// Connections (`-c`).
    pub connections: usize,
    /// Threads actually used (`-t`, at most one per connection).
    pub threads: usize,
    /// Requests in flight per connection (`--pipeline`).
    pub pipeline: usize,
    /// The open loop's target rate in requests per second (with
    /// `--stages` or a ramp, the mean over the measured time), `null` for
    /// the closed loop.
    pub rate: Option<f64>,
    /// The open loop's stages (`--stages`, or a `--rate` ramp), `null` for a
    /// constant rate or the closed loop.
    #[serde(default)]
    pub stages: Option<Vec<Stage>>,
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
    /// Measured requests taken (written or attempted): replies, errors,
    /// and the requests still in flight at the end.
    #[serde(default)]
    pub sent: u64,
    /// When measuring started (after the warm-up), in seconds since the
    /// Unix epoch: `bench merge` aligns the series of runs by it.
    #[serde(default)]
    pub started_unix_secs: f64,
    /// How many runs this report holds: 1, or more for `bench merge`.
    #[serde(default = "one")]
    pub runs: usize,
    /// Whether the load generator itself held the run back.
    #[serde(default)]
    pub generator: Generator,
    /// One row per second of the measured run.
    #[serde(default)]
    pub series: Vec<Second>,
    #[serde(skip, default = "empty_histogram")]
    histogram: Histogram<u64>,
}

fn one() -> usize {
    1
}

/// The load generator's own figures: was it the bottleneck?
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Generator {
    /// Per thread, its CPU time (user + system, `getrusage`) as a percentage
    /// of its wall time. Near 100, that thread could not go faster.
    pub thread_cpu_percent: Vec<f64>,
    /// Open loop: requests due by the schedule in the measured time;
    /// `null` for the closed loop.
    pub due: Option<u64>,
    /// Open loop: how far `sent` fell short of `due`, in percent.
    pub behind_percent: Option<f64>,
    /// Why the figures may describe the generator rather than the server;
    /// empty when nothing is wrong.
    pub warnings: Vec<String>,
}

/// One second of the measured run (`--series`).
///
/// A request counts in the second it was taken (`sent`) or ended in
/// (`completed`, `errors`, latency). The last row may cover part of a
/// second.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// Seconds since measuring started (after the warm-up), from 0.
    pub second: u64,
    /// Requests taken (written, or attempted) in this second.
    pub sent: u64,
    /// Replies completed in this second, whatever their status.
    pub completed: u64,
    /// Requests that failed in this second, non-2xx replies included.
    pub errors: u64,
    /// Open loop: requests the schedule had due in this second (its rate);
    /// `null` for the closed loop.
    pub rate: Option<f64>,
    /// Median latency of the replies completed in this second, µs (0 when
    /// none).
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
    /// Their latencies, HdrHistogram V2-encoded (in saved runs only).
    #[serde(skip)]
    histogram: Vec<u8>,
}

impl Second {
    fn new(second: u64, data: SecondData, rate: Option<f64>) -> Second {
        let us = |ns: u64| ns as f64 / 1000.0;
        let (p50_us, p99_us, max_us) = match series::decode(&data.latency) {
            Ok(Some(h)) => (
                us(h.value_at_quantile(0.5)),
                us(h.value_at_quantile(0.99)),
                us(h.max()),
            ),
            _ => (0.0, 0.0, 0.0),
        };
        Second {
            second,
            sent: data.sent,
            completed: data.completed,
            errors: data.errors,
            rate,
            p50_us,
            p99_us,
            max_us,
            histogram: data.latency,
        }
    }

    /// A row from its figures (read back from a series file): `latency`
    /// is p50, p99 and max in µs. It has no histogram, so it cannot merge.
    pub(crate) fn from_parts(
        second: u64,
        sent: u64,
        completed: u64,
        errors: u64,
        rate: Option<f64>,
        latency: [f64; 3],
    ) -> Second {
        Second {
            second,
            sent,
            completed,
            errors,
            rate,
            p50_us: latency[0],
            p99_us: latency[1],
            max_us: latency[2],
            histogram: Vec::new(),
        }
    }

    fn data(&self) -> SecondData {
        SecondData {
            sent: self.sent,
            completed: self.completed,
            errors: self.errors,
            latency: self.histogram.clone(),
        }
    }
}

/// How a run ended, for [`Report::new`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending {
    /// Measured time.
    pub elapsed: Duration,
    /// Cut short by Ctrl-C.
    pub interrupted: bool,
    /// When measuring started, seconds since the Unix epoch.
    pub started_unix_secs: f64,
}

/// A run as `--save` writes it: the report, and its histograms encoded.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// [`SAVED_FORMAT`].
    format: String,
    #[serde(flatten)]
    report: Report,
    /// The run's latency histogram: HdrHistogram V2, base64.
    histogram: String,
    /// Each second's latency histogram, in the order of `series`.
    series_histograms: Vec<String>,
}

/// Latency figures, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
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

impl Latency {
    /// The figures of `h` (nanoseconds) in microseconds; zeros when empty.
    pub fn of(h: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
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
    }
}

impl ErrorCounts {
    fn add(&mut self, other: &ErrorCounts) {
        self.total += other.total;
        self.connect += other.connect;
        self.read += other.read;
        self.write += other.write;
        self.timeout += other.timeout;
        self.bad_response += other.bad_response;
        for (code, n) in &other.status {
            *self.status.entry(code.clone()).or_default() += n;
        }
    }
}

/// The share of `due` requests that were not sent.
fn behind(sent: u64, due: u64) -> f64 {
    if due == 0 {
        0.0
    } else {
        due.saturating_sub(sent) as f64 / due as f64
    }
}

impl Generator {
    fn new(usage: &[ThreadUsage], sent: u64, due: Option<u64>) -> Generator {
        let thread_cpu_percent: Vec<f64> = usage
            .iter()
            .filter_map(|u| {
                let cpu = u.cpu?.as_secs_f64();
                let wall = u.wall.as_secs_f64();
                (wall > 0.0).then(|| (cpu / wall * 100.0).min(100.0))
            })
            .collect();
        let mut warnings = Vec::new();
        let busy: Vec<String> = thread_cpu_percent
            .iter()
            .enumerate()
            .filter(|(_, p)| **p >= BUSY_CPU * 100.0)
            .map(|(i, p)| format!("thread {i} at {p:.0}%"))
            .collect();
        if !busy.is_empty() {
            warnings.push(format!(
                "the generator was the bottleneck: {} of a core; add threads (-t) on more cores, or machines (--save, then bench merge)",
                busy.join(", ")
            ));
        }
        let behind_share = due.map(|d| behind(sent, d));
        if let (Some(share), Some(due)) = (behind_share, due) {
            if share > BEHIND {
                let cause = if busy.is_empty() {
                    "every connection was waiting for a reply: raise -c, or the server is past its capacity"
                } else {
                    "its threads were out of CPU"
                };
                warnings.push(format!(
                    "the open loop fell {:.1}% behind its schedule ({sent} of {due} requests due were sent): {cause}",
                    share * 100.0
                ));
            }
        }
        Generator {
            thread_cpu_percent,
            due,
            behind_percent: behind_share.map(|b| b * 100.0),
            warnings,
        }
    }
}

/// The columns of a CSV series, in order.
pub const SERIES_CSV_HEADER: &str = "second,sent,completed,errors,rate,p50_us,p99_us,max_us";

/// Checks that `path` names a series file [`Report::write_series`] can
/// write (`.csv`, `.jsonl`, `.ndjson`, `.json`), before a run rather than
/// after it.
///
/// # Errors
///
/// [`BenchError::Format`] for another extension.
pub fn check_series_path(path: &Path) -> Result<(), BenchError> {
    SeriesFormat::of(path).map(|_| ())
}

/// How a series file is written, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeriesFormat {
    Csv,
    JsonLines,
}

impl SeriesFormat {
    pub(crate) fn of(path: &Path) -> Result<SeriesFormat, BenchError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext.to_ascii_lowercase().as_str() {
            "csv" => Ok(SeriesFormat::Csv),
            "jsonl" | "ndjson" | "json" => Ok(SeriesFormat::JsonLines),
            _ => Err(BenchError::format(
                path,
                "a series file is .csv (CSV) or .jsonl (JSON lines)",
            )),
        }
    }
}

/// Failed requests, by kind. `total` is their sum.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
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
    pub(crate) fn new(config: &BenchConfig, threads: usize, stats: Stats, end: Ending) -> Report {
        let elapsed = end.elapsed;
        let secs = elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let latency = Latency::of(&stats.latency);
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
        // The schedule's clock starts at the warm-up; the series at its end.
        let warmup = config.warmup.as_secs_f64();
        let profile = config.rate.as_ref();
        let due_in = |from: f64, to: f64| {
            profile.map(|p| (p.due(warmup + to) - p.due(warmup + from)).max(0.0))
        };
        // A row per started second of the measured time; what a thread
        // recorded just past the end (a request due before it, taken a
        // moment after) counts in the last row.
        let rows = ((secs - 1e-3).ceil().max(1.0)) as usize;
        let mut data = stats.series;
        if data.len() > rows {
            let late: Vec<SecondData> = data.split_off(rows);
            for extra in &late {
                // Encoded by this process's threads: it decodes.
                let _ = data[rows - 1].add(extra);
            }
        }
        data.resize_with(rows, SecondData::default);
        let series = data
            .into_iter()
            .enumerate()
            .map(|(i, d)| Second::new(i as u64, d, due_in(i as f64, i as f64 + 1.0)))
            .collect();
        let mut due = due_in(0.0, secs).map(|d| d.ceil() as u64);
        if let (Some(d), Some(n)) = (due.as_mut(), config.requests) {
            *d = (*d).min(n);
        }
        let generator = Generator::new(&stats.usage, stats.sent, due);
        Report {
            target,
            mode: mode.into(),
            model: if config.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .into(),
            connections: config.connections,
            threads,
            pipeline: config.pipeline,
            rate: match profile {
                Some(p) if p.is_constant() => Some(p.final_rate()),
                Some(_) if secs > 0.0 => due_in(0.0, secs).map(|d| d / secs),
                Some(p) => Some(p.rate_at(warmup)),
                None => None,
            },
            stages: profile
                .filter(|p| !p.is_constant())
                .map(|p| p.stages().to_vec()),
            duration_secs: secs,
            requests: stats.replies,
            requests_per_sec: per_sec(stats.replies),
            bytes_read: stats.bytes_read,
            bytes_written: stats.bytes_written,
            read_bytes_per_sec: per_sec(stats.bytes_read),
            latency,
            errors,
            interrupted: end.interrupted,
            sent: stats.sent,
            started_unix_secs: end.started_unix_secs,
            runs: 1,
            generator,
            series,
            histogram: stats.latency,
        }
    }

    /// The run's latency histogram, in nanoseconds.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// Writes the run to `path` with its histograms, losslessly, for
    /// [`Report::load`] and `sockit bench merge`: the report's JSON plus
    /// `histogram` and `series_histograms`, HdrHistogram V2 in base64.
    ///
    /// # Errors
    ///
    /// [`BenchError::File`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), BenchError> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let saved = Saved {
            format: SAVED_FORMAT.into(),
            report: self.clone(),
            histogram: b64(&series::encode(&self.histogram)),
            series_histograms: self.series.iter().map(|s| b64(&s.histogram)).collect(),
        };
        let json = serde_json::to_vec(&saved).map_err(|e| {
            BenchError::file("write", path, io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        std::fs::write(path, json).map_err(|e| BenchError::file("write", path, e))
    }

    /// Reads a run written by [`Report::save`].
    ///
    /// # Errors
    ///
    /// [`BenchError::File`] when the file cannot be read,
    /// [`BenchError::Format`] when it is not a saved run.
    pub fn load(path: &Path) -> Result<Report, BenchError> {
        let bytes = std::fs::read(path).map_err(|e| BenchError::file("read", path, e))?;
        let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| {
            BenchError::format(
                path,
                format!("not a run saved by sockit bench --save ({e})"),
            )
        })?;
        if saved.format != SAVED_FORMAT {
            return Err(BenchError::format(
                path,
                format!(
                    "format '{}' is not {SAVED_FORMAT}: save it again with this sockit",
                    saved.format
                ),
            ));
        }
        let unb64 = |text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| BenchError::format(path, format!("a histogram is not base64 ({e})")))
        };
        let mut report = saved.report;
        let histogram =
            series::decode(&unb64(&saved.histogram)?).map_err(|e| BenchError::format(path, e))?;
        report.histogram = histogram.unwrap_or_else(empty_histogram);
        if saved.series_histograms.len() != report.series.len() {
            return Err(BenchError::format(
                path,
                "series_histograms and series differ in length",
            ));
        }
        for (second, text) in report.series.iter_mut().zip(&saved.series_histograms) {
            second.histogram = unb64(text)?;
            series::decode(&second.histogram).map_err(|e| BenchError::format(path, e))?;
        }
        Ok(report)
    }

    /// Merges runs of several load generators into one report: histograms
    /// added, counts and rates summed, time series aligned by the wall
    /// clock (each run's `started_unix_secs`, to the nearest second).
    ///
    /// Returns `None` for no runs.
    pub fn merge(runs: &[Report]) -> Option<Report> {
        let first = runs.first()?;
        let mut histogram = empty_histogram();
        let mut errors = ErrorCounts::default();
        let mut generator = Generator::default();
        let earliest = runs
            .iter()
            .map(|r| r.started_unix_secs)
            .fold(f64::INFINITY, f64::min);
        let latest = runs
            .iter()
            .map(|r| r.started_unix_secs)
            .fold(f64::NEG_INFINITY, f64::max);
        // Runs of one test start together; runs hours apart are not one
        // load, and aligning them by the clock would pad the series with
        // hours of empty seconds.
        let by_clock = latest - earliest <= MAX_MERGE_OFFSET_SECS;
        if !by_clock {
            generator.warnings.push(format!(
                "the runs started {:.0} s apart: their series are aligned at their starts, not by the clock",
                latest - earliest
            ));
        }
        let mut data: Vec<SecondData> = Vec::new();
        let mut rates: Vec<Option<f64>> = Vec::new();
        let mut targets: Vec<&str> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            for v in run.histogram.iter_recorded() {
                histogram.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
            errors.add(&run.errors);
            generator
                .thread_cpu_percent
                .extend(&run.generator.thread_cpu_percent);
            if let Some(due) = run.generator.due {
                *generator.due.get_or_insert(0) += due;
            }
            for w in &run.generator.warnings {
                generator.warnings.push(format!("run {}: {w}", i + 1));
            }
            let offset = if by_clock {
                (run.started_unix_secs - earliest).round().max(0.0) as usize
            } else {
                0
            };
            let theirs: Vec<SecondData> = run.series.iter().map(Second::data).collect();
            // Saved runs were checked on load; a histogram that does not
            // decode leaves that second's latency out.
            let _ = series::merge(&mut data, &theirs, offset);
            if rates.len() < data.len() {
                rates.resize(data.len(), None);
            }
            for (j, s) in run.series.iter().enumerate() {
                if let (Some(r), Some(slot)) = (s.rate, rates.get_mut(offset + j)) {
                    *slot.get_or_insert(0.0) += r;
                }
            }
            if !targets.contains(&run.target.as_str()) {
                targets.push(&run.target);
            }
        }
        let sent: u64 = runs.iter().map(|r| r.sent).sum();
        if let Some(due) = generator.due {
            generator.behind_percent = Some(behind(sent, due) * 100.0);
        }
        let sum = |f: fn(&Report) -> f64| runs.iter().map(f).sum::<f64>();
        let same = |f: fn(&Report) -> &str| {
            let v = f(first);
            if runs.iter().all(|r| f(r) == v) {
                v.to_owned()
            } else {
                "mixed".to_owned()
            }
        };
        let rate = runs.iter().filter_map(|r| r.rate).reduce(|a, b| a + b);
        let series = data
            .into_iter()
            .zip(rates)
            .enumerate()
            .map(|(i, (d, r))| Second::new(i as u64, d, r))
            .collect();
        Some(Report {
            target: targets.join(", "),
            mode: same(|r| &r.mode),
            model: same(|r| &r.model),
            connections: runs.iter().map(|r| r.connections).sum(),
            threads: runs.iter().map(|r| r.threads).sum(),
            pipeline: first.pipeline,
            rate,
            stages: None,
            duration_secs: runs.iter().map(|r| r.duration_secs).fold(0.0, f64::max),
            requests: runs.iter().map(|r| r.requests).sum(),
            requests_per_sec: sum(|r| r.requests_per_sec),
            bytes_read: runs.iter().map(|r| r.bytes_read).sum(),
            bytes_written: runs.iter().map(|r| r.bytes_written).sum(),
            read_bytes_per_sec: sum(|r| r.read_bytes_per_sec),
            latency: Latency::of(&histogram),
            errors,
            interrupted: runs.iter().any(|r| r.interrupted),
            sent,
            started_unix_secs: earliest,
            runs: runs.iter().map(|r| r.runs).sum(),
            generator,
            series,
            histogram,
        })
    }

    /// Writes the series to `path`: CSV for a `.csv` name, JSON lines (one
    /// object per second) for `.jsonl`, `.ndjson` or `.json`.
    ///
    /// # Errors
    ///
    /// [`BenchError::Format`] for another extension, [`BenchError::File`]
    /// when the file cannot be written.
    pub fn write_series(&self, path: &Path) -> Result<(), BenchError> {
        let text = match SeriesFormat::of(path)? {
            SeriesFormat::Csv => {
                let mut out = String::from(SERIES_CSV_HEADER);
                out.push('\n');
                for s in &self.series {
                    let rate = s.rate.map(|r| format!("{r:.1}")).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{},{:.1},{:.1},{:.1}",
                        s.second, s.sent, s.completed, s.errors, rate, s.p50_us, s.p99_us, s.max_us
                    );
                }
                out
            }
            SeriesFormat::JsonLines => {
                let mut out = String::new();
                for s in &self.series {
                    if let Ok(line) = serde_json::to_string(s) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                out
            }
        };
        std::fs::write(path, text).map_err(|e| BenchError::file("write", path, e))
    }

    /// A line of block characters, one per second (or per group of seconds
    /// past 60), of the replies completed: the run's shape at a glance.
    /// `None` for runs under two seconds.
    pub fn sparkline(&self) -> Option<String> {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        if self.series.len() < 2 {
            return None;
        }
        let group = self.series.len().div_ceil(60);
        let values: Vec<f64> = self
            .series
            .chunks(group)
            .map(|c| c.iter().map(|s| s.completed as f64).sum::<f64>() / c.len() as f64)
            .collect();
        let max = values.iter().copied().fold(0.0, f64::max);
        let line: String = values
            .iter()
            .map(|v| {
                if max > 0.0 {
                    BARS[((v / max) * 7.0).round() as usize]
                } else {
                    BARS[0]
                }
            })
            .collect();
        let per = if group > 1 {
            format!("{group} s")
        } else {
            "second".to_owned()
        };
        Some(format!("  per {per:<8} {line}  replies/s, max {max:.0}\n",))
    }

    /// The report as one JSON object (the fields of [`Report`]).
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as text for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let model = match (self.rate, &self.stages) {
            (Some(rate), None) => {
                format!("open loop at {rate} req/s, latency from intended send times")
            }
            (Some(rate), Some(stages)) => format!(
                "open loop in stages {}, mean {rate:.0} req/s, latency from intended send times",
                stages
                    .iter()
                    .map(|s| format!("{}..{}/{}s", s.from, s.to, s.secs))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            (None, _) => "closed loop".into(),
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
        if self.runs > 1 {
            let _ = writeln!(out, "  merged       {} runs", self.runs);
        }
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
        for warning in &self.generator.warnings {
            let _ = writeln!(out, "  warning      {warning}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{RateProfile, Target};
    use tokio::time::Instant;

    fn usage(cpu_ms: u64, wall_ms: u64) -> ThreadUsage {
        ThreadUsage {
            cpu: Some(Duration::from_millis(cpu_ms)),
            wall: Duration::from_millis(wall_ms),
        }
    }

    #[test]
    fn a_busy_thread_or_a_late_schedule_warns() {
        let calm = Generator::new(&[usage(300, 1000), usage(500, 1000)], 1000, Some(1000));
        assert!(calm.warnings.is_empty(), "{:?}", calm.warnings);
        assert_eq!(calm.thread_cpu_percent, [30.0, 50.0]);
        let busy = Generator::new(&[usage(300, 1000), usage(970, 1000)], 1000, None);
        assert_eq!(busy.warnings.len(), 1, "{:?}", busy.warnings);
        assert!(
            busy.warnings[0].contains("thread 1 at 97%"),
            "{:?}",
            busy.warnings
        );
        // 1% behind is within the schedule; 1.5% is not.
        let on_time = Generator::new(&[usage(100, 1000)], 990, Some(1000));
        assert!(on_time.warnings.is_empty(), "{:?}", on_time.warnings);
        let late = Generator::new(&[usage(100, 1000)], 985, Some(1000));
        assert_eq!(late.behind_percent, Some(1.5));
        assert!(
            late.warnings[0].contains("fell 1.5% behind"),
            "{:?}",
            late.warnings
        );
        assert!(late.warnings[0].contains("raise -c"), "{:?}", late.warnings);
    }

    /// A report of `replies` replies of `latency_ms` each, one per second
    /// tenth, starting at `started` (Unix seconds).
    fn report(replies: u64, latency_ms: u64, started: f64) -> Report {
        let mut config = BenchConfig::new(Target::parse("http://127.0.0.1:1/").unwrap());
        config.rate = Some(RateProfile::constant(10.0).unwrap());
        let from = Instant::now();
        let mut stats = Stats::new(from);
        for i in 0..replies {
            let now = from + Duration::from_millis(100 * i);
            stats.latency.record(latency_ms * 1_000_000).unwrap();
            stats.replies += 1;
            stats.sent += 1;
            stats.record_reply_for_test(now, latency_ms * 1_000_000);
        }
        stats.finish();
        let end = Ending {
            elapsed: Duration::from_millis(100 * replies),
            interrupted: false,
            started_unix_secs: started,
        };
        Report::new(&config, 1, stats, end)
    }

    #[test]
    fn merged_series_align_by_wall_clock_and_sum() {
        let a = report(30, 1, 1000.0);
        let b = report(20, 9, 1001.0);
        assert_eq!(a.series.len(), 3);
        let m = Report::merge(&[a.clone(), b]).unwrap();
        assert_eq!(m.requests, 50);
        assert_eq!(m.series.len(), 3);
        let completed: Vec<u64> = m.series.iter().map(|s| s.completed).collect();
        assert_eq!(completed, [10, 20, 20]);
        // Second 0 only has a's 1 ms replies; seconds 1 and 2, both.
        assert!(m.series[0].max_us < 1100.0, "{:?}", m.series[0]);
        assert!(m.series[1].max_us > 8900.0, "{:?}", m.series[1]);
        assert_eq!(m.series[1].rate, Some(20.0));
        assert_eq!(m.rate, Some(20.0));
        assert_eq!(m.runs, 2);
        assert!((m.latency.p50_us - 1000.0).abs() < 1.0, "{:?}", m.latency);
        assert!((m.latency.max_us - 9000.0).abs() < 10.0, "{:?}", m.latency);
    }

    #[test]
    fn runs_hours_apart_merge_at_their_starts() {
        let m = Report::merge(&[report(30, 1, 1000.0), report(20, 9, 1_000_000.0)]).unwrap();
        assert_eq!(m.series.len(), 3);
        let completed: Vec<u64> = m.series.iter().map(|s| s.completed).collect();
        assert_eq!(completed, [20, 20, 10]);
        assert!(m.generator.warnings[0].contains("aligned at their starts"));
    }

    #[test]
    fn a_saved_run_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let a = report(25, 3, 1000.0);
        a.save(&path).unwrap();
        let b = Report::load(&path).unwrap();
        assert_eq!(b.series, a.series);
        assert_eq!(b.histogram(), a.histogram());
        assert_eq!(b.json(), a.json());
        std::fs::write(&path, b"{}").unwrap();
        assert!(Report::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a run saved"));
    }

    #[test]
    fn series_files_are_csv_or_json_lines_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let a = report(15, 2, 1000.0);
        let csv = dir.path().join("s.csv");
        a.write_series(&csv).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.lines().next(), Some(SERIES_CSV_HEADER));
        assert!(
            text.lines().nth(1).unwrap().starts_with("0,10,10,0,10.0,"),
            "{text}"
        );
        let jsonl = dir.path().join("s.jsonl");
        a.write_series(&jsonl).unwrap();
        let text = std::fs::read_to_string(&jsonl).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["completed"], 5);
        let err = a.write_series(&dir.path().join("s.txt")).unwrap_err();
        assert!(err.to_string().contains(".csv"), "{err}");
    }

    #[test]
    fn the_sparkline_shows_the_shape_of_the_run() {
        let mut a = report(30, 1, 1000.0);
        for (s, n) in a.series.iter_mut().zip([10, 40, 80]) {
            s.completed = n;
        }
        let line = a.sparkline().unwrap();
        assert!(line.contains("▂▅█"), "{line}");
        assert!(line.contains("max 80"), "{line}");
        let short = report(5, 1, 1000.0);
        assert_eq!(short.sparkline(), None, "under two seconds");
    }
}
