//! `sockit bench`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand};

use sockit::bench::{
    self, BenchConfig, FindMaxConfig, Progress, Protocol, RateProfile, ReplyEnd, Report, Slo,
    Target,
};
use sockit::Error;

use super::values;

/// Arguments of `sockit bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    tool: Option<BenchTool>,

    /// What to load: http://HOST:PORT/path, or an endpoint (tcp://, unix:, udp://) for raw mode.
    ///
    /// An http:// URL sends HTTP/1.1 requests and parses each response. Any
    /// other endpoint is raw mode: --payload per request, and a reply that
    /// ends after --expect-bytes N, at end of stream (one connection per
    /// request, as the tutorial's raw hello) or, for udp://, with one
    /// datagram.
    #[arg(value_name = "TARGET", required = true)]
    target: Option<String>,

    /// Connections kept busy at once.
    #[arg(short, long, value_name = "N", default_value_t = bench::DEFAULT_CONNECTIONS,
          value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize))]
    connections: usize,

    /// Threads, each with its own runtime and share of the connections [default: cores].
    ///
    /// Threads share nothing while running; more threads than cores only
    /// add switching.
    #[arg(short, long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize))]
    threads: Option<usize>,

    /// How long to measure, after --warmup [default: 10s, unless -n is given].
    #[arg(short, long, value_name = "DURATION", value_parser = values::duration)]
    duration: Option<Duration>,

    /// Stop after this many requests (replies and errors), instead of a duration.
    ///
    /// With -d too, whichever comes first ends the run.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,

    /// Load the server this long first, and discard those samples.
    ///
    /// Lets connections open, caches fill and the CPU settle, so the figures
    /// describe the steady state rather than the start.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = values::duration)]
    warmup: Duration,

    /// Open loop: send R requests per second in all, at fixed times, and measure
    /// latency from each request's intended send time; FROM..TO/DURATION ramps.
    ///
    /// Without it (closed loop, like wrk), a stalled server also stalls the
    /// load, and the stall shows as one slow request. With it (like wrk2),
    /// every request that should have gone out during the stall counts its
    /// wait: the percentiles are what users at that rate would see.
    /// `100..20000/60s` ramps linearly from 100 to 20,000 req/s over 60 s
    /// (and the run lasts 60 s unless -d says otherwise); intended times
    /// follow the integral of the rate, so a ramp past the server's capacity
    /// shows as growing latency. With --find-max, the first rate tried.
    #[arg(long, value_name = "R|FROM..TO/DURATION", value_parser = rate_profile)]
    rate: Option<Box<RateProfile>>,

    /// Open loop in stages: RATE/DURATION,… each ramping linearly from the
    /// previous rate (the first from 0) [example: '1000/10s,5000/30s,0/5s'].
    ///
    /// FROM..TO/DURATION sets a stage's start rate, so 500..500/10s is a
    /// step. The run lasts as long as the stages, unless -d says otherwise
    /// (the last rate is then held).
    #[arg(long, value_name = "STAGES", conflicts_with = "rate", value_parser = stages_profile)]
    stages: Option<Box<RateProfile>>,

    /// Write one row per second to FILE: CSV for FILE.csv, JSON lines for FILE.jsonl.
    ///
    /// Columns: second, sent, completed, errors, rate (the open loop's
    /// requests due that second), p50_us, p99_us, max_us (of the replies
    /// completed that second).
    #[arg(long, value_name = "FILE")]
    series: Option<PathBuf>,

    /// Search for the highest rate meeting --slo: a coarse ramp, then bisection.
    ///
    /// Each step is a run of its own at one open-loop rate (new
    /// connections, --warmup, then --step measured): first --rate
    /// [default: 100], doubling until a step misses the objective, then
    /// bisecting until the rates that met and missed it are within 5%. A
    /// miss is run once more, and counts only if it misses again (one
    /// stall of the machine does not end the search). Prints the highest rate that met it and the table of steps, each with
    /// the spread of its per-second p99 and throughput (a wide spread: make
    /// --step longer).
    #[arg(long, requires = "slo", conflicts_with_all = ["stages", "requests", "duration", "series", "save", "latency_histogram"])]
    find_max: bool,

    /// The objective for --find-max: rules such as 'p99<10ms,errors<0.1%'.
    ///
    /// Latency figures p50, p90, p99, p99.9 (any pNN), max and mean, below
    /// a duration in ns, us, ms or s; errors below a percentage of the
    /// requests. `<=` is allowed.
    #[arg(long, value_name = "RULES", requires = "find_max", value_parser = slo)]
    slo: Option<Slo>,

    /// How long --find-max measures each step.
    #[arg(long, value_name = "DURATION", default_value = "5", requires = "find_max", value_parser = values::duration)]
    step: Duration,

    /// Save the whole run to FILE (JSON, histograms lossless) for `sockit bench merge`.
    ///
    /// Run sockit bench on each load machine with --save, then merge the
    /// files into one report: histograms are added, so the percentiles are
    /// those of all the requests together.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,

    /// HTTP method.
    #[arg(short = 'X', long, value_name = "METHOD", default_value = "GET")]
    method: String,

    /// An HTTP header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,

    /// HTTP request body: TEXT, or @FILE for a file's contents.
    #[arg(long, value_name = "TEXT|@FILE")]
    body: Option<String>,

    /// HTTP: a new connection per request (Connection: close), instead of keep-alive.
    ///
    /// Measures connection setup and teardown as well as the request.
    #[arg(long, conflicts_with = "pipeline")]
    close: bool,

    /// Requests in flight per connection (HTTP, or raw with --expect-bytes).
    ///
    /// Pipelining sends the next requests before the replies arrive; it
    /// measures how fast a server parses and answers, less the round trips.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1024).map(|n| n as usize))]
    pipeline: usize,

    /// Raw mode: bytes sent per request: TEXT, or @FILE [default: "Hello, world"].
    #[arg(long, value_name = "TEXT|@FILE")]
    payload: Option<String>,

    /// Raw mode: a reply is complete after N bytes, and the connection is kept.
    ///
    /// Without it, a stream reply ends at end of stream: one connection per
    /// request.
    #[arg(long, value_name = "N", value_parser = values::size)]
    expect_bytes: Option<usize>,

    /// How long a request may take before it counts as a timeout and its
    /// connection is replaced.
    #[arg(long, value_name = "DURATION", default_value = "2", value_parser = values::duration)]
    timeout: Duration,

    /// Print the report as one JSON object (fields in the README).
    #[arg(long)]
    json: bool,

    /// Write the HDR latency percentile distribution to FILE (wrk2's format, ms).
    #[arg(long, value_name = "FILE")]
    latency_histogram: Option<std::path::PathBuf>,
}

