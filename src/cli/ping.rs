//! `sockit ping`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use sockit::endpoint::Family;
use sockit::ping::{self, PingOptions, DEFAULT_SIZE, MAX_SIZE};
use sockit::socket::IcmpKind;

use super::values;

/// Arguments of `sockit ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// The host to ping: a name, an IPv4 or an IPv6 address.
    #[arg(value_name = "HOST")]
    host: String,

    /// Send COUNT requests, wait for their replies, and stop [default: until Ctrl-C].
    #[arg(short, long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Seconds between requests.
    #[arg(short, long, value_name = "SECS", default_value = "1", value_parser = interval)]
    interval: Duration,

    /// Seconds to wait for each reply; a later reply counts as lost.
    #[arg(short = 'W', long, value_name = "SECS", default_value = "10", value_parser = values::duration)]
    timeout: Duration,

    /// Payload bytes per request (the ICMP message is 8 bytes more).
    #[arg(short, long, value_name = "BYTES", default_value_t = DEFAULT_SIZE, value_parser = size)]
    size: usize,

    /// Ping over IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Ping over IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    /// The socket kind: an unprivileged ICMP datagram socket, a raw socket
    /// (root or CAP_NET_RAW), or auto: datagram, then raw.
    #[arg(long, value_name = "KIND", default_value = "auto")]
    socket: SocketKind,
}

/// `--socket`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SocketKind {
    Auto,
    Dgram,
    Raw,
}

/// A payload size that fits one packet.
fn size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_SIZE => Ok(n),
        _ => Err(format!(
            "'{text}' is not a payload size: expected 0 to {MAX_SIZE} bytes"
        )),
    }
}

/// At least a millisecond: a zero interval would flood.
fn interval(text: &str) -> Result<Duration, String> {
    let value = values::duration(text)?;
    if value < Duration::from_millis(1) {
        return Err(format!(
            "'{text}' is too short: the interval is at least 0.001 seconds"
        ));
    }
    Ok(value)
}

/// Pings until COUNT or Ctrl-C; exit status 1 when no reply came back.
pub async fn run(args: PingArgs) -> sockit::Result<ExitCode> {
    let opts = PingOptions {
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
        size: args.size,
        family: match (args.ipv4, args.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        },
        kind: match args.socket {
            SocketKind::Auto => None,
            SocketKind::Dgram => Some(IcmpKind::Datagram),
            SocketKind::Raw => Some(IcmpKind::Raw),
        },
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut stdout = std::io::stdout().lock();
    let stats = ping::ping(&args.host, &opts, &mut stdout, stop).await?;
    Ok(if stats.received > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use sockit::ping::{DEFAULT_INTERVAL, DEFAULT_SIZE, DEFAULT_TIMEOUT};

    #[test]
    fn the_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["sockit", "ping", "::1"]).unwrap();
        let Command::Ping(args) = cli.command else {
            panic!("not ping");
        };
        assert_eq!(args.interval, DEFAULT_INTERVAL);
        assert_eq!(args.timeout, DEFAULT_TIMEOUT);
        assert_eq!(args.size, DEFAULT_SIZE);
        assert_eq!(args.count, None);
    }

    #[test]
    fn a_zero_interval_is_refused() {
        let err = Cli::try_parse_from(["sockit", "ping", "-i", "0", "::1"]).unwrap_err();
        assert!(err.to_string().contains("at least 0.001 seconds"), "{err}");
    }
}
