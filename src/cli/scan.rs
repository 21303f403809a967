//! `sockit scan`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tracing::info;

use sockit::endpoint::Family;
use sockit::scan::{
    self, report, Event, PortList, PortResult, PortState, Protocol, ScanOptions, Target,
    DEFAULT_RETRIES,
};
use sockit::Error;

use super::values;

/// Arguments of `sockit scan`.
#[derive(Debug, Args)]
#[command(after_help = "Scan only hosts you own or are allowed to test.")]
pub struct ScanArgs {
    /// Hosts to scan: names, IP addresses (::1 needs no brackets) or CIDR
    /// blocks (127.0.0.0/30), up to 65,536 addresses a block.
    ///
    /// A name is scanned on every address it resolves to (localhost is
    /// often both ::1 and 127.0.0.1); -4 and -6 keep one family.
    #[arg(value_name = "HOST", required = true, num_args = 1.., value_parser = target)]
    hosts: Vec<Target>,

    /// Ports: 80, 1-1024, 22,80,8000-8100, or - for 1-65535.
    #[arg(value_name = "PORTS", value_parser = ports)]
    ports: PortList,

    /// Probe UDP instead of TCP: a reply is open, ICMP port unreachable
    /// closed, silence open|filtered.
    ///
    /// Ports 53 and 123 get a DNS and an NTP request, others an empty
    /// datagram. Silence is never reported as open: a UDP service that
    /// ignores the probe looks the same as a firewall that drops it. Hosts
    /// rate-limit ICMP errors (Linux: 1,000 a second), so a scan of many
    /// closed UDP ports needs --retries.
    #[arg(short = 'u', long)]
    udp: bool,

    /// Print every port (closed and filtered too), not only open ones.
    #[arg(short, long)]
    all: bool,

    /// Print one JSON object per line instead: host, port, protocol, state,
    /// rtt_ms (null when nothing answered).
    ///
    /// The same ports as the text lines: the open ones, or every port with --all.
    #[arg(long)]
    json: bool,

    /// Seconds a probe waits for an answer at most [default: 1].
    ///
    /// The first probes wait this long; once answers come in, probes wait
    /// the measured round-trip time plus four deviations (at least 0.1 s),
    /// doubled for each retry, never more than this. A longer timeout
    /// finds slow hosts; a shorter one ends sooner on filtered ports.
    #[arg(short = 'w', long, value_name = "SECS", value_parser = values::duration)]
    timeout: Option<Duration>,

    /// Probe a silent port this many more times before calling it
    /// filtered (TCP) or open|filtered (UDP).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRIES)]
    retries: u32,

    /// Probes in flight at most [default: the descriptor limit less a
    /// reserve, at most 4096].
    ///
    /// Each probe holds a descriptor, so the default never runs out of
    /// them: the soft RLIMIT_NOFILE is raised to the hard limit first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    parallel: Option<u64>,

    /// Probe until every port is open, for at most SECS: exit 0 when all
    /// opened, 1 when the time ran out.
    ///
    /// For scripts that wait for a server: sockit scan localhost 8080
    /// --wait-until-open 30 && curl localhost:8080. Ports are probed every
    /// 0.1 s.
    #[arg(long, value_name = "SECS", value_parser = values::duration)]
    wait_until_open: Option<Duration>,

    /// Scan IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Scan IPv6 addresses only.
    #[arg(short = '6')]
    ipv6: bool,
}

fn target(text: &str) -> Result<Target, String> {
    text.parse()
        .map_err(|e: scan::target::ParseTargetError| e.to_string())
}

fn ports(text: &str) -> Result<PortList, String> {
    text.parse()
        .map_err(|e: scan::ports::ParsePortsError| e.to_string())
}

impl ScanArgs {
    fn options(&self) -> ScanOptions {
        ScanOptions {
            protocol: if self.udp {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            timeout: self.timeout.unwrap_or(scan::DEFAULT_TIMEOUT),
            retries: self.retries,
            parallel: self.parallel.map(|n| n as usize),
        }
    }

    fn family(&self) -> Option<Family> {
        match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        }
    }
}

