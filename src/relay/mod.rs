//! `sockit relay FROM TO`: socat's job. Accept on FROM, and join each
//! connection to a new one to TO (or to a child process, `exec:CMD`).
//!
//! A relay runs on the server's machinery: listeners bound by
//! [`Builder::bind_listeners`](crate::server::Builder::bind_listeners),
//! the one accept loop (a `Handler` per connection, here
//! [`StreamRelay`]), its limits (`max_connections`, the idle timeout) and
//! its graceful shutdown (stop accepting, let pairs finish up to the grace
//! period).
//!
//! | FROM | TO | how bytes move |
//! |---|---|---|
//! | TCP, Unix stream | TCP, Unix stream | `splice(2)` through a pipe per direction ([`splice`]) |
//! | any stream | seqpacket, `exec:` | a 64 KiB buffer per direction |
//! | seqpacket | any stream | a 64 KiB buffer per direction, a message per read |
//!
//! How a pair ends (half-close, resets, idle timeout) is in [`pair`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::conn::ConnReport;
use crate::endpoint::Family;
use crate::logging::counted;
use crate::server::handler::Accepted;
use crate::server::limits::default_max_connections;
use crate::server::{
    accept, BoundListener, Builder, ConnLimits, Handler, Limits, LocalAddr, Shared,
};
use crate::{Error, Result};

pub mod exec;
pub mod flows;
pub mod pair;
pub mod proxy;
pub mod splice;
pub mod target;

pub use pair::{PairEnd, RelayStream};
pub use proxy::ProxyVersion;
pub use target::Target;

use target::{Resolved, Upstream};

/// Descriptors one spliced pair holds: the two sockets and two pipes (two
/// ends each). The default `max_connections` of a relay is the server's
/// default divided by this, so a full relay does not run out of them.
pub const DESCRIPTORS_PER_PAIR: usize = 6;

/// How long connecting to TO may take. Default is 10 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a relay behaves. `Default` gives the defaults listed per field.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Limits of the accept loop. A relay uses `max_connections` (pairs at
    /// once) and `idle_timeout` (a pair with no byte moving either way for
    /// this long is closed). Default is [`Limits::default`] with
    /// `max_connections` divided by [`DESCRIPTORS_PER_PAIR`].
    pub limits: Limits,
    /// How long pairs may go on after shutdown begins. Default is 5 seconds.
    pub grace: Duration,
    /// Bounds connecting to TO, per address. Default is 10 seconds
    /// ([`DEFAULT_CONNECT_TIMEOUT`]); `None` waits as long as the OS does.
    pub connect_timeout: Option<Duration>,
    /// UDP → UDP: most client flows at once (one upstream socket each);
    /// a new client beyond it evicts the quietest flow. Default is 4,096
    /// ([`flows::DEFAULT_MAX_FLOWS`]).
    pub max_flows: usize,
    /// Write a PROXY protocol header with the client's address to TO
    /// before any client byte (`--send-proxy`). Default is `None`.
    pub send_proxy: Option<ProxyVersion>,
    /// Resolve a TCP or UDP TO to addresses of this family only (`-4` /
    /// `-6`; FROM follows the builder's). Default is `None` (any).
    pub family: Option<Family>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            limits: Limits {
                max_connections: default_max_pairs(),
                per_connection: ConnLimits::default(),
            },
            grace: crate::server::DEFAULT_GRACE,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            max_flows: flows::DEFAULT_MAX_FLOWS,
            send_proxy: None,
            family: None,
        }
    }
}

/// The default bound on pairs at once: the server's default
/// ([`default_max_connections`]) divided by [`DESCRIPTORS_PER_PAIR`].
pub fn default_max_pairs() -> usize {
    (default_max_connections() / DESCRIPTORS_PER_PAIR).max(1)
}

/// Counters over every pair of one relay, for its summary.
#[derive(Debug, Default)]
struct Totals {
    pairs: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
    failed_connects: AtomicU64,
    resets: AtomicU64,
}

