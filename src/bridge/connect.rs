//! `sockit connect`: connect to an endpoint and bridge standard input and
//! output to it.

use std::time::Duration;

use tracing::info;

use super::{bridge_datagram, bridge_stream, BridgeOptions, End, Stdio};
use crate::client::{connect_first, connect_within, DEFAULT_TIMEOUT};
use crate::endpoint::{Endpoint, Family};
use crate::socket;
use crate::tls::{ClientTls, ClientTlsOptions};
use crate::{Error, Result};

/// Options for [`connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Bounds connecting, per address. Default is 10 seconds.
    pub timeout: Option<Duration>,
    /// Only connect to addresses of this family (`-4`/`-6`). Default is any.
    pub family: Option<Family>,
    /// How the bridge behaves once connected. Default is
    /// [`BridgeOptions::default`].
    pub bridge: BridgeOptions,
    /// For `tls://` endpoints: trust roots, client certificate, ALPN.
    /// Default (`None`) verifies against the system's roots.
    pub tls: Option<ClientTls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Some(DEFAULT_TIMEOUT),
            family: None,
            bridge: BridgeOptions::default(),
            tls: None,
        }
    }
}

/// Connects to `endpoint` and bridges `stdio` to it until the bridge ends.
///
/// For TCP: resolve the host, try each address in the resolver's order
/// until one connects (each within `opts.timeout`), then run
/// [`bridge_stream`]. Unix stream and seqpacket endpoints connect and run
/// [`bridge_stream`] too; UDP and Unix datagram endpoints get a connected
/// socket (a Unix datagram one bound to a temporary address so the peer
/// can answer) and run [`bridge_datagram`](super::bridge_datagram).
///
/// # Errors
///
/// [`Error::Resolve`], [`Error::Connect`] (refused, unreachable) or
/// [`Error::Timeout`] when no address connects; the bridge's errors after;
/// [`Error::Unsupported`] for a transport not wired up yet.
pub async fn connect(endpoint: &Endpoint, stdio: &mut Stdio, opts: &ConnectOptions) -> Result<End> {
    let name = endpoint.to_string();
    let failed = |source| Error::Connect {
        addr: name.clone(),
        source,
    };
    match endpoint {
        Endpoint::Tcp(hp) => {
            let addrs = hp.resolve(opts.family).await?;
            let (stream, addr) = connect_first(&addrs, opts.timeout).await?;
            info!(target: "sockit::conn", "Connected to {addr}");
            bridge_stream(stream, stdio, &opts.bridge, &addr.to_string()).await
        }
        Endpoint::Tls(hp) => {
            let tls = match &opts.tls {
                Some(tls) => tls.clone(),
                None => ClientTls::new(&ClientTlsOptions::default())?,
            };
            let addrs = hp.resolve(opts.family).await?;
            let (stream, addr) = connect_first(&addrs, opts.timeout).await?;
            let peer = addr.to_string();
            let stream = tls.connect(&hp.host.sni_name(), &peer, stream).await?;
            info!(target: "sockit::conn", "Connected to {addr} over TLS");
            bridge_stream(stream, stdio, &opts.bridge, &peer).await
        }
        Endpoint::Udp(hp) => {
            // connect(2) on UDP sends nothing: the first address is the peer.
            let addr = hp.resolve(opts.family).await?[0];
            let socket = socket::udp_connect(addr).map_err(|source| Error::Connect {
                addr: addr.to_string(),
                source,
            })?;
            info!(target: "sockit::conn", "Sending to udp://{addr}");
            bridge_datagram(&socket, stdio, &opts.bridge, &addr.to_string()).await
        }
        Endpoint::Unix(addr) => {
            let stream = connect_within(opts.timeout, &name, socket::unix_connect(addr)).await?;
            info!(target: "sockit::conn", "Connected to {endpoint}");
            bridge_stream(stream, stdio, &opts.bridge, &name).await
        }
        Endpoint::SeqPacket(addr) => {
            let stream =
                connect_within(opts.timeout, &name, socket::seqpacket_connect(addr)).await?;
            info!(target: "sockit::conn", "Connected to {endpoint}");
            bridge_stream(stream, stdio, &opts.bridge, &name).await
        }
        Endpoint::UnixDgram(addr) => {
            // Bound to a temporary address (removed on drop), so the peer
            // can answer.
            let socket = socket::unix_datagram_connect(addr).map_err(failed)?;
            info!(target: "sockit::conn", "Sending to {endpoint}");
            bridge_datagram(&*socket, stdio, &opts.bridge, &name).await
        }
    }
}
