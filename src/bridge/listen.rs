//! `sockit listen`: wait for a peer, then bridge standard input and output
//! to it; with `keep`, one peer after another.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::{bridge_stream, BridgeOptions, End, Stdio};
use crate::conn::Connection;
use crate::endpoint::Endpoint;
use crate::server::accept::{classify, AcceptError};
use crate::server::listener::{Listener, LocalAddr};
use crate::server::{BoundListener, Server};
use crate::{Error, Result};

/// How long to pause after an accept error that is not the connection's
/// own (out of descriptors, buffers, memory) before trying again.
const RESOURCE_PAUSE: Duration = Duration::from_millis(100);

/// A bound endpoint waiting for its peer: the listening socket of `sockit
/// listen`.
///
/// Binding is separate from [`run`](Listening::run), so a caller can print
/// the bound address (the readiness signal) in between.
#[derive(Debug)]
pub struct Listening {
    socket: Bound,
    local: LocalAddr,
}

#[derive(Debug)]
enum Bound {
    Stream(BoundListener),
}

impl Listening {
    /// Binds `endpoint` with the same opener as `sockit serve`: a port-only
    /// endpoint is dual-stack `[::]` (or `0.0.0.0`), with `SO_REUSEADDR`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the address, [`Error::Resolve`] for a name that
    /// does not resolve, [`Error::Unsupported`] for a transport not wired up
    /// yet.
    pub async fn bind(endpoint: &Endpoint, backlog: u32) -> Result<Listening> {
        match endpoint {
            Endpoint::Tcp(_) => {}
            other => {
                return Err(Error::Unsupported(format!(
                    "cannot listen on {other}: the {} transport is not supported by listen yet; use a TCP endpoint",
                    other.transport()
                )))
            }
        }
        let builder = Server::builder().backlog(backlog).listen(endpoint.clone());
        let listener =
            builder.bind_listeners().await?.pop().ok_or_else(|| {
                Error::Unsupported(format!("nothing to listen on for {endpoint}"))
            })?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: endpoint.to_string(),
            source,
        })?;
        Ok(Listening {
            socket: Bound::Stream(listener),
            local,
        })
    }

    /// The bound address, with the real port.
    pub fn local_addr(&self) -> &LocalAddr {
        &self.local
    }

    /// Waits for a peer and bridges `stdio` to it. With `keep`, goes back
    /// to waiting after each peer, forever; otherwise the listening socket
    /// is closed as soon as the peer is accepted, so later clients are
    /// refused rather than left queued.
    ///
    /// With `keep`, a connection that fails is reported as a warning and
    /// the next one is taken.
    ///
    /// # Errors
    ///
    /// `accept(2)` errors other than the transient ones (which are
    /// retried), and the bridge's errors.
    pub async fn run(self, stdio: &mut Stdio, opts: &BridgeOptions, keep: bool) -> Result<End> {
        let local = self.local.to_string();
        match self.socket {
            Bound::Stream(BoundListener::Tcp(listener)) => {
                serve_streams(listener, &local, stdio, opts, keep).await
            }
        }
    }
}

async fn serve_streams<L: Listener>(
    listener: L,
    local: &str,
    stdio: &mut Stdio,
    opts: &BridgeOptions,
    keep: bool,
) -> Result<End> {
    let mut listener = Some(listener);
    loop {
        let Some(current) = listener.as_mut() else {
            return Ok(End::Closed);
        };
        let (stream, peer) = accept_one(current, local).await?;
        if !keep {
            listener = None;
        }
        info!(target: "sockit::conn", "Connection from {peer}");
        let peer = peer.to_string();
        match bridge(stream, stdio, opts, &peer).await {
            Ok(End::OutputClosed) => return Ok(End::OutputClosed),
            Ok(end) if !keep => return Ok(end),
            Ok(end) => debug!(?end, %peer, "connection ended"),
            Err(err @ Error::Stdio { .. }) => return Err(err),
            Err(err) if keep => warn!("{err}"),
            Err(err) => return Err(err),
        }
    }
}

async fn bridge<C: Connection>(
    stream: C,
    stdio: &mut Stdio,
    opts: &BridgeOptions,
    peer: &str,
) -> Result<End> {
    bridge_stream(stream, stdio, opts, peer).await
}

/// Accepts one connection, retrying the errors the server's accept loop
/// retries (sorted by the same [`classify`]).
async fn accept_one<L: Listener>(
    listener: &mut L,
    local: &str,
) -> Result<(L::Io, crate::conn::PeerAddr)> {
    loop {
        match listener.accept().await {
            Ok(accepted) => return Ok(accepted),
            Err(err) => match classify(&err) {
                AcceptError::Connection => continue,
                AcceptError::Resource => {
                    warn!("accept on {local} failed: {err}; retrying");
                    tokio::time::sleep(RESOURCE_PAUSE).await;
                }
                AcceptError::Other => {
                    return Err(Error::Io {
                        what: "accepting on",
                        addr: local.to_owned(),
                        source: err,
                    })
                }
            },
        }
    }
}