/// The tools beside a run.
#[derive(Debug, Subcommand)]
enum BenchTool {
    /// Merge runs saved with --save (from several machines) into one report.
    Merge(MergeArgs),
    /// Draw a series (--series FILE, or a --save FILE) as SVG: latency and throughput over time.
    Plot(PlotArgs),
}

/// Arguments of `sockit bench plot`.
#[derive(Debug, Args)]
struct PlotArgs {
    /// A series file (.csv or .jsonl, from --series) or a saved run (--save).
    #[arg(value_name = "FILE")]
    input: PathBuf,

    /// The SVG file to write.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

/// Arguments of `sockit bench merge`.
#[derive(Debug, Args)]
struct MergeArgs {
    /// Runs saved by `sockit bench --save FILE`.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,

    /// Print the merged report as one JSON object.
    #[arg(long)]
    json: bool,

    /// Save the merged run to FILE, to merge again.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,

    /// Write the merged series to FILE (.csv or .jsonl).
    #[arg(long, value_name = "FILE")]
    series: Option<PathBuf>,
}

fn slo(text: &str) -> Result<Slo, String> {
    Slo::parse(text).map_err(|e| e.to_string())
}

// Boxed: a profile is a few vectors, and clippy keeps the arguments small.
fn rate_profile(text: &str) -> Result<Box<RateProfile>, String> {
    RateProfile::parse_rate(text)
        .map(Box::new)
        .map_err(|e| e.to_string())
}

fn stages_profile(text: &str) -> Result<Box<RateProfile>, String> {
    RateProfile::parse_stages(text)
        .map(Box::new)
        .map_err(|e| e.to_string())
}

/// TEXT, or the contents of FILE for `@FILE`.
fn text_or_file(value: &str, what: &str) -> sockit::Result<Bytes> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| Error::Unsupported(format!("cannot read {what} file {path}: {e}"))),
        None => Ok(Bytes::copy_from_slice(value.as_bytes())),
    }
}

