//! The HOST arguments of `sockit scan`: names, IP addresses and CIDR
//! blocks, resolved to the addresses probed.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::endpoint::{Endpoint, Family, Host, HostPort};
use crate::{Error, Result};

/// What a user may type as HOST, for error messages.
pub const ACCEPTED_HOSTS: &str =
    "expected a host name, an IP address (127.0.0.1, ::1, [::1], fe80::1%lo) \
     or a CIDR block (127.0.0.0/30, ::1/128)";

/// The most addresses one CIDR block may expand to: a /16 of IPv4.
pub const MAX_BLOCK_ADDRESSES: u128 = 1 << 16;

/// One HOST argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A name or an address, through the endpoint parser's host rules.
    Host(Host),
    /// A CIDR block: every host address in it (for IPv4 prefixes
    /// shorter than /31, without the network and broadcast addresses).
    Block(IpNet),
}

/// Why a string is not a HOST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host '{input}': {reason}; {ACCEPTED_HOSTS}")]
pub struct ParseTargetError {
    input: String,
    reason: String,
}

impl FromStr for Target {
    type Err = ParseTargetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseTargetError {
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(err("no host given".into()));
        }
        if input.contains('/') {
            let block: IpNet = input.parse().map_err(|_| err("not a CIDR block".into()))?;
            let bits = match block {
                IpNet::V4(_) => 32,
                IpNet::V6(_) => 128,
            };
            let size = 1u128
                .checked_shl(u32::from(bits - block.prefix_len()))
                .unwrap_or(u128::MAX);
            if size > MAX_BLOCK_ADDRESSES {
                return Err(err(format!(
                    "the block holds {} addresses, more than the {MAX_BLOCK_ADDRESSES} \
                     sockit scans at once",
                    if size == u128::MAX {
                        "2^128".to_owned()
                    } else {
                        size.to_string()
                    }
                )));
            }
            return Ok(Target::Block(block));
        }
        // Through the one endpoint parser, so names, literals and IPv6
        // zones follow the same rules as everywhere else. An IPv6 address
        // may be written without brackets, as nmap and ping take it.
        let bracketed = input.starts_with('[');
        let as_endpoint = if !bracketed && input.contains(':') {
            format!("[{input}]:0")
        } else {
            format!("{input}:0")
        };
        match as_endpoint.parse::<Endpoint>() {
            Ok(Endpoint::Tcp(HostPort { host, .. })) if host != Host::Any => Ok(Target::Host(host)),
            Ok(_) => Err(err("not a host".into())),
            Err(e) => Err(err(e
                .to_string()
                .rsplit(": ")
                .next()
                .unwrap_or("not a host")
                .to_owned())),
        }
    }
}

/// The addresses `targets` name, in order, each once, with port 0 (the
/// scan sets the port of each probe). Names resolve through the system
/// resolver, as [`HostPort::resolve`] does, and every address a name has
/// is scanned (`localhost` is often both `::1` and `127.0.0.1`).
///
/// # Errors
///
/// [`Error::Resolve`] when a name does not resolve, or when a target
/// keeps no address of `family`.
pub async fn resolve(targets: &[Target], family: Option<Family>) -> Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for target in targets {
        match target {
            Target::Host(host) => {
                let hp = HostPort {
                    host: host.clone(),
                    port: 0,
                };
                addrs.extend(hp.resolve(family).await?);
            }
            Target::Block(block) => {
                let kept: Vec<SocketAddr> = block
                    .hosts()
                    .filter(|ip| match family {
                        Some(Family::V4) => ip.is_ipv4(),
                        Some(Family::V6) => ip.is_ipv6(),
                        None => true,
                    })
                    .map(|ip: IpAddr| SocketAddr::new(ip, 0))
                    .collect();
                if kept.is_empty() {
                    return Err(Error::Resolve {
                        host: block.to_string(),
                        reason: "no address of the requested family in the block".into(),
                    });
                }
                addrs.extend(kept);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    addrs.retain(|a| seen.insert(*a));
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn addresses_names_and_blocks_parse() {
        let ip = |s: &str| {
            Target::Host(Host::Ip {
                addr: s.parse().unwrap(),
                zone: None,
            })
        };
        assert_eq!(target("127.0.0.1"), ip("127.0.0.1"));
        assert_eq!(target("::1"), ip("::1"));
        assert_eq!(target("[::1]"), ip("::1"));
        assert_eq!(
            target("localhost"),
            Target::Host(Host::Name("localhost".into()))
        );
        assert_eq!(
            target("fe80::1%lo"),
            Target::Host(Host::Ip {
                addr: "fe80::1".parse().unwrap(),
                zone: Some("lo".into())
            })
        );
        assert_eq!(
            target("127.0.0.0/30"),
            Target::Block("127.0.0.0/30".parse().unwrap())
        );
    }

    #[test]
    fn malformed_hosts_say_why_and_what_is_accepted() {
        for (text, reason) in [
            ("", "no host given"),
            ("127.0.0.0/33", "not a CIDR block"),
            ("10.0.0.0/8", "the block holds 16777216 addresses"),
            ("::/0", "the block holds 2^128 addresses"),
            (
                "bad..name",
                "'bad..name' is not an IP address or a host name",
            ),
            ("[::1", "missing ']' after the IPv6 address"),
        ] {
            let message = text.parse::<Target>().unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("invalid host '{text}': {reason}")),
                "{text}: {message}"
            );
            assert!(message.contains("or a CIDR block"), "{message}");
        }
    }

    #[tokio::test]
    async fn blocks_expand_to_their_hosts_each_once_and_filter_by_family() {
        let targets = [
            target("127.0.0.0/30"),
            target("127.0.0.1"),
            target("::1/128"),
        ];
        let addrs = resolve(&targets, None).await.unwrap();
        let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        assert_eq!(ips, ["127.0.0.1", "127.0.0.2", "::1"]);
        let v6 = resolve(&targets[2..], Some(Family::V6)).await.unwrap();
        assert_eq!(v6.len(), 1);
        let err = resolve(&targets[..1], Some(Family::V6)).await.unwrap_err();
        assert!(
            err.to_string().starts_with("cannot resolve 127.0.0.0/30"),
            "{err}"
        );
    }
}
