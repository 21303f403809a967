//! The one endpoint parser: every address a user types goes through
//! [`Endpoint::from_str`](std::str::FromStr).
//!
//! Accepted forms (the scheme defaults to `tcp://`):
//!
//! | form | meaning |
//! |---|---|
//! | `8888`, `:8888` | TCP port 8888 on all interfaces (dual-stack `[::]`, else `0.0.0.0`); `localhost` when connecting |
//! | `127.0.0.1:8888`, `[::1]:8888`, `[fe80::1%lo]:8888` | an IP literal (IPv6 in brackets, with an optional zone) |
//! | `localhost:8888` | a name, resolved when used |
//! | `tcp://…`, `udp://…` | any of the above with an explicit transport |
//! | `unix:/path`, `unix:@name` | a Unix stream socket: a file, or a Linux abstract name |
//! | `unix-dgram:/path`, `unix-dgram:@name` | a Unix datagram socket |
//! | `seqpacket:/path`, `seqpacket:@name` | a Unix `SOCK_SEQPACKET` socket |
//! | `tipc:…` | recognised only to say why it cannot work: Linux has `SOCK_RDM` only over TIPC, which sockit does not speak (and most kernels do not load) |

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// What a user may type, for error messages.
pub const ACCEPTED_FORMS: &str = "PORT, :PORT, HOST:PORT, [IPV6]:PORT, tcp://HOST:PORT, \
tls://HOST:PORT, udp://HOST:PORT, unix:/path, unix:@name, unix-dgram:/path or seqpacket:/path";

/// The default TCP port, as in the tutorial.
pub const DEFAULT_PORT: u16 = 8888;

/// A parsed endpoint: a transport and an address.
///
/// `Display` writes the canonical form, which parses back to the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `SOCK_STREAM` over IP: TCP.
    Tcp(HostPort),
    /// `SOCK_DGRAM` over IP: UDP.
    Udp(HostPort),
    /// `AF_UNIX` + `SOCK_STREAM`.
    Unix(UnixAddr),
    /// `AF_UNIX` + `SOCK_DGRAM`.
    UnixDgram(UnixAddr),
    /// `AF_UNIX` + `SOCK_SEQPACKET`: reliable, ordered, message-framed.
    SeqPacket(UnixAddr),
    /// TLS over TCP (`tls://HOST:PORT`), for connecting: SNI and the
    /// certificate check use HOST.
    Tls(HostPort),
}

/// An IP host (or none) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host part.
    pub host: Host,
    /// The port; 0 asks the kernel for a free one when binding.
    pub port: u16,
}

/// The host part of an IP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// No host was given (`8888`, `:8888`): all interfaces when listening,
    /// `localhost` when connecting.
    Any,
    /// An IP literal. `zone` is an IPv6 zone (scope) such as `lo` or `3`.
    Ip {
        /// The address.
        addr: IpAddr,
        /// The IPv6 zone id, as typed after `%`.
        zone: Option<String>,
    },
    /// A name to resolve (`localhost`, `example.org`).
    Name(String),
}

/// A Unix-domain socket address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    /// A socket file in the file system.
    Path(PathBuf),
    /// A Linux abstract-namespace name (written `@name`): no file, gone with
    /// the last socket that uses it.
    Abstract(String),
}

/// An address family, to restrict name resolution (`-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`.
    V4,
    /// `AF_INET6`.
    V6,
}

/// Why a string is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint '{input}': {reason}")]
pub struct ParseEndpointError {
    input: String,
    reason: String,
}

