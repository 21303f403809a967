//! The server: binds listeners, runs the one accept loop on each, hands
//! every connection to a [`Service`], and shuts down gracefully.
//!
//! ```no_run
//! use sockit::{server::Server, service::Hello};
//!
//! # async fn demo() -> sockit::Result<()> {
//! let server = Server::builder().listen("127.0.0.1:0".parse()?).bind(Hello::default()).await?;
//! println!("listening on {}", server.local_addrs()[0]);
//! let summary = server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! println!("{summary}");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::conn::ConnReport;
use crate::endpoint::{Endpoint, Host, HostPort};
use crate::service::Service;
use crate::socket::{self, ListenOptions};
use crate::{Error, Result};

pub(crate) mod accept;
pub mod limits;
pub mod listener;
pub mod shutdown;

pub use limits::Limits;
pub use listener::{Listener, LocalAddr};
pub use shutdown::Signals;

/// How long in-flight requests may take to finish once shutdown starts.
/// Default is 5 seconds.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Configures and binds a [`Server`].
#[derive(Debug, Clone)]
pub struct Builder {
    endpoints: Vec<Endpoint>,
    listen: ListenOptions,
    limits: Limits,
    grace: Duration,
}

/// A bound server, ready to [`run`](Server::run).
///
/// Binding happens in [`Builder::bind`], before `run`: once `bind` returns,
/// clients can connect (the kernel queues them), so the bound addresses are
/// the readiness signal.
#[derive(Debug)]
pub struct Server<S> {
    /// Bound, listening sockets, one accept loop each.
    listeners: Vec<BoundListener>,
    /// The handler every connection is given to.
    service: Arc<S>,
    /// What accept loops and connections share.
    shared: Arc<Shared>,
    /// How long `run` waits for in-flight requests after the shutdown signal.
    grace: Duration,
}

/// State every accept loop and connection task of one server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Cancelled when shutdown begins: accept loops stop, connections
    /// finish their request in flight and close.
    pub(crate) shutdown: CancellationToken,
    /// Tracks connection tasks, so shutdown can wait for them to drain.
    pub(crate) tracker: TaskTracker,
    /// One permit per connection being served: bounds concurrency at
    /// `limits.max_connections`, and the permit moves into the task.
    pub(crate) slots: Arc<Semaphore>,
    /// Handed to every connection.
    pub(crate) limits: Arc<Limits>,
    /// Counters for the summary.
    pub(crate) stats: Arc<Stats>,
}

/// A listening socket of any stream transport.
#[derive(Debug)]
#[non_exhaustive]
pub enum BoundListener {
    /// A TCP listener.
    Tcp(tokio::net::TcpListener),
}

impl BoundListener {
    /// The bound address.
    ///
    /// # Errors
    ///
    /// The `getsockname(2)` error.
    pub fn local_addr(&self) -> std::io::Result<LocalAddr> {
        match self {
            BoundListener::Tcp(l) => Listener::local_addr(l),
        }
    }
}

/// Connection counters, updated once per connection (not per request), so
/// the hot path shares no cache line between cores.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Stats {
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self, report: ConnReport) {
        self.requests.fetch_add(report.requests, Ordering::Relaxed);
        if report.error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a server did, returned by [`Server::run`] when it has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered on connections that have ended.
    pub requests: u64,
    /// Connections that ended in an error (bad request, I/O error).
    pub errors: u64,
    /// Connections still open when the grace period ran out or a second
    /// signal forced the exit.
    pub abandoned: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {} connections, {} requests, {} errors",
            self.connections, self.requests, self.errors
        )?;
        if self.abandoned > 0 {
            write!(f, "; {} connections cut off at exit", self.abandoned)?;
        }
        Ok(())
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            endpoints: Vec::new(),
            listen: ListenOptions::default(),
            limits: Limits::default(),
            grace: DEFAULT_GRACE,
        }
    }
}

impl Builder {
    /// Adds an endpoint to listen on. With none, the server listens on
    /// [`Endpoint::default_listen`] (TCP port 8888, all interfaces).
    ///
    /// A port-only endpoint (`8888`, `:8888`) means all interfaces:
    /// dual-stack `[::]` with `IPV6_V6ONLY` off, or `0.0.0.0` where IPv6 is
    /// unavailable. An explicit `[::]` is IPv6 only, as in nginx. A name
    /// binds the first of its addresses that works.
    pub fn listen(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// The `listen(2)` backlog. Default is 1024.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.listen.backlog = backlog;
        self
    }

    /// The limits every connection is held to. Default is [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long in-flight requests may take to finish after shutdown is
    /// signalled. Default is 5 seconds.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Binds every endpoint and returns the server, ready to run.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the address that failed (in use, permission
    /// denied, not a local address), [`Error::Resolve`] for a name that does
    /// not resolve, and [`Error::Unsupported`] for a transport this server
    /// cannot listen on.
    pub async fn bind<S: Service>(self, service: S) -> Result<Server<S>> {
        let listeners = self.bind_listeners().await?;
        Ok(self.with_listeners(listeners, service))
    }