/// Builds the library's configuration from the arguments.
fn config(args: &BenchArgs, target: &str) -> sockit::Result<BenchConfig> {
    let mut target = Target::parse(target)?;
    match &mut target.protocol {
        Protocol::Http(request) => {
            if args.payload.is_some() || args.expect_bytes.is_some() {
                return Err(Error::Usage(
                    "--payload and --expect-bytes are for raw targets; an http:// target takes -X, -H and --body".into(),
                ));
            }
            request.method = args.method.clone();
            for header in &args.headers {
                let Some((name, value)) = header.split_once(':') else {
                    return Err(Error::Usage(format!(
                        "invalid header '{header}': expected 'Name: value'"
                    )));
                };
                let name = name.trim();
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(Error::Unsupported(format!(
                        "invalid header '{header}': expected 'Name: value'"
                    )));
                }
                request
                    .headers
                    .push((name.to_owned(), value.trim().to_owned()));
            }
            if let Some(body) = &args.body {
                request.body = text_or_file(body, "body")?;
            }
        }
        Protocol::Raw { payload, reply_end } => {
            if args.method != "GET" || !args.headers.is_empty() || args.body.is_some() || args.close
            {
                return Err(Error::Usage(format!(
                    "-X, -H, --body and --close are for http:// targets; {} is raw: use --payload",
                    target.endpoint
                )));
            }
            if let Some(text) = &args.payload {
                *payload = text_or_file(text, "payload")?;
            }
            if let Some(n) = args.expect_bytes {
                if *reply_end == ReplyEnd::Datagram {
                    return Err(Error::Usage(format!(
                        "{} is a datagram endpoint: a reply is one datagram; drop --expect-bytes",
                        target.endpoint
                    )));
                }
                *reply_end = ReplyEnd::Bytes(n);
            }
        }
    }
    let mut config = BenchConfig::new(target);
    config.connections = args.connections;
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    config.duration = args.duration;
    config.requests = args.requests;
    config.warmup = args.warmup;
    config.rate = args.rate.as_deref().or(args.stages.as_deref()).cloned();
    config.pipeline = args.pipeline;
    config.close = args.close;
    config.timeout = args.timeout;
    Ok(config)
}

