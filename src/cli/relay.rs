//! `sockit relay`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tracing::{debug, info};

use sockit::bridge::{
    self, BridgeOptions, ConnectOptions, Framing, Stdio, DEFAULT_CHUNK, MAX_DATAGRAM,
};
use sockit::endpoint::{Endpoint, Family};
use sockit::relay::flows::DEFAULT_MAX_FLOWS;
use sockit::relay::{
    default_max_pairs, ProxyVersion, Relay, RelayOptions, Target, DESCRIPTORS_PER_PAIR,
};
use sockit::server::limits::{self, DEFAULT_IDLE_TIMEOUT};
use sockit::server::{ConnLimits, Limits, Server, Signals};
use sockit::socket::DEFAULT_BACKLOG;
use sockit::Error;

use super::tls::ServerTlsArgs;
use super::values;

/// Arguments of `sockit relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Where to accept: PORT, HOST:PORT, [IPV6]:PORT, udp://HOST:PORT, unix:/path, unix:@name, seqpacket:/path, or - for stdin/stdout.
    ///
    /// Every accepted connection gets its own connection to TO. With -,
    /// standard input and output are joined to one connection to TO, as
    /// `sockit connect TO` does.
    #[arg(value_name = "FROM", value_parser = from)]
    from: From,

    /// Where to send each connection: HOST:PORT, unix:/path, seqpacket:/path, udp://HOST:PORT (from udp:// only), or exec:COMMAND.
    ///
    /// exec:COMMAND runs `/bin/sh -c COMMAND` per connection with the
    /// connection as its stdin and stdout, and the peer's address in
    /// SOCKIT_PEER_ADDR (and SOCAT_PEERADDR / SOCAT_PEERPORT for IP peers).
    /// A host name is resolved once, at start.
    #[arg(value_name = "TO", value_parser = target)]
    to: Target,

    /// Most pairs relayed at once [default: the descriptor limit / 6].
    ///
    /// At the limit the relay stops accepting and new clients wait in the
    /// kernel's backlog. A spliced pair holds six descriptors (two sockets,
    /// two pipes), hence the default: the descriptor limit (raised to its
    /// hard limit at start) less a reserve, divided by six.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_conns: Option<u64>,

    /// Seconds a pair may move no byte either way before both sides are closed; 0 never [default: 60; none with FROM -].
    ///
    /// Shorter frees descriptors held by silent clients sooner; longer (or
    /// 0) keeps quiet interactive sessions (ssh, a database) alive.
    #[arg(short = 'w', long, value_name = "SECS", value_parser = values::duration)]
    idle_timeout: Option<Duration>,

    /// Seconds connecting to TO may take, per address; 0 waits as long as the OS does.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = values::duration)]
    connect_timeout: Duration,

    /// Seconds pairs get to finish after Ctrl-C or SIGTERM.
    ///
    /// The listeners close at once; a second Ctrl-C exits without waiting.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = values::duration)]
    grace: Duration,

    /// UDP to UDP: most client flows at once, each with its own upstream socket.
    ///
    /// A flow is a client address; its replies come back on its own
    /// upstream socket, so they reach the right client. Flows silent for
    /// --idle-timeout are reaped; a new client beyond this many evicts the
    /// quietest flow. Higher serves more clients at once, at a descriptor
    /// each.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FLOWS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_flows: usize,

    /// Send a PROXY protocol header (v1 text or v2 binary) with the client's address to TO first.
    ///
    /// The server behind the relay (HAProxy with accept-proxy, nginx with
    /// proxy_protocol, sockit serve) then sees the original client, not the
    /// relay. Only for servers that expect it: to any other, the header is
    /// the start of the stream.
    #[arg(long, value_name = "VERSION")]
    send_proxy: Option<ProxyVersion>,

    /// The listen(2) backlog of FROM.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG)]
    backlog: u32,

    /// Permissions of a Unix socket file FROM, in octal (0660: owner and group).
    #[arg(long, value_name = "OCTAL", value_parser = values::mode)]
    mode: Option<u32>,

    /// IPv4 only, for FROM and TO.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// IPv6 only, for FROM and TO.
    #[arg(short = '6')]
    ipv6: bool,

    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// FROM: an endpoint, or standard input and output.
#[derive(Debug, Clone)]
enum From {
    Stdio,
    Listen(Endpoint),
}

fn from(text: &str) -> Result<From, String> {
    if text == "-" {
        return Ok(From::Stdio);
    }
    values::endpoint(text).map(From::Listen)
}

fn target(text: &str) -> Result<Target, String> {
    text.parse()
        .map_err(|e: sockit::endpoint::ParseEndpointError| e.to_string())
}

