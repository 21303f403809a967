//! Where a relay sends each connection: an endpoint to connect to, or a
//! command to run per connection.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::client::{connect_first, connect_within};
use crate::endpoint::{Endpoint, Family, ParseEndpointError};
use crate::relay::exec::ExecStream;
use crate::seqpacket::SeqPacketStream;
use crate::socket;
use crate::{Error, Result};

/// The TO side of `sockit relay FROM TO`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Connect to this endpoint for each connection (or datagram flow).
    Connect(Endpoint),
    /// Run this command with `/bin/sh -c` for each connection, its standard
    /// input and output being the stream (`exec:CMD`, socat's `EXEC`, ncat's
    /// `-e`).
    Exec(String),
}

impl FromStr for Target {
    type Err = ParseEndpointError;

    /// `exec:CMD`, or any endpoint [`Endpoint`] parses.
    fn from_str(text: &str) -> std::result::Result<Target, ParseEndpointError> {
        match text.strip_prefix("exec:") {
            Some(command) if !command.trim().is_empty() => Ok(Target::Exec(command.to_owned())),
            Some(_) => Err(ParseEndpointError::new(
                text,
                "expected exec:COMMAND, e.g. exec:cat",
            )),
            None => text.parse().map(Target::Connect),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Connect(endpoint) => write!(f, "{endpoint}"),
            Target::Exec(command) => write!(f, "exec:{command}"),
        }
    }
}

/// A [`Target`] made ready to use per connection: TCP names resolved once
/// at start, so a connection costs a `connect(2)`, not a DNS lookup.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    /// TCP: the addresses to try, in the resolver's order.
    Tcp(Vec<SocketAddr>),
    /// A Unix stream or seqpacket endpoint.
    Unix(Endpoint),
    /// UDP: the upstream address of every flow.
    Udp(SocketAddr),
    /// A command per connection.
    Exec(String),
}

impl Resolved {
    /// Resolves `target`.
    ///
    /// # Errors
    ///
    /// [`Error::Resolve`] for a name that does not resolve;
    /// [`Error::Unsupported`] for a Unix datagram target, which a relay
    /// does not forward to.
    pub(crate) async fn new(target: &Target, family: Option<Family>) -> Result<Resolved> {
        match target {
            Target::Connect(Endpoint::Tcp(hp)) => Ok(Resolved::Tcp(hp.resolve(family).await?)),
            Target::Connect(Endpoint::Udp(hp)) => Ok(Resolved::Udp(hp.resolve(family).await?[0])),
            Target::Connect(e @ (Endpoint::Unix(_) | Endpoint::SeqPacket(_))) => {
                Ok(Resolved::Unix(e.clone()))
            }
            Target::Connect(e @ Endpoint::Tls(_)) => Err(Error::Unsupported(format!(
                "relay cannot forward to {e} yet: TLS targets are not supported; use a tcp:// target"
            ))),
            Target::Connect(e @ Endpoint::UnixDgram(_)) => Err(Error::Unsupported(format!(
                "relay cannot forward to {e}: Unix datagram targets are not supported; use udp://, a stream endpoint or exec:"
            ))),
            Target::Exec(command) => Ok(Resolved::Exec(command.clone())),
        }
    }

    /// Whether this target takes byte streams (everything but UDP).
    pub(crate) fn is_stream(&self) -> bool {
        !matches!(self, Resolved::Udp(_))
    }
}

/// The upstream side of one relayed connection.
#[derive(Debug)]
pub(crate) enum Upstream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    SeqPacket(SeqPacketStream),
    Exec(ExecStream),
}

impl Upstream {
    /// Writes all of `bytes` (a PROXY header) before the relay starts.
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            Upstream::Tcp(s) => s.write_all(bytes).await,
            Upstream::Unix(s) => s.write_all(bytes).await,
            Upstream::SeqPacket(s) => s.write_all(bytes).await,
            Upstream::Exec(s) => s.write_all(bytes).await,
        }
    }
}

/// Opens the upstream side for a client at `peer`, within `timeout`.
///
/// # Errors
///
/// [`Error::Connect`] or [`Error::Timeout`] when no address connects, and
/// [`Error::Unsupported`] when the command cannot be started.
pub(crate) async fn open(
    target: &Resolved,
    timeout: Option<Duration>,
    peer: &crate::conn::PeerAddr,
) -> Result<Upstream> {
    match target {
        Resolved::Tcp(addrs) => Ok(Upstream::Tcp(connect_first(addrs, timeout).await?.0)),
        Resolved::Unix(endpoint @ Endpoint::Unix(addr)) => Ok(Upstream::Unix(
            connect_within(timeout, &endpoint.to_string(), socket::unix_connect(addr)).await?,
        )),
        Resolved::Unix(endpoint @ Endpoint::SeqPacket(addr)) => Ok(Upstream::SeqPacket(
            connect_within(
                timeout,
                &endpoint.to_string(),
                socket::seqpacket_connect(addr),
            )
            .await?,
        )),
        Resolved::Exec(command) => Ok(Upstream::Exec(ExecStream::spawn(command, peer)?)),
        Resolved::Unix(other) => Err(Error::Unsupported(format!(
            "relay cannot open a stream to {other}"
        ))),
        Resolved::Udp(addr) => Err(Error::Unsupported(format!(
            "relay cannot open a stream to udp://{addr}: a stream FROM needs a stream TO"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_targets_keep_the_whole_command() {
        assert_eq!(
            "exec:sh -c 'echo a:b'".parse::<Target>().unwrap(),
            Target::Exec("sh -c 'echo a:b'".into())
        );
        assert_eq!(
            "exec:cat".parse::<Target>().unwrap().to_string(),
            "exec:cat"
        );
    }

    #[test]
    fn an_empty_exec_command_is_an_error_that_shows_the_form() {
        let err = "exec: ".parse::<Target>().unwrap_err();
        assert!(err.to_string().contains("exec:COMMAND"), "{err}");
    }

    #[test]
    fn other_targets_go_through_the_endpoint_parser() {
        assert_eq!(
            "127.0.0.1:80".parse::<Target>().unwrap(),
            Target::Connect("127.0.0.1:80".parse().unwrap())
        );
        assert!("unix:".parse::<Target>().is_err());
    }
}