impl ParseEndpointError {
    pub(crate) fn new(input: &str, reason: impl Into<String>) -> Self {
        ParseEndpointError {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }

    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl FromStr for Endpoint {
    type Err = ParseEndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParseEndpointError::new(input, reason);
        if input.is_empty() {
            return Err(err(&format!("expected {ACCEPTED_FORMS}")));
        }
        if let Some(rest) = input.strip_prefix("tcp://") {
            return parse_host_port(input, rest).map(Endpoint::Tcp);
        }
        if let Some(rest) = input.strip_prefix("tls://") {
            return parse_host_port(input, rest).map(Endpoint::Tls);
        }
        if let Some(rest) = input.strip_prefix("udp://") {
            return parse_host_port(input, rest).map(Endpoint::Udp);
        }
        if input.starts_with("tipc:") {
            return Err(err(&tipc_unavailable()));
        }
        for (scheme, make) in UNIX_SCHEMES {
            if let Some(rest) = input.strip_prefix(scheme) {
                return parse_unix(input, scheme, rest).map(make);
            }
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(err(&format!(
                "unknown scheme '{scheme}://': expected {ACCEPTED_FORMS}"
            )));
        }
        parse_host_port(input, input).map(Endpoint::Tcp)
    }
}

/// Why a `tipc:` endpoint cannot be used. `SOCK_RDM` (reliable datagrams)
/// exists on Linux only over TIPC; sockit has no TIPC transport, and most
/// kernels do not load TIPC, so the message says which of the two stops it.
fn tipc_unavailable() -> String {
    match crate::socket::tipc_rdm_socket() {
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EAFNOSUPPORT as i32) => {
            "this kernel lacks TIPC, the only transport Linux offers SOCK_RDM on \
             (socket(AF_TIPC, SOCK_RDM) failed: address family not supported); \
             where the tipc module exists, 'modprobe tipc' loads it"
                .to_owned()
        }
        Err(e) => {
            format!("SOCK_RDM over TIPC is unavailable: socket(AF_TIPC, SOCK_RDM) failed: {e}")
        }
        Ok(_) => "this kernel has TIPC, but sockit has no tipc: transport yet; \
                  use seqpacket:/path for reliable, ordered messages"
            .to_owned(),
    }
}

type UnixCtor = fn(UnixAddr) -> Endpoint;
const UNIX_SCHEMES: [(&str, UnixCtor); 3] = [
    ("unix-dgram:", Endpoint::UnixDgram),
    ("seqpacket:", Endpoint::SeqPacket),
    ("unix:", Endpoint::Unix),
];

fn parse_unix(input: &str, scheme: &str, rest: &str) -> Result<UnixAddr, ParseEndpointError> {
    // Accept `unix:///tmp/s` as well as `unix:/tmp/s`, as URLs write it.
    let rest = match rest.strip_prefix("//") {
        Some(path) if path.starts_with('/') => path,
        _ => rest,
    };
    if let Some(name) = rest.strip_prefix('@') {
        if name.is_empty() {
            return Err(ParseEndpointError::new(
                input,
                format!("expected {scheme}@name with a non-empty name"),
            ));
        }
        return Ok(UnixAddr::Abstract(name.to_owned()));
    }
    if rest.is_empty() {
        return Err(ParseEndpointError::new(
            input,
            format!("expected {scheme}/path or {scheme}@name"),
        ));
    }
    if rest.contains('\0') {
        return Err(ParseEndpointError::new(
            input,
            "a socket path cannot contain a NUL byte",
        ));
    }
    Ok(UnixAddr::Path(PathBuf::from(rest)))
}

fn parse_host_port(input: &str, rest: &str) -> Result<HostPort, ParseEndpointError> {
    let err = |reason: &str| ParseEndpointError::new(input, reason);
    if rest.is_empty() {
        return Err(err("expected HOST:PORT after the scheme"));
    }
    // A bare port: `8888`.
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(HostPort {
            host: Host::Any,
            port: parse_port(input, rest)?,
        });
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| err("missing ']' after the IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| err("expected :PORT after the ']'"))?;
        (parse_ipv6(input, inside)?, port)
    } else {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| err("missing port: expected HOST:PORT or PORT"))?;
        if host.contains(':') {
            return Err(err("an IPv6 address needs brackets: [::1]:8888"));
        }
        let host = if host.is_empty() {
            Host::Any
        } else if let Ok(addr) = host.parse::<IpAddr>() {
            Host::Ip { addr, zone: None }
        } else {
            if !is_valid_hostname(host) {
                return Err(err(&format!(
                    "'{host}' is not an IP address or a host name"
                )));
            }
            Host::Name(host.to_owned())
        };
        (host, port)
    };
    Ok(HostPort {
        host,
        port: parse_port(input, port)?,
    })
}

fn parse_ipv6(input: &str, inside: &str) -> Result<Host, ParseEndpointError> {
    let (addr, zone) = match inside.split_once('%') {
        Some((addr, zone)) if !zone.is_empty() => (addr, Some(zone.to_owned())),
        Some(_) => return Err(ParseEndpointError::new(input, "empty IPv6 zone after '%'")),
        None => (inside, None),
    };
    let addr: Ipv6Addr = addr
        .parse()
        .map_err(|_| ParseEndpointError::new(input, format!("'{addr}' is not an IPv6 address")))?;
    Ok(Host::Ip {
        addr: IpAddr::V6(addr),
        zone,
    })
}