/// Runs the relay until a signal, then prints the summary.
pub async fn run(args: RelayArgs) -> sockit::Result<ExitCode> {
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Some(Family::V4),
        (_, true) => Some(Family::V6),
        _ => None,
    };
    let endpoint = match (&args.from, &args.to) {
        (From::Listen(endpoint), _) => endpoint.clone(),
        (From::Stdio, _) if args.tls.is_set() => {
            return Err(Error::Usage(
                "--tls-cert, --tls-self-signed and --client-ca need a listening FROM, not -".into(),
            ))
        }
        (From::Stdio, Target::Connect(to)) => return relay_stdio(&args, to, family).await,
        (From::Stdio, Target::Exec(_)) => {
            return Err(Error::Usage(
                "relay - exec:… is not supported: run the command itself".into(),
            ))
        }
    };
    let signals = Signals::install()
        .map_err(|e| Error::Unsupported(format!("cannot install signal handlers: {e}")))?;
    match limits::raise_nofile_limit() {
        Ok(nofile) => debug!(nofile, "descriptor limit raised to the hard limit"),
        Err(err) => debug!(%err, "could not raise the descriptor limit"),
    }
    let max_connections = args.max_conns.map_or_else(default_max_pairs, |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    debug!(
        max_connections,
        per_pair = DESCRIPTORS_PER_PAIR,
        "relay pair limit"
    );
    let opts = RelayOptions {
        limits: Limits {
            max_connections,
            per_connection: ConnLimits {
                idle_timeout: never_if_zero(args.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT)),
                ..ConnLimits::default()
            },
        },
        grace: args.grace,
        connect_timeout: (!args.connect_timeout.is_zero()).then_some(args.connect_timeout),
        max_flows: args.max_flows,
        send_proxy: args.send_proxy,
        family,
    };
    // Bytes are relayed as they are: no ALPN protocol to offer.
    let tls = args.tls.build(std::slice::from_ref(&endpoint), &[])?;
    let mut builder = Server::builder()
        .listen(endpoint)
        .backlog(args.backlog)
        .mode(args.mode)
        .family(family);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let relay = Relay::bind(builder, &args.to, opts).await?;
    for addr in relay.local_addrs() {
        info!("Serving relay on {addr} to {} ...", args.to);
    }
    let summary = relay.run_with(signals.nth(1), signals.nth(2)).await;
    info!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// `relay - TO`: standard input and output joined to TO, as `connect`.
async fn relay_stdio(
    args: &RelayArgs,
    to: &Endpoint,
    family: Option<Family>,
) -> sockit::Result<ExitCode> {
    let (framing, out_chunk) = match to {
        Endpoint::Udp(_) | Endpoint::UnixDgram(_) => {
            (Framing::Chunks(MAX_DATAGRAM), MAX_DATAGRAM + 1)
        }
        _ => (Framing::Chunks(DEFAULT_CHUNK), DEFAULT_CHUNK),
    };
    let mut stdio = Stdio::process(framing, out_chunk).map_err(|source| Error::Stdio {
        what: "use standard input and output",
        source,
    })?;
    let bridge = BridgeOptions {
        end_on_peer_eof: std::io::stdin().is_terminal(),
        idle_timeout: args.idle_timeout.filter(|t| !t.is_zero()),
    };
    let opts = ConnectOptions {
        timeout: (!args.connect_timeout.is_zero()).then_some(args.connect_timeout),
        family,
        bridge,
        tls: None,
    };
    bridge::connect(to, &mut stdio, &opts).await?;
    Ok(ExitCode::SUCCESS)
}

fn never_if_zero(duration: Duration) -> Duration {
    if duration.is_zero() {
        Duration::MAX
    } else {
        duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use sockit::relay::DEFAULT_CONNECT_TIMEOUT;
    use sockit::server::DEFAULT_GRACE;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        relay: RelayArgs,
    }

    fn parse(args: &[&str]) -> RelayArgs {
        let mut all = vec!["relay"];
        all.extend_from_slice(args);
        Wrapper::try_parse_from(all).unwrap().relay
    }

    #[test]
    fn help_defaults_are_the_library_defaults() {
        let args = parse(&["8080", "127.0.0.1:80"]);
        assert_eq!(args.grace, DEFAULT_GRACE);
        assert_eq!(args.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(args.max_flows, DEFAULT_MAX_FLOWS);
        assert_eq!(args.backlog, DEFAULT_BACKLOG);
        assert_eq!(args.idle_timeout, None);
        assert_eq!(args.send_proxy, None);
    }

    #[test]
    fn from_is_an_endpoint_or_a_dash_and_to_may_be_exec() {
        let args = parse(&["-", "exec:cat"]);
        assert!(matches!(args.from, From::Stdio));
        assert_eq!(args.to, Target::Exec("cat".into()));
        let args = parse(&["--send-proxy", "v1", "unix:@x", "udp://127.0.0.1:53"]);
        assert!(matches!(args.from, From::Listen(Endpoint::Unix(_))));
        assert_eq!(args.send_proxy, Some(ProxyVersion::V1));
        assert!(Wrapper::try_parse_from(["relay", "unix:", "80"]).is_err());
        assert!(Wrapper::try_parse_from(["relay", "80", "exec:"]).is_err());
        assert!(Wrapper::try_parse_from(["relay", "--send-proxy", "v3", "80", "81"]).is_err());
    }

    #[test]
    fn a_zero_idle_timeout_never_expires() {
        assert_eq!(never_if_zero(Duration::ZERO), Duration::MAX);
        assert_eq!(
            never_if_zero(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
