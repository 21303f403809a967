//! `sockit serve`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tracing::{debug, info};

use sockit::endpoint::{Endpoint, Family};
use sockit::server::limits::{self, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_UNWRITTEN_BYTES};
use sockit::server::{Builder, ConnLimits, Limits, Server, Signals, DEFAULT_GRACE};
use sockit::service::hello::{Hello, DEFAULT_REPLY};
use sockit::service::{Chargen, Daytime, Discard, Echo, Service};
use sockit::socket::DEFAULT_BACKLOG;
use sockit::Error;

use super::tls::ServerTlsArgs;
use super::values;

/// Arguments of `sockit serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: PORT, HOST:PORT, [IPV6]:PORT, udp://HOST:PORT, unix:/path,
    /// unix:@name, unix-dgram:/path or seqpacket:/path (repeatable).
    ///
    /// The default, 8888, is TCP on all interfaces: dual-stack [::]:8888, or
    /// 0.0.0.0:8888 where IPv6 is unavailable. Port 0 picks a free port; the
    /// "Serving HTTP on ..." line shows which. A Unix socket file left by a
    /// server that is gone is replaced; a live one, or a file that is not a
    /// socket, is an error. The file is removed when the server stops;
    /// @names (Linux abstract sockets) leave no file.
    #[arg(short, long = "listen", value_name = "ADDR", value_parser = parse_endpoint)]
    listen: Vec<Endpoint>,

    /// The service to run on every endpoint.
    ///
    /// hello answers "Hello, world!" (HTTP for HTTP clients, the raw bytes
    /// otherwise); echo (RFC 862) returns what it gets; discard (RFC 863)
    /// swallows it; daytime (RFC 867) sends the date and closes; chargen
    /// (RFC 864) streams characters until the client closes, or answers a
    /// datagram with 0-512 of them.
    #[arg(long, value_enum, value_name = "NAME", default_value = "hello")]
    service: ServiceName,

    /// Permissions of Unix socket files, in octal (0660: owner and group).
    ///
    /// Connecting to a Unix socket needs write permission on its file; the
    /// mode is applied before the socket accepts anyone.
    #[arg(long, value_name = "OCTAL", value_parser = values::mode)]
    mode: Option<u32>,

    /// Listen on IPv4 only: a bare port binds 0.0.0.0, names resolve to IPv4.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Listen on IPv6 only: a bare port binds [::] with IPV6_V6ONLY.
    #[arg(short = '6')]
    ipv6: bool,

    /// The listen(2) backlog: finished handshakes the kernel queues.
    ///
    /// A larger backlog absorbs bursts of new connections; the kernel caps it
    /// at net.core.somaxconn.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG)]
    backlog: u32,

    /// The hello service's reply body, for HTTP and raw clients alike
    /// [default: Hello, world!].
    #[arg(long, value_name = "TEXT")]
    reply: Option<String>,

    /// The largest request head (request line and headers) before 431.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES, value_parser = values::size)]
    max_header_bytes: usize,

    /// Most connections served at once [default: the descriptor limit less a reserve].
    ///
    /// At the limit the server stops accepting and new clients wait in the
    /// kernel's backlog until a connection closes. The default is the
    /// descriptor limit (raised to its hard limit at start) less an eighth of
    /// it, at least 16 and at most 64, kept for listeners and the runtime:
    /// 960 under `ulimit -n 1024`, 48 under `ulimit -n 64`. Higher lets more
    /// clients in at once but past the descriptor limit accepts only fail.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_conns: Option<u64>,

    /// Seconds a client has to send a complete request head; 0 never times out.
    ///
    /// Counted from the first read that leaves part of a head unanswered (on a
    /// new connection, from the accept), not reset by each byte: a slowloris
    /// client sending a byte at a time is closed after this long. Shorter
    /// frees slots held by slow or silent clients sooner; longer is kinder to
    /// clients on very slow links.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = timeout)]
    header_timeout: Duration,

    /// Seconds a keep-alive connection may sit idle between requests; 0 never times out.
    ///
    /// Also bounds each read of a request body. Longer saves clients a new
    /// handshake after a pause; shorter frees descriptors and memory held by
    /// idle clients sooner.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = timeout)]
    idle_timeout: Duration,

    /// Seconds a response may stay unwritable before the client is dropped; 0 never times out.
    ///
    /// A client that stops reading fills the socket's send buffer; the server
    /// then reads nothing more from it (its memory stays fixed) and drops it
    /// after this long without progress. Shorter frees the slot sooner; longer
    /// tolerates clients that pause reading.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = timeout)]
    write_timeout: Duration,

    /// Seconds in-flight requests get to finish after Ctrl-C or SIGTERM.
    ///
    /// Idle connections close at once; a second Ctrl-C exits without waiting.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = values::duration)]
    grace: Duration,

    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// A timeout flag: a duration, where 0 means never.
