//! `sockit connect`: connect to an endpoint and bridge standard input and
//! output to it.

use std::time::Duration;

use tracing::info;

use super::{bridge_stream, BridgeOptions, End, Stdio};
use crate::client::{connect_first, DEFAULT_TIMEOUT};
use crate::endpoint::{Endpoint, Family};
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
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Some(DEFAULT_TIMEOUT),
            family: None,
            bridge: BridgeOptions::default(),
        }
    }
}

/// Connects to `endpoint` and bridges `stdio` to it until the bridge ends.
///
/// For TCP: resolve the host, try each address in the resolver's order
/// until one connects (each within `opts.timeout`), then run
/// [`bridge_stream`].
///
/// # Errors
///
/// [`Error::Resolve`], [`Error::Connect`] (refused, unreachable) or
/// [`Error::Timeout`] when no address connects; the bridge's errors after;
/// [`Error::Unsupported`] for a transport not wired up yet.
pub async fn connect(endpoint: &Endpoint, stdio: &mut Stdio, opts: &ConnectOptions) -> Result<End> {
    match endpoint {
        Endpoint::Tcp(hp) => {
            let addrs = hp.resolve(opts.family).await?;
            let (stream, addr) = connect_first(&addrs, opts.timeout).await?;
            info!(target: "sockit::conn", "Connected to {addr}");
            bridge_stream(stream, stdio, &opts.bridge, &addr.to_string()).await
        }
        other => Err(Error::Unsupported(format!(
            "cannot connect to {other}: the {} transport is not supported by connect yet; use a TCP endpoint",
            other.transport()
        ))),
    }
}