/// Runs the benchmark (or a tool) and prints its report; Ctrl-C prints the
/// report so far.
pub async fn run(args: BenchArgs) -> sockit::Result<ExitCode> {
    match &args.tool {
        Some(BenchTool::Merge(merge)) => return run_merge(merge),
        Some(BenchTool::Plot(plot)) => {
            bench::plot::plot_file(&plot.input, &plot.output)?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let Some(target) = args.target.as_deref() else {
        return Err(Error::Usage(
            "sockit bench needs a TARGET (or merge, plot)".into(),
        ));
    };
    let config = config(&args, target)?;
    if let Some(path) = &args.series {
        bench::report::check_series_path(path)?;
    }
    if args.find_max {
        return run_find_max(&args, config).await;
    }
    let bar = std::io::stderr().is_terminal().then(progress_bar);
    // Installed before any load starts, so an early Ctrl-C still prints a report.
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Error::Unsupported(format!("cannot install the Ctrl-C handler: {e}")))?;
    let stop = async move {
        interrupt.recv().await;
    };
    let mut last = (Duration::ZERO, 0);
    let report = bench::run(config, stop, |p| {
        if let Some(bar) = &bar {
            show(bar, p, last);
        }
        last = (p.elapsed, p.done);
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if let Some(path) = &args.latency_histogram {
        let file = std::fs::File::create(path)
            .map_err(|e| Error::Unsupported(format!("cannot create {}: {e}", path.display())))?;
        report
            .write_histogram(std::io::BufWriter::new(file))
            .map_err(|e| Error::Unsupported(format!("cannot write {}: {e}", path.display())))?;
    }
    outputs(&report, args.save.as_deref(), args.series.as_deref())?;
    let printed = print_report(&report, args.json)?;
    // A run in which nothing succeeded is a failed run, whatever the
    // report says, so scripts (`sockit bench … && deploy`) see it.
    let failed_status: u64 = report.errors.status.values().sum();
    if report.requests.saturating_sub(failed_status) == 0 {
        eprintln!(
            "sockit: error: no request to {} succeeded ({} errors): is a server listening there?",
            report.target, report.errors.total
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(printed)
}

/// Writes the saved run and the series, when asked.
fn outputs(
    report: &Report,
    save: Option<&std::path::Path>,
    series: Option<&std::path::Path>,
) -> sockit::Result<()> {
    if let Some(path) = save {
        report.save(path)?;
    }
    if let Some(path) = series {
        report.write_series(path)?;
    }
    Ok(())
}

/// `sockit bench --find-max`: one line per step on stderr as it goes, the
/// answer and the table on stdout.
async fn run_find_max(args: &BenchArgs, mut config: BenchConfig) -> sockit::Result<ExitCode> {
    let Some(slo) = args.slo.clone() else {
        return Err(Error::Usage("--find-max needs --slo".into()));
    };
    let mut search = FindMaxConfig::new(slo);
    search.step = args.step;
    if let Some(profile) = &args.rate {
        if !profile.is_constant() {
            return Err(Error::Usage(
                "--find-max starts from one rate: give --rate R, not a ramp".into(),
            ));
        }
        search.start_rate = profile.final_rate();
    }
    config.rate = None;
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Error::Unsupported(format!("cannot install the Ctrl-C handler: {e}")))?;
    let stop = async move {
        interrupt.recv().await;
    };
    let terminal = std::io::stderr().is_terminal();
    let found = bench::find_max(config, search, stop, |step| {
        if terminal {
            eprintln!(
                "step at {:.0} req/s: {}",
                step.rate,
                if step.met { "met" } else { "missed" }
            );
        }
    })
    .await?;
    let text = if args.json {
        found.json() + "\n"
    } else {
        found.text()
    };
    write_stdout(&text)
}

/// `sockit bench merge`.
fn run_merge(args: &MergeArgs) -> sockit::Result<ExitCode> {
    let runs = args
        .files
        .iter()
        .map(|path| Report::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(report) = Report::merge(&runs) else {
        return Err(Error::Unsupported(
            "bench merge needs at least one saved run".into(),
        ));
    };
    outputs(&report, args.save.as_deref(), args.series.as_deref())?;
    print_report(&report, args.json)
}

/// Prints the report on stdout, as JSON or text (with the per-second
/// sparkline on a terminal).
fn print_report(report: &Report, json: bool) -> sockit::Result<ExitCode> {
    let text = if json {
        report.json() + "\n"
    } else {
        let mut text = report.text();
        if std::io::stdout().is_terminal() {
            if let Some(line) = report.sparkline() {
                text.push_str(&line);
            }
        }
        text
    };
    write_stdout(&text)
}

/// Writes `text` to stdout; a closed pipe ends quietly.
fn write_stdout(text: &str) -> sockit::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Unsupported(format!(
            "cannot write to standard output: {e}"
        ))),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1000);
    let style = indicatif::ProgressStyle::with_template("{bar:30} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Shows `p` on the bar; `last` is the previous (elapsed, done), for the
/// current rate.
fn show(bar: &indicatif::ProgressBar, p: &Progress, last: (Duration, u64)) {
    let fraction = match (p.total, p.planned) {
        (Some(total), _) if !total.is_zero() => p.elapsed.as_secs_f64() / total.as_secs_f64(),
        (_, Some(planned)) => p.done as f64 / planned as f64,
        _ => 0.0,
    };
    bar.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
    let elapsed = p.elapsed.as_secs_f64();
    let of = match (p.total, p.planned) {
        (Some(total), _) => format!("{elapsed:.1}s/{:.1}s", total.as_secs_f64()),
        (_, Some(planned)) => format!("{}/{planned} requests, {elapsed:.1}s", p.done),
        _ => format!("{elapsed:.1}s"),
    };
    let phase = if p.warming_up { "warming up, " } else { "" };
    bar.set_message(format!(
        "{phase}{of}, {:.0} req/s, {} errors",
        p.done.saturating_sub(last.1) as f64
            / p.elapsed.saturating_sub(last.0).as_secs_f64().max(0.001),
        p.errors
    ));
}