fn parse_port(input: &str, port: &str) -> Result<u16, ParseEndpointError> {
    if port.is_empty() {
        return Err(ParseEndpointError::new(input, "missing port after ':'"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseEndpointError::new(
            input,
            format!("port '{port}' is not a number from 0 to 65535"),
        ));
    }
    port.parse()
        .map_err(|_| ParseEndpointError::new(input, format!("port {port} is out of range 0-65535")))
}

/// Letters, digits, `-`, `_` and dots between labels (RFC 1123, relaxed for `_`).
fn is_valid_hostname(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(hp) => write!(f, "tcp://{hp}"),
            Endpoint::Tls(hp) => write!(f, "tls://{hp}"),
            Endpoint::Udp(hp) => write!(f, "udp://{hp}"),
            Endpoint::Unix(addr) => write!(f, "unix:{addr}"),
            Endpoint::UnixDgram(addr) => write!(f, "unix-dgram:{addr}"),
            Endpoint::SeqPacket(addr) => write!(f, "seqpacket:{addr}"),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Any => write!(f, ":{}", self.port),
            Host::Ip {
                addr: IpAddr::V4(v4),
                ..
            } => write!(f, "{v4}:{}", self.port),
            Host::Ip {
                addr: IpAddr::V6(v6),
                zone: None,
            } => write!(f, "[{v6}]:{}", self.port),
            Host::Ip {
                addr: IpAddr::V6(v6),
                zone: Some(zone),
            } => write!(f, "[{v6}%{zone}]:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(path) => write!(f, "{}", path.display()),
            UnixAddr::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

impl Endpoint {
    /// The endpoint `sockit serve` listens on when given none: TCP port
    /// 8888 on all interfaces.
    pub fn default_listen() -> Endpoint {
        Endpoint::Tcp(HostPort {
            host: Host::Any,
            port: DEFAULT_PORT,
        })
    }

    /// The endpoint `sockit send` connects to when given none:
    /// `localhost:8888`, as in the tutorial.
    pub fn default_connect() -> Endpoint {
        Endpoint::Tcp(HostPort {
            host: Host::Name("localhost".into()),
            port: DEFAULT_PORT,
        })
    }

    /// The transport's name, for messages (`tcp`, `udp`, `unix`, …).
    pub fn transport(&self) -> &'static str {
        match self {
            Endpoint::Tcp(_) => "tcp",
            Endpoint::Tls(_) => "tls",
            Endpoint::Udp(_) => "udp",
            Endpoint::Unix(_) => "unix",
            Endpoint::UnixDgram(_) => "unix-dgram",
            Endpoint::SeqPacket(_) => "seqpacket",
        }
    }
}

impl Host {
    /// The name a TLS client sends as SNI and checks the certificate
    /// against: the name as typed, the IP literal, `localhost` for none.
    pub fn sni_name(&self) -> String {
        match self {
            Host::Any => "localhost".to_owned(),
            Host::Ip { addr, .. } => addr.to_string(),
            Host::Name(name) => name.clone(),
        }
    }
}

impl HostPort {
    /// Resolves the host to socket addresses, in the resolver's order,
    /// keeping only `family` when given.
    ///
    /// [`Host::Any`] resolves to `localhost` (this is for connecting; a
    /// listener treats it as all interfaces instead). An IPv6 zone is turned
    /// into a scope id with `if_nametoindex`, or read as a number.
    ///
    /// # Errors
    ///
    /// Fails when the name does not resolve, the zone names no interface, or
    /// nothing is left of the requested family.
    pub async fn resolve(&self, family: Option<Family>) -> crate::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> =
            match &self.host {
                Host::Ip { addr, zone } => vec![with_zone(*addr, zone.as_deref(), self.port)
                    .map_err(|reason| crate::Error::Resolve {
                        host: self.to_string(),
                        reason,
                    })?],
                Host::Any => lookup("localhost", self.port).await?,
                Host::Name(name) => lookup(name, self.port).await?,
            };
        let kept: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match family {
                Some(Family::V4) => a.is_ipv4(),
                Some(Family::V6) => a.is_ipv6(),
                None => true,
            })
            .collect();
        if kept.is_empty() {
            return Err(crate::Error::Resolve {
                host: self.to_string(),
                reason: format!("no {} address", family_name(family)),
            });
        }
        Ok(kept)
    }
}

