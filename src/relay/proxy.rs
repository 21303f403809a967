//! `--send-proxy v1|v2`: the PROXY protocol header (HAProxy's
//! `proxy-protocol.txt`) a relay writes to TO before any client byte, so
//! the server behind it learns the original client's address.
//!
//! Encoding is the `ppp` crate's; sockit only picks the addresses:
//! - source: the client's address, destination: the address it connected
//!   to (the relay's listening address, from `getsockname(2)`);
//! - IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack
//!   listener reports for IPv4 clients) are written as IPv4, so the server
//!   sees `TCP4` / `AF_INET`, as HAProxy itself sends;
//! - a client with no IP address (a Unix socket FROM) is sent as
//!   `PROXY UNKNOWN` (v1) or `AF_UNSPEC` (v2), which tells the server to
//!   use the connection's own addresses.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

use ppp::v2::{Builder, Command, Protocol, Version};

use crate::conn::PeerAddr;

/// Which PROXY protocol version to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// The text header: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header.
    V2,
}

impl FromStr for ProxyVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<ProxyVersion, String> {
        match text {
            "v1" | "1" => Ok(ProxyVersion::V1),
            "v2" | "2" => Ok(ProxyVersion::V2),
            _ => Err(format!(
                "'{text}' is not a PROXY protocol version: expected v1 or v2"
            )),
        }
    }
}

impl fmt::Display for ProxyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        })
    }
}

/// The header for a stream from `client` that arrived at `local`.
///
/// # Errors
///
/// `ppp`'s error building a v2 header (none is possible for the address
/// pairs sockit passes, which carry no TLVs).
pub fn header(
    version: ProxyVersion,
    client: &PeerAddr,
    local: Option<SocketAddr>,
) -> io::Result<Vec<u8>> {
    let addresses = match (client, local) {
        (PeerAddr::Inet(src), Some(dst)) => Some((canonical(*src), canonical(dst))),
        _ => None,
    };
    match version {
        ProxyVersion::V1 => {
            let addresses = addresses.map_or(ppp::v1::Addresses::Unknown, Into::into);
            Ok(addresses.to_string().into_bytes())
        }
        ProxyVersion::V2 => {
            let addresses = addresses.map_or(ppp::v2::Addresses::Unspecified, Into::into);
            Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses)
                .build()
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address unchanged.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(text: &str) -> PeerAddr {
        PeerAddr::Inet(text.parse().unwrap())
    }

    #[test]
    fn v1_names_the_client_and_the_address_it_reached() {
        let bytes = header(
            ProxyVersion::V1,
            &inet("192.0.2.7:40000"),
            Some("127.0.0.1:8080".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(bytes, b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 8080\r\n");
    }

    #[test]
    fn v2_decodes_to_the_same_addresses_with_ppp() {
        let bytes = header(
            ProxyVersion::V2,
            &inet("[2001:db8::1]:40000"),
            Some("[::1]:8080".parse().unwrap()),
        )
        .unwrap();
        let parsed = ppp::v2::Header::try_from(bytes.as_slice()).unwrap();
        assert_eq!(parsed.command, Command::Proxy);
        assert_eq!(parsed.protocol, Protocol::Stream);
        let expected: ppp::v2::Addresses = (
            "[2001:db8::1]:40000".parse::<SocketAddr>().unwrap(),
            "[::1]:8080".parse::<SocketAddr>().unwrap(),
        )
            .into();
        assert_eq!(parsed.addresses, expected);
        assert_eq!(parsed.header.len(), bytes.len());
    }

    #[test]
    fn mapped_ipv4_clients_are_sent_as_ipv4() {
        let bytes = header(
            ProxyVersion::V1,
            &inet("[::ffff:192.0.2.7]:40000"),
            Some("[::ffff:127.0.0.1]:8080".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(bytes, b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 8080\r\n");
    }

    #[test]
    fn a_unix_client_is_unknown() {
        let unix = PeerAddr::Unix(None);
        assert_eq!(
            header(ProxyVersion::V1, &unix, None).unwrap(),
            b"PROXY UNKNOWN\r\n"
        );
        let v2 = header(ProxyVersion::V2, &unix, None).unwrap();
        let parsed = ppp::v2::Header::try_from(v2.as_slice()).unwrap();
        assert_eq!(parsed.addresses, ppp::v2::Addresses::Unspecified);
    }

    #[test]
    fn versions_parse_as_written_on_the_command_line() {
        assert_eq!("v2".parse::<ProxyVersion>(), Ok(ProxyVersion::V2));
        assert_eq!("1".parse::<ProxyVersion>(), Ok(ProxyVersion::V1));
        assert!("v3".parse::<ProxyVersion>().is_err());
    }
}