/// The per-connection handler of a stream relay: open TO, join the two,
/// log how it went.
#[derive(Debug)]
pub struct StreamRelay {
    target: Resolved,
    /// TO as the user wrote it, for logs.
    to: String,
    connect_timeout: Option<Duration>,
    idle_timeout: Duration,
    send_proxy: Option<ProxyVersion>,
    totals: Arc<Totals>,
}

impl<Io: RelayStream> Handler<Io> for StreamRelay {
    async fn handle(&self, mut client: Io, accepted: Accepted) -> ConnReport {
        let peer = &accepted.peer;
        let mut upstream = match target::open(&self.target, self.connect_timeout, peer).await {
            Ok(upstream) => upstream,
            Err(err) => {
                self.totals.failed_connects.fetch_add(1, Ordering::Relaxed);
                info!(target: "sockit::conn", "relay from {peer} failed: {err}");
                // A reset, not a clean close: the client must not take the
                // empty stream for a complete (empty) answer.
                client.set_reset_on_close();
                return ConnReport {
                    requests: 0,
                    error: true,
                };
            }
        };
        if let Some(version) = self.send_proxy {
            let written = match proxy::header(version, peer, client.local_inet()) {
                Ok(header) => upstream.write_all(&header).await,
                Err(err) => Err(err),
            };
            if let Err(err) = written {
                self.totals.failed_connects.fetch_add(1, Ordering::Relaxed);
                info!(target: "sockit::conn", "relay from {peer} failed: cannot send the PROXY {version} header to {}: {err}", self.to);
                client.set_reset_on_close();
                return ConnReport {
                    requests: 0,
                    error: true,
                };
            }
        }
        let progress = pair::Progress::new();
        let end = match &mut upstream {
            Upstream::Tcp(s) => pair::join(&mut client, s, self.idle_timeout, &progress).await,
            Upstream::Unix(s) => pair::join(&mut client, s, self.idle_timeout, &progress).await,
            Upstream::SeqPacket(s) => {
                pair::join(&mut client, s, self.idle_timeout, &progress).await
            }
            Upstream::Exec(s) => pair::join(&mut client, s, self.idle_timeout, &progress).await,
        };
        // Close the client first, then the upstream (and reap a child).
        drop(client);
        if let Upstream::Exec(child) = upstream {
            child.finish(!matches!(end, PairEnd::Closed)).await;
        } else {
            drop(upstream);
        }
        let (up, down) = (
            progress.up.load(Ordering::Relaxed),
            progress.down.load(Ordering::Relaxed),
        );
        let totals = &self.totals;
        totals.pairs.fetch_add(1, Ordering::Relaxed);
        totals.up.fetch_add(up, Ordering::Relaxed);
        totals.down.fetch_add(down, Ordering::Relaxed);
        let error = matches!(end, PairEnd::Reset(_));
        if error {
            totals.resets.fetch_add(1, Ordering::Relaxed);
        }
        info!(
            target: "sockit::request",
            "{peer} <-> {}: {end} after {:.3}s, {up} bytes up, {down} bytes down ({})",
            self.to,
            progress.elapsed().as_secs_f64(),
            progress.copy_mode()
        );
        ConnReport { requests: 0, error }
    }
}

/// A bound relay, ready to [`run`](Relay::run_with).
#[derive(Debug)]
pub struct Relay {
    /// The FROM sockets, bound.
    listeners: Vec<BoundListener>,
    /// What each connection is handed to.
    handler: Arc<StreamRelay>,
    /// The accept loops' shared state: shutdown token, task tracker, slots.
    shared: Arc<Shared>,
    /// How long pairs may go on after shutdown begins.
    grace: Duration,
    totals: Arc<Totals>,
    /// UDP → UDP settings, when TO is UDP.
    flows: Option<flows::FlowOptions>,
    flow_totals: Arc<flows::FlowTotals>,
    /// TLS on the stream FROM listeners (the builder's), with its reload
    /// task.
    tls: Option<(crate::tls::ServerTls, Option<tokio::task::JoinHandle<()>>)>,
}