fn family_name(family: Option<Family>) -> &'static str {
    match family {
        Some(Family::V4) => "IPv4",
        Some(Family::V6) => "IPv6",
        None => "IP",
    }
}

async fn lookup(name: &str, port: u16) -> crate::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| crate::Error::Resolve {
            host: format!("{name}:{port}"),
            reason: e.to_string(),
        })?
        .collect();
    // getaddrinfo lists an address once per socket type on some systems.
    let mut seen = std::collections::HashSet::new();
    addrs.retain(|a| seen.insert(*a));
    Ok(addrs)
}

fn with_zone(addr: IpAddr, zone: Option<&str>, port: u16) -> Result<SocketAddr, String> {
    match (addr, zone) {
        (IpAddr::V6(v6), Some(zone)) => {
            let scope_id = match zone.parse::<u32>() {
                Ok(index) => index,
                Err(_) => nix::net::if_::if_nametoindex(zone)
                    .map_err(|_| format!("no network interface named '{zone}'"))?,
            };
            Ok(SocketAddr::V6(std::net::SocketAddrV6::new(
                v6, port, 0, scope_id,
            )))
        }
        (addr, _) => Ok(SocketAddr::new(addr, port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn tcp(host: Host, port: u16) -> Endpoint {
        Endpoint::Tcp(HostPort { host, port })
    }

    fn ip(s: &str) -> Host {
        Host::Ip {
            addr: s.parse().unwrap(),
            zone: None,
        }
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(ep("8888"), tcp(Host::Any, 8888));
        assert_eq!(ep(":8888"), tcp(Host::Any, 8888));
        assert_eq!(ep("0"), tcp(Host::Any, 0));
        assert_eq!(ep("127.0.0.1:9000"), tcp(ip("127.0.0.1"), 9000));
        assert_eq!(ep("[::1]:9000"), tcp(ip("::1"), 9000));
        assert_eq!(
            ep("localhost:9000"),
            tcp(Host::Name("localhost".into()), 9000)
        );
        assert_eq!(ep("tcp://127.0.0.1:1"), tcp(ip("127.0.0.1"), 1));
        assert_eq!(
            ep("udp://[::1]:53"),
            Endpoint::Udp(HostPort {
                host: ip("::1"),
                port: 53
            })
        );
        assert_eq!(
            ep("[fe80::1%lo]:9000"),
            tcp(
                Host::Ip {
                    addr: "fe80::1".parse().unwrap(),
                    zone: Some("lo".into())
                },
                9000
            )
        );
        assert_eq!(
            ep("unix:/tmp/s.sock"),
            Endpoint::Unix(UnixAddr::Path("/tmp/s.sock".into()))
        );
        assert_eq!(
            ep("unix:///tmp/s.sock"),
            Endpoint::Unix(UnixAddr::Path("/tmp/s.sock".into()))
        );
        assert_eq!(
            ep("unix:@name"),
            Endpoint::Unix(UnixAddr::Abstract("name".into()))
        );
        assert_eq!(
            ep("unix-dgram:/x"),
            Endpoint::UnixDgram(UnixAddr::Path("/x".into()))
        );
        assert_eq!(
            ep("seqpacket:@sp"),
            Endpoint::SeqPacket(UnixAddr::Abstract("sp".into()))
        );
    }

    #[test]
    fn rejects_malformed_input_with_a_reason() {
        for (input, reason) in [
            ("", "expected PORT"),
            ("65536", "out of range"),
            ("localhost", "missing port"),
            ("localhost:", "missing port"),
            ("localhost:http", "not a number"),
            ("::1:8888", "needs brackets"),
            ("[::1]", "expected :PORT"),
            ("[::1:80", "missing ']'"),
            ("[nope]:80", "not an IPv6 address"),
            ("[fe80::1%]:80", "empty IPv6 zone"),
            ("bad host:80", "not an IP address or a host name"),
            ("unix:", "expected unix:/path or unix:@name"),
            ("unix:@", "non-empty name"),
            ("seqpacket:", "expected seqpacket:/path"),
            ("http://x:80", "unknown scheme 'http://'"),
            ("tcp://", "expected HOST:PORT"),
            ("-1", "missing port"),
        ] {
            let err = input.parse::<Endpoint>().unwrap_err().to_string();
            assert!(
                err.contains(reason),
                "{input:?} gave {err:?}, expected it to mention {reason:?}"
            );
            assert!(err.starts_with(&format!("invalid endpoint '{input}'")));
        }
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "8888",
            "127.0.0.1:80",
            "[::1]:0",
            "[fe80::1%eth0]:9",
            "example.org:443",
            "udp://:53",
            "unix:/run/x.sock",
            "unix:@abs",
            "unix-dgram:@d",
            "seqpacket:/tmp/sp",
        ] {
            let parsed = ep(input);
            assert_eq!(ep(&parsed.to_string()), parsed, "{input}");
        }
    }

    #[test]
    fn tipc_endpoints_say_what_the_kernel_lacks() {
        let err = "tipc:1000:1".parse::<Endpoint>().unwrap_err().to_string();
        assert!(err.starts_with("invalid endpoint 'tipc:1000:1': "), "{err}");
        assert!(err.contains("TIPC") && err.contains("SOCK_RDM"), "{err}");
        if crate::socket::tipc_rdm_socket().is_err() {
            assert!(err.contains("this kernel lacks TIPC"), "{err}");
        }
    }

    #[tokio::test]
    async fn resolves_ip_literals_without_a_lookup() {
        let hp = HostPort {
            host: ip("127.0.0.1"),
            port: 7,
        };
        assert_eq!(
            hp.resolve(None).await.unwrap(),
            vec!["127.0.0.1:7".parse::<SocketAddr>().unwrap()]
        );
        let err = hp.resolve(Some(Family::V6)).await.unwrap_err();
        assert!(err.to_string().contains("no IPv6 address"), "{err}");
    }

    #[tokio::test]
    async fn resolves_a_zone_name_to_its_interface_index() {
        let hp = HostPort {
            host: Host::Ip {
                addr: "fe80::1".parse().unwrap(),
                zone: Some("lo".into()),
            },
            port: 1,
        };
        match hp.resolve(None).await.unwrap()[0] {
            SocketAddr::V6(v6) => assert_ne!(v6.scope_id(), 0),
            other => panic!("expected IPv6, got {other}"),
        }
        let bad = HostPort {
            host: Host::Ip {
                addr: "fe80::1".parse().unwrap(),
                zone: Some("no-such-if0".into()),
            },
            port: 1,
        };
        assert!(bad.resolve(None).await.is_err());
    }

    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        fn host() -> impl Strategy<Value = Host> {
            prop_oneof![
                Just(Host::Any),
                any::<[u8; 4]>().prop_map(|o| Host::Ip {
                    addr: IpAddr::from(o),
                    zone: None
                }),
                (any::<[u8; 16]>(), proptest::option::of("[a-z0-9]{1,8}")).prop_map(|(o, zone)| {
                    Host::Ip {
                        addr: IpAddr::from(o),
                        zone,
                    }
                }),
                "[a-z_][a-z0-9_-]{0,10}(\\.[a-z0-9_-]{1,10}){0,3}".prop_map(Host::Name),
            ]
        }

        fn unix_addr() -> impl Strategy<Value = UnixAddr> {
            prop_oneof![
                "(/[^/\\x00]{1,12}){1,4}".prop_map(|p| UnixAddr::Path(PathBuf::from(p))),
                "[^\\x00]{1,20}".prop_map(UnixAddr::Abstract),
            ]
        }

        fn endpoint() -> impl Strategy<Value = Endpoint> {
            let hp = || (host(), any::<u16>()).prop_map(|(host, port)| HostPort { host, port });
            prop_oneof![
                hp().prop_map(Endpoint::Tcp),
                hp().prop_map(Endpoint::Udp),
                unix_addr().prop_map(Endpoint::Unix),
                unix_addr().prop_map(Endpoint::UnixDgram),
                unix_addr().prop_map(Endpoint::SeqPacket),
            ]
        }

        proptest! {
            #[test]
            fn display_parses_back_to_the_same_endpoint(endpoint in endpoint()) {
                let shown = endpoint.to_string();
                let parsed: Endpoint = shown.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert_eq!(parsed, endpoint);
            }

            #[test]
            fn whatever_parses_displays_as_text_that_parses_to_it(text in "(tcp://|udp://|unix:|unix-dgram:|seqpacket:)?[\\[\\]@:/%.a-f0-9]{0,24}") {
                crate::fuzzing::endpoint(text.as_bytes());
            }
        }
    }
}