fn timeout(text: &str) -> Result<Duration, String> {
    let duration = values::duration(text)?;
    Ok(if duration.is_zero() {
        Duration::MAX
    } else {
        duration
    })
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse()
        .map_err(|e: sockit::endpoint::ParseEndpointError| e.to_string())
}

/// Runs the server until a signal, then prints the summary.
pub async fn run(args: ServeArgs) -> sockit::Result<ExitCode> {
    // Before binding, so a signal that arrives once clients can connect
    // always means a graceful shutdown.
    let signals = Signals::install()
        .map_err(|e| Error::Unsupported(format!("cannot install signal handlers: {e}")))?;
    match limits::raise_nofile_limit() {
        Ok(nofile) => debug!(nofile, "descriptor limit raised to the hard limit"),
        Err(err) => debug!(%err, "could not raise the descriptor limit"),
    }
    let limits = Limits {
        max_connections: args
            .max_conns
            .map_or_else(limits::default_max_connections, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
        per_connection: ConnLimits {
            max_header_bytes: args.max_header_bytes,
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            write_timeout: args.write_timeout,
            max_unwritten_bytes: DEFAULT_MAX_UNWRITTEN_BYTES,
        },
    };
    debug_assert_eq!(DEFAULT_GRACE, Duration::from_secs(5));
    let mut builder = Server::builder()
        .backlog(args.backlog)
        .limits(limits)
        .grace(args.grace)
        .mode(args.mode)
        .family(match (args.ipv4, args.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        });
    // ALPN (RFC 7301): the hello service speaks HTTP/1.1; the others no
    // registered protocol, so they offer none.
    let alpn: &[&[u8]] = if args.service == ServiceName::Hello {
        &[b"http/1.1"]
    } else {
        &[]
    };
    if let Some(tls) = args.tls.build(&args.listen, alpn)? {
        builder = builder.tls(tls);
    }
    for endpoint in args.listen {
        builder = builder.listen(endpoint);
    }
    if args.reply.is_some() && args.service != ServiceName::Hello {
        return Err(Error::Usage(
            "--reply only applies to --service hello".into(),
        ));
    }
    match args.service {
        ServiceName::Hello => {
            let reply = args.reply.unwrap_or_else(|| DEFAULT_REPLY.to_owned());
            serve(builder, Hello::new(reply), "HTTP", &signals).await
        }
        ServiceName::Echo => serve(builder, Echo, "echo", &signals).await,
        ServiceName::Discard => serve(builder, Discard, "discard", &signals).await,
        ServiceName::Daytime => serve(builder, Daytime, "daytime", &signals).await,
        ServiceName::Chargen => serve(builder, Chargen::default(), "chargen", &signals).await,
    }
}

/// The services `--service` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ServiceName {
    Hello,
    Echo,
    Discard,
    Daytime,
    Chargen,
}

/// Binds, prints the readiness lines (`Serving LABEL on ADDR ...`), serves
/// until a signal, then prints the summary.
async fn serve<S: Service>(
    builder: Builder,
    service: S,
    label: &str,
    signals: &Signals,
) -> sockit::Result<ExitCode> {
    let server = builder.bind(service).await?;
    for addr in server.local_addrs() {
        info!("Serving {label} on {addr} ...");
    }
    let summary = server.run_with(signals.nth(1), signals.nth(2)).await;
    info!("{summary}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use sockit::server::limits::{
        DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_WRITE_TIMEOUT,
    };

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn help_defaults_are_the_library_defaults() {
        let args = Wrapper::try_parse_from(["serve"]).unwrap().serve;
        assert_eq!(args.header_timeout, DEFAULT_HEADER_TIMEOUT);
        assert_eq!(args.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(args.write_timeout, DEFAULT_WRITE_TIMEOUT);
        assert_eq!(args.grace, DEFAULT_GRACE);
    }

    #[test]
    fn zero_timeouts_never_expire() {
        let args = Wrapper::try_parse_from(["serve", "--idle-timeout", "0"])
            .unwrap()
            .serve;
        assert_eq!(args.idle_timeout, Duration::MAX);
    }
}