    /// Binds every endpoint, as [`bind`](Builder::bind) does, and returns
    /// the listeners themselves (`sockit listen` accepts from one directly).
    ///
    /// # Errors
    ///
    /// As [`bind`](Builder::bind).
    pub async fn bind_listeners(&self) -> Result<Vec<BoundListener>> {
        let endpoints = if self.endpoints.is_empty() {
            vec![Endpoint::default_listen()]
        } else {
            self.endpoints.clone()
        };
        let mut listeners = Vec::with_capacity(endpoints.len());
        for endpoint in &endpoints {
            listeners.push(self.bind_one(endpoint).await?);
        }
        Ok(listeners)
    }

    /// Builds a server over listeners bound elsewhere (socket activation,
    /// tests); the builder's endpoints and backlog are not used.
    pub fn with_listeners<S: Service>(
        self,
        listeners: Vec<BoundListener>,
        service: S,
    ) -> Server<S> {
        let max = self.limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Server {
            listeners,
            service: Arc::new(service),
            shared: Arc::new(Shared {
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                slots: Arc::new(Semaphore::new(max)),
                limits: Arc::new(self.limits),
                stats: Arc::new(Stats::default()),
            }),
            grace: self.grace,
        }
    }

    async fn bind_one(&self, endpoint: &Endpoint) -> Result<BoundListener> {
        match endpoint {
            Endpoint::Tcp(hp) => self.bind_tcp(hp).await.map(BoundListener::Tcp),
            other => Err(Error::Unsupported(format!(
                "cannot serve {other}: {} listeners are not supported yet; use a TCP endpoint",
                other.transport()
            ))),
        }
    }

    async fn bind_tcp(&self, hp: &HostPort) -> Result<tokio::net::TcpListener> {
        let bind = |addr: SocketAddr, only_v6: Option<bool>| {
            let opts = ListenOptions {
                only_v6,
                ..self.listen.clone()
            };
            socket::tcp_listener(addr, &opts).map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })
        };
        match &hp.host {
            Host::Any => {
                let dual = SocketAddr::from((Ipv6Addr::UNSPECIFIED, hp.port));
                match bind(dual, Some(false)) {
                    Ok(listener) => Ok(listener),
                    Err(Error::Bind { source, .. }) if ipv6_unavailable(&source) => {
                        bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, hp.port)), None)
                    }
                    Err(err) => Err(err),
                }
            }
            Host::Ip {
                addr: std::net::IpAddr::V6(_),
                ..
            } => {
                let addr = hp.resolve(None).await?[0];
                bind(addr, Some(true))
            }
            _ => {
                let mut last = None;
                for addr in hp.resolve(None).await? {
                    match bind(addr, addr.is_ipv6().then_some(true)) {
                        Ok(listener) => return Ok(listener),
                        Err(err) => last = Some(err),
                    }
                }
                Err(last.unwrap_or_else(|| Error::Resolve {
                    host: hp.to_string(),
                    reason: "no addresses".into(),
                }))
            }
        }
    }
}

/// Whether a bind on `[::]` failed because this host has no IPv6.
fn ipv6_unavailable(err: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        err.raw_os_error().map(Errno::from_raw),
        Some(Errno::EAFNOSUPPORT | Errno::EADDRNOTAVAIL | Errno::EPROTONOSUPPORT)
    )
}

impl Server<()> {
    /// A builder with every default.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<S: Service> Server<S> {
    /// The addresses the server listens on, with the real ports.
    pub fn local_addrs(&self) -> Vec<LocalAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully (see
    /// [`Server::run_with`]).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Summary {
        self.run_with(shutdown, std::future::pending()).await
    }

    /// Serves until `shutdown` resolves, then:
    /// 1. stops every accept loop and closes the listeners, so the kernel
    ///    refuses new clients;
    /// 2. tells every connection to close: idle ones close at once, busy
    ///    ones once their current request is answered;
    /// 3. waits for them up to the grace period, or until `force` resolves.
    ///
    /// Returns what the server did.
    pub async fn run_with(
        self,
        shutdown: impl Future<Output = ()> + Send,
        force: impl Future<Output = ()> + Send,
    ) -> Summary {
        let Server {
            listeners,
            service,
            shared,
            grace,
        } = self;
        let mut accept_loops = JoinSet::new();
        for listener in listeners {
            match listener {
                BoundListener::Tcp(l) => {
                    accept_loops.spawn(accept::accept_loop(l, service.clone(), shared.clone()))
                }
            };
        }

        // Decide.
        shutdown.await;
        // Tell.
        info!(
            "shutting down: no new connections; finishing requests in flight (up to {}s)",
            grace.as_secs_f64()
        );
        shared.shutdown.cancel();
        while accept_loops.join_next().await.is_some() {}
        // Wait.
        shared.tracker.close();
        tokio::pin!(force);
        let abandoned = tokio::select! {
            () = shared.tracker.wait() => 0,
            () = tokio::time::sleep(grace) => {
                warn!("grace period of {}s is over: closing {} connections", grace.as_secs_f64(), shared.tracker.len());
                shared.tracker.len()
            }
            () = &mut force => {
                warn!("second signal: exiting now, closing {} connections", shared.tracker.len());
                shared.tracker.len()
            }
        };
        let stats = &shared.stats;
        Summary {
            connections: stats.connections.load(Ordering::Relaxed),
            requests: stats.requests.load(Ordering::Relaxed),
            errors: stats.errors.load(Ordering::Relaxed),
            abandoned,
        }
    }
}