/// What a relay did, returned by [`Relay::run_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySummary {
    /// Pairs that ran and ended.
    pub pairs: u64,
    /// Bytes from clients to TO.
    pub bytes_up: u64,
    /// Bytes from TO to clients.
    pub bytes_down: u64,
    /// Connections whose TO could not be opened.
    pub failed_connects: u64,
    /// Pairs that ended in a reset or an error.
    pub resets: u64,
    /// Pairs still open when the grace period ran out.
    pub abandoned: usize,
    /// UDP flows opened.
    pub flows: u64,
    /// Datagrams from clients to TO, and from TO to clients.
    pub datagrams_up: u64,
    /// Datagrams from TO to clients.
    pub datagrams_down: u64,
    /// Datagrams dropped (a full send buffer, no socket for a new flow).
    pub datagrams_dropped: u64,
}

impl std::fmt::Display for RelaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "relayed {}, {} bytes up, {} bytes down, {}, {}",
            counted(self.pairs, "connection"),
            self.bytes_up,
            self.bytes_down,
            counted(self.resets, "reset"),
            counted(self.failed_connects, "failed connect")
        )?;
        if self.flows > 0 {
            write!(
                f,
                "; {} UDP flows, {} datagrams up, {} down, {} dropped",
                self.flows, self.datagrams_up, self.datagrams_down, self.datagrams_dropped
            )?;
        }
        if self.abandoned > 0 {
            let cut = counted(self.abandoned as u64, "connection");
            write!(f, "; {cut} cut off at exit")?;
        }
        Ok(())
    }
}

impl Relay {
    /// Binds FROM (the endpoints given to `builder`: its backlog, mode and
    /// family apply) and prepares TO (a TCP name is resolved once, here).
    ///
    /// # Errors
    ///
    /// As [`Builder::bind`] for FROM; [`Error::Resolve`] for a TO that does
    /// not resolve; [`Error::Unsupported`] for a pair of transports a relay
    /// cannot join (a datagram FROM with a stream TO, or the reverse).
    pub async fn bind(builder: Builder, to: &Target, opts: RelayOptions) -> Result<Relay> {
        let target = Resolved::new(to, opts.family).await?;
        let listeners = builder.bind_listeners().await?;
        let tls = builder.tls_config().cloned().map(|tls| {
            let watcher = tls.watch().unwrap_or_else(|err| {
                warn!("cannot install the SIGHUP handler: the TLS certificate reloads only when its files change: {err}");
                None
            });
            (tls, watcher)
        });
        for listener in &listeners {
            let joinable = match listener {
                BoundListener::Udp(_) => matches!(target, Resolved::Udp(_)),
                BoundListener::UnixDgram(..) => false,
                _ => target.is_stream(),
            };
            if !joinable {
                let from = listener
                    .local_addr()
                    .map_or_else(|_| "FROM".to_owned(), |a| a.to_string());
                return Err(Error::Unsupported(format!(
                    "relay cannot join {from} to {to}: relay joins a stream endpoint to a stream endpoint or exec:, and udp:// to udp://"
                )));
            }
        }
        if opts.send_proxy.is_some() && !matches!(target, Resolved::Tcp(_) | Resolved::Unix(_)) {
            return Err(Error::Unsupported(format!(
                "--send-proxy needs a stream TO (TCP, Unix, seqpacket), not {to}"
            )));
        }
        let flows = match &target {
            Resolved::Udp(addr) => Some(flows::FlowOptions {
                target: *addr,
                idle: opts.limits.per_connection.idle_timeout,
                max_flows: opts.max_flows,
            }),
            _ => None,
        };
        let totals = Arc::new(Totals::default());
        Ok(Relay {
            listeners,
            handler: Arc::new(StreamRelay {
                target,
                to: to.to_string(),
                connect_timeout: opts.connect_timeout,
                idle_timeout: opts.limits.per_connection.idle_timeout,
                send_proxy: opts.send_proxy,
                totals: totals.clone(),
            }),
            shared: Arc::new(Shared::new(opts.limits)),
            grace: opts.grace,
            totals,
            flows,
            flow_totals: Arc::new(flows::FlowTotals::default()),
            tls,
        })
    }

