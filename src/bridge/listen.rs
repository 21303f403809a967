//! `sockit listen`: wait for a peer, then bridge standard input and output
//! to it; with `keep`, one peer after another.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::{
    accept_first_datagram, bridge_datagram, bridge_stream, BridgeOptions, Datagram, End, Stdio,
};
use crate::conn::Connection;
use crate::endpoint::Endpoint;
use crate::server::accept::{classify, AcceptError};
use crate::server::listener::{Listener, LocalAddr};
use crate::server::socket_file::SocketFile;
use crate::server::{BoundListener, Server};
use crate::tls::ServerTls;
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
    socket: BoundListener,
    local: LocalAddr,
    tls: Option<ServerTls>,
}

impl Listening {
    /// Binds `endpoint` with the same opener as `sockit serve`: a port-only
    /// endpoint is dual-stack `[::]` (or `0.0.0.0`), TCP gets
    /// `SO_REUSEADDR`, and a Unix socket file is checked for staleness
    /// before reuse and removed when the listener goes.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the address, [`Error::Resolve`] for a name that
    /// does not resolve.
    pub async fn bind(endpoint: &Endpoint, backlog: u32) -> Result<Listening> {
        let builder = Server::builder().backlog(backlog).listen(endpoint.clone());
        let socket =
            builder.bind_listeners().await?.pop().ok_or_else(|| {
                Error::Unsupported(format!("nothing to listen on for {endpoint}"))
            })?;
        let local = socket.local_addr().map_err(|source| Error::Bind {
            addr: endpoint.to_string(),
            source,
        })?;
        Ok(Listening {
            socket,
            local,
            tls: None,
        })
    }

    /// Runs the TLS handshake (as the server) with each peer before
    /// bridging; for TCP and Unix stream endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for another transport.
    pub fn tls(mut self, tls: ServerTls) -> Result<Self> {
        if !matches!(self.socket, BoundListener::Tcp(_) | BoundListener::Unix(..)) {
            return Err(Error::Unsupported(format!(
                "TLS runs over TCP and Unix stream sockets, not {}",
                self.local
            )));
        }
        self.tls = Some(tls);
        Ok(self)
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
        let tls = self.tls.as_ref();
        match self.socket {
            BoundListener::Tcp(l) => serve_streams((l, None), &local, stdio, opts, keep, tls).await,
            BoundListener::Unix(l, file) => {
                serve_streams((l, file), &local, stdio, opts, keep, tls).await
            }
            BoundListener::SeqPacket(l, file) => {
                serve_streams((l, file), &local, stdio, opts, keep, None).await
            }
            BoundListener::Udp(s) => serve_datagrams(&s, &local, stdio, opts, keep).await,
            BoundListener::UnixDgram(s, _file) => {
                serve_datagrams(&s, &local, stdio, opts, keep).await
            }
        }
    }
}

/// The first sender becomes the peer; datagrams have no end, so there is
/// no "next peer" for `-k`.
async fn serve_datagrams<D: Datagram>(
    socket: &D,
    local: &str,
    stdio: &mut Stdio,
    opts: &BridgeOptions,
    keep: bool,
) -> Result<End> {
    if keep {
        return Err(Error::Unsupported(format!(
            "-k needs a stream transport: a datagram peer on {local} never ends, so there is no next one"
        )));
    }
    let peer = accept_first_datagram(socket, stdio, local).await?;
    info!(target: "sockit::conn", "Connection from {peer}");
    bridge_datagram(socket, stdio, opts, &peer.to_string()).await
}

/// Accepts peers one at a time. `listening` is the listener and the guard
/// of its socket file (if any), dropped together: without `keep`, as soon
/// as the peer is accepted.
async fn serve_streams<L: Listener>(
    listening: (L, Option<SocketFile>),
    local: &str,
    stdio: &mut Stdio,
    opts: &BridgeOptions,
    keep: bool,
    tls: Option<&ServerTls>,
) -> Result<End> {
    let mut listening = Some(listening);
    loop {
        let Some((current, _)) = listening.as_mut() else {
            return Ok(End::Closed);
        };
        let (stream, peer) = accept_one(current, local).await?;
        if !keep {
            listening = None;
        }
        info!(target: "sockit::conn", "Connection from {peer}");
        let peer = peer.to_string();
        let bridged = match tls {
            Some(tls) => match tls.accept(stream).await {
                Ok(stream) => bridge(stream, stdio, opts, &peer).await,
                Err(source) => Err(Error::Io {
                    what: "TLS handshake with",
                    addr: peer.clone(),
                    source,
                }),
            },
            None => bridge(stream, stdio, opts, &peer).await,
        };
        match bridged {
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