/// Where result lines go: stdout, around the progress bar when there is
/// one. A closed pipe (`| head`) ends the output quietly.
struct Output {
    stdout: std::io::BufWriter<std::io::Stdout>,
    bar: Option<indicatif::ProgressBar>,
    json: bool,
    failed: Option<std::io::Error>,
}

impl Output {
    fn line(&mut self, result: &PortResult) {
        if self.failed.is_some() {
            return;
        }
        let line = if self.json {
            report::json_line(result)
        } else {
            report::text_line(result)
        };
        let stdout = &mut self.stdout;
        let written = match &self.bar {
            Some(bar) => bar.suspend(|| writeln!(stdout, "{line}").and_then(|()| stdout.flush())),
            None => writeln!(stdout, "{line}"),
        };
        self.failed = written.err();
    }

    fn finish(mut self) -> sockit::Result<()> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let flushed = match self.failed.take() {
            Some(err) => Err(err),
            None => self.stdout.flush(),
        };
        match flushed {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Stdio {
                what: "write to standard output",
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// Scans, prints the result lines and a summary; exit status 0 when a
/// port is open, 1 when none is.
pub async fn run(args: ScanArgs) -> sockit::Result<ExitCode> {
    let opts = args.options();
    let targets = scan::target::resolve(&args.hosts, args.family()).await?;
    let total = targets.len() as u64 * args.ports.len() as u64;
    let bar = (std::io::stderr().is_terminal() && args.wait_until_open.is_none())
        .then(|| progress_bar(total));
    let mut out = Output {
        stdout: std::io::BufWriter::new(std::io::stdout()),
        bar,
        json: args.json,
        failed: None,
    };
    if let Some(within) = args.wait_until_open {
        let left = scan::wait::wait_until_open(&targets, &args.ports, &opts, within, |result| {
            out.line(result);
        })
        .await;
        out.finish()?;
        let left = left?;
        return match left.first() {
            None => Ok(ExitCode::SUCCESS),
            Some(first) => Err(Error::Timeout {
                what: "waiting for",
                addr: if left.len() == 1 {
                    format!("{first} to open")
                } else {
                    format!("{first} and {} more ports to open", left.len() - 1)
                },
                secs: within.as_secs_f64(),
            }),
        };
    }
    let summary = scan::scan(&targets, &args.ports, &opts, |event| match event {
        Event::Port(result) => {
            if args.all || result.state == PortState::Open {
                out.line(result);
            }
        }
        Event::Progress { done, .. } => {
            if let Some(bar) = &out.bar {
                bar.set_position(done);
            }
        }
    })
    .await;
    out.finish()?;
    let summary = summary?;
    info!("{}", report::summary_line(&summary));
    Ok(if summary.open > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} ports, {elapsed}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<super::ScanArgs, clap::Error> {
        let mut all = vec!["sockit", "scan"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all)?.command {
            Command::Scan(args) => Ok(args),
            _ => panic!("not scan"),
        }
    }

    #[test]
    fn several_hosts_come_before_the_ports() {
        let args = parse(&["127.0.0.1", "::1", "127.0.0.0/30", "22,80"]).unwrap();
        assert_eq!(args.hosts.len(), 3);
        assert_eq!(args.ports.as_slice(), [22, 80]);
        let all = parse(&["localhost", "-"]).unwrap();
        assert_eq!(all.ports.len(), 65535);
        let opts = all.options();
        assert_eq!(opts.timeout, sockit::scan::DEFAULT_TIMEOUT);
        assert_eq!(opts.retries, sockit::scan::DEFAULT_RETRIES);
    }

    #[test]
    fn a_malformed_port_list_is_a_usage_error_naming_the_forms() {
        let err = parse(&["127.0.0.1", "80-"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("invalid ports '80-': the last port of a range is missing"),
            "{text}"
        );
        assert!(text.contains("or - for 1-65535"), "{text}");
        assert!(parse(&["127.0.0.1"]).is_err(), "PORTS is required");
        assert!(parse(&["-4", "-6", "127.0.0.1", "80"]).is_err());
    }
}