    /// The addresses FROM is bound to, with the real ports.
    pub fn local_addrs(&self) -> Vec<LocalAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Relays until `shutdown` resolves, then shuts down as
    /// [`Server::run_with`](crate::server::Server::run_with) does: closes
    /// the listeners, lets pairs go on up to the grace period (or until
    /// `force` resolves), and returns what it did.
    pub async fn run_with(
        self,
        shutdown: impl Future<Output = ()> + Send,
        force: impl Future<Output = ()> + Send,
    ) -> RelaySummary {
        let Relay {
            listeners,
            handler,
            shared,
            grace,
            totals,
            flows,
            flow_totals,
            tls,
        } = self;
        crate::server::install_panic_hook();
        let mut accept_loops = JoinSet::new();
        for listener in listeners {
            let (handler, shared) = (handler.clone(), shared.clone());
            match (listener, &tls) {
                (BoundListener::Tcp(l), Some((tls, _))) => {
                    let handler = Arc::new(tls.handler(handler));
                    accept_loops.spawn(accept::accept_loop(l, handler, shared));
                }
                (BoundListener::Unix(l, file), Some((tls, _))) => {
                    let handler = Arc::new(tls.handler(handler));
                    accept_loops.spawn(async move {
                        accept::accept_loop(l, handler, shared).await;
                        drop(file);
                    });
                }
                (BoundListener::Tcp(l), _) => {
                    accept_loops.spawn(accept::accept_loop(l, handler, shared));
                }
                (BoundListener::Unix(l, file), _) => {
                    accept_loops.spawn(async move {
                        accept::accept_loop(l, handler, shared).await;
                        drop(file);
                    });
                }
                (BoundListener::SeqPacket(l, file), _) => {
                    accept_loops.spawn(async move {
                        accept::accept_loop(l, handler, shared).await;
                        drop(file);
                    });
                }
                (BoundListener::Udp(socket), _) => {
                    // `bind` made sure TO is UDP.
                    if let Some(opts) = flows.clone() {
                        accept_loops.spawn(flows::flow_loop(
                            socket,
                            opts,
                            flow_totals.clone(),
                            shared.shutdown.clone(),
                        ));
                    }
                }
                // Refused in `bind`.
                (BoundListener::UnixDgram(..), _) => {}
            }
        }
        shutdown.await;
        shared.close_listeners(accept_loops).await;
        // Logged once the listeners are closed, so whoever reads it can
        // rely on new clients being refused.
        info!(
            "shutting down: listeners closed; letting {} pairs finish (up to {}s)",
            shared.tracker.len(),
            grace.as_secs_f64()
        );
        let abandoned = shared.wait_for_connections(grace, force).await;
        if let Some((_, Some(watcher))) = tls {
            watcher.abort();
        }
        RelaySummary {
            pairs: totals.pairs.load(Ordering::Relaxed),
            bytes_up: totals.up.load(Ordering::Relaxed),
            bytes_down: totals.down.load(Ordering::Relaxed),
            failed_connects: totals.failed_connects.load(Ordering::Relaxed),
            resets: totals.resets.load(Ordering::Relaxed),
            abandoned,
            flows: flow_totals.flows.load(Ordering::Relaxed),
            datagrams_up: flow_totals.up.load(Ordering::Relaxed),
            datagrams_down: flow_totals.down.load(Ordering::Relaxed),
            datagrams_dropped: flow_totals.dropped.load(Ordering::Relaxed),
        }
    }
}
