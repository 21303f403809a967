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
use crate::endpoint::{Endpoint, Family, Host, HostPort};
use crate::logging::counted;
use crate::seqpacket::SeqPacketListener;
use crate::service::Service;
use crate::socket::{self, ListenOptions, UnixType};
use crate::tls::ServerTls;
use crate::{Error, Result};

pub(crate) mod accept;
pub mod datagram;
pub(crate) mod handler;
pub mod limits;
pub mod listener;
mod panic;
pub mod shutdown;
pub mod socket_file;

pub(crate) use handler::Handler;
pub use limits::{ConnLimits, Limits};
pub use listener::{Listener, LocalAddr};
pub(crate) use panic::install_hook as install_panic_hook;
pub use shutdown::Signals;
pub use socket_file::SocketFile;

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
    family: Option<Family>,
    tls: Option<ServerTls>,
}

/// A bound server, ready to [`run`](Server::run).
///
/// Binding happens in [`Builder::bind`], before `run`: once `bind` returns,
/// clients can connect (the kernel queues them), so the bound addresses are
/// the readiness signal.
#[derive(Debug)]
pub struct Server<S> {
    /// Bound sockets: one accept loop per stream listener, one datagram
    /// loop per datagram socket.
    listeners: Vec<BoundListener>,
    /// The handler every connection is given to.
    service: Arc<S>,
    /// What accept loops and connections share.
    shared: Arc<Shared>,
    /// How long `run` waits for in-flight requests after the shutdown signal.
    grace: Duration,
    /// TLS on every stream listener, with the task that reloads its
    /// certificate (installed at bind, so SIGHUP never kills a ready server).
    tls: Option<(ServerTls, Option<tokio::task::JoinHandle<()>>)>,
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
    /// Handed to every connection's [`Conn`](crate::conn::Conn).
    pub(crate) conn_limits: Arc<ConnLimits>,
    /// Counters for the summary.
    pub(crate) stats: Arc<Stats>,
}

impl Shared {
    /// State for a server holding connections to `limits`.
    pub(crate) fn new(limits: Limits) -> Shared {
        let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Shared {
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(max)),
            conn_limits: Arc::new(limits.per_connection),
            stats: Arc::new(Stats::default()),
        }
    }

    /// The last two steps of a graceful shutdown, once `shutdown` is
    /// decided: [`close_listeners`](Shared::close_listeners), then
    /// [`wait_for_connections`](Shared::wait_for_connections). Returns how
    /// many connections were still open at the end.
    pub(crate) async fn drain(
        &self,
        accept_loops: JoinSet<()>,
        grace: Duration,
        force: impl Future<Output = ()> + Send,
    ) -> usize {
        self.close_listeners(accept_loops).await;
        self.wait_for_connections(grace, force).await
    }

    /// Tells every accept loop and connection (cancels the token) and
    /// waits for the loops to end, which closes their listeners: from
    /// here on the kernel refuses new clients.
    pub(crate) async fn close_listeners(&self, mut accept_loops: JoinSet<()>) {
        self.shutdown.cancel();
        while accept_loops.join_next().await.is_some() {}
    }

    /// Waits for the connections up to `grace`, or until `force`
    /// resolves. Returns how many were still open at the end.
    pub(crate) async fn wait_for_connections(
        &self,
        grace: Duration,
        force: impl Future<Output = ()> + Send,
    ) -> usize {
        self.tracker.close();
        tokio::pin!(force);
        tokio::select! {
            () = self.tracker.wait() => 0,
            () = tokio::time::sleep(grace) => {
                warn!("grace period of {}s is over: closing {} connections", grace.as_secs_f64(), self.tracker.len());
                self.tracker.len()
            }
            () = &mut force => {
                warn!("second signal: exiting now, closing {} connections", self.tracker.len());
                self.tracker.len()
            }
        }
    }
}

/// A bound server socket of any transport: a listener for the stream
/// transports (run by the one accept loop), a bound socket for the datagram
/// ones (run by the one datagram loop).
///
/// A Unix socket bound to a path carries the guard that removes its file
/// when the server stops (`None` for an abstract name).
#[derive(Debug)]
#[non_exhaustive]
pub enum BoundListener {
    /// A TCP listener.
    Tcp(tokio::net::TcpListener),
    /// A Unix stream listener.
    Unix(tokio::net::UnixListener, Option<SocketFile>),
    /// A Unix seqpacket listener.
    SeqPacket(SeqPacketListener, Option<SocketFile>),
    /// A bound UDP socket.
    Udp(tokio::net::UdpSocket),
    /// A bound Unix datagram socket.
    UnixDgram(tokio::net::UnixDatagram, Option<SocketFile>),
}

impl BoundListener {
    /// The bound address.
    ///
    /// # Errors
    ///
    /// The `getsockname(2)` error.
    pub fn local_addr(&self) -> std::io::Result<LocalAddr> {
        use datagram::DatagramSocket;
        match self {
            BoundListener::Tcp(l) => Listener::local_addr(l),
            BoundListener::Unix(l, _) => Listener::local_addr(l),
            BoundListener::SeqPacket(l, _) => Listener::local_addr(l),
            BoundListener::Udp(s) => DatagramSocket::local_addr(s),
            BoundListener::UnixDgram(s, _) => DatagramSocket::local_addr(s),
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
    dropped_replies: AtomicU64,
}

impl Stats {
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what a datagram loop did: each datagram is a request.
    pub(crate) fn datagrams_done(&self, counts: datagram::DatagramCounts) {
        self.requests.fetch_add(counts.handled, Ordering::Relaxed);
        self.errors.fetch_add(counts.errors, Ordering::Relaxed);
        self.dropped_replies
            .fetch_add(counts.dropped, Ordering::Relaxed);
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
    /// Requests answered on connections that have ended, plus datagrams
    /// handled.
    pub requests: u64,
    /// Connections that ended in an error (bad request, I/O error), plus
    /// datagrams too long to serve and replies that failed.
    pub errors: u64,
    /// Datagram replies dropped because the socket's send buffer was full.
    pub dropped_replies: u64,
    /// Connections still open when the grace period ran out or a second
    /// signal forced the exit.
    pub abandoned: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {}, {}, {}",
            counted(self.connections, "connection"),
            counted(self.requests, "request"),
            counted(self.errors, "error")
        )?;
        if self.dropped_replies > 0 {
            write!(
                f,
                "; {} datagram replies dropped (send buffer full)",
                self.dropped_replies
            )?;
        }
        if self.abandoned > 0 {
            let cut = counted(self.abandoned as u64, "connection");
            write!(f, "; {cut} cut off at exit")?;
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
            family: None,
            tls: None,
        }
    }
}

impl Builder {
    /// Adds an endpoint to listen on. With none, the server listens on
    /// [`Endpoint::default_listen`] (TCP port 8888, all interfaces).
    ///
    /// Every transport is served: TCP, Unix stream and seqpacket through
    /// the one accept loop, UDP and Unix datagram through the one datagram
    /// loop. A Unix path whose socket file is stale (nobody listening) is
    /// reused; a live socket or a file that is not a socket is an error; the
    /// file is removed when the server stops.
    ///
    /// A port-only endpoint (`8888`, `:8888`) means all interfaces:
    /// dual-stack `[::]` with `IPV6_V6ONLY` off, or `0.0.0.0` where IPv6 is
    /// unavailable. An explicit `[::]` is IPv6 only, as in nginx. A name
    /// binds the first of its addresses that works.
    pub fn listen(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Restricts IP endpoints to one family (`-4` / `-6`): a port-only
    /// endpoint binds `0.0.0.0` or `[::]` (IPv6 only) instead of
    /// dual-stack, a name binds only addresses of that family, and an IP
    /// literal of the other family is an error. Default is `None` (any).
    pub fn family(mut self, family: Option<Family>) -> Self {
        self.family = family;
        self
    }

    /// Permissions of the socket files of Unix endpoints (`--mode 0660`),
    /// applied before the socket accepts anyone. Default is `None`: what
    /// the umask leaves.
    pub fn mode(mut self, mode: Option<u32>) -> Self {
        self.listen.mode = mode;
        self
    }

    /// The `listen(2)` backlog. Default is 1024.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.listen.backlog = backlog;
        self
    }

    /// The limits the server and every connection are held to. Default is
    /// [`Limits::default`].
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
        if self.tls.is_some() {
            if let Some(e) = self
                .endpoints
                .iter()
                .find(|e| !matches!(e, Endpoint::Tcp(_) | Endpoint::Unix(_)))
            {
                return Err(Error::Unsupported(format!(
                    "TLS runs over TCP and Unix stream sockets, not {e}"
                )));
            }
        }
        let listeners = self.bind_listeners().await?;
        Ok(self.with_listeners(listeners, service))
    }

    /// The TLS configuration given to [`tls`](Builder::tls), if any.
    pub(crate) fn tls_config(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// Serves TLS on every listener: each connection's handshake runs in
    /// its own task, within the header timeout, before the service sees a
    /// byte.
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
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
        let tls = self.tls.map(|tls| {
            let watcher = tls.watch().unwrap_or_else(|err| {
                warn!("cannot install the SIGHUP handler: the TLS certificate reloads only when its files change: {err}");
                None
            });
            (tls, watcher)
        });
        Server {
            listeners,
            service: Arc::new(service),
            shared: Arc::new(Shared::new(self.limits)),
            grace: self.grace,
            tls,
        }
    }

    async fn bind_one(&self, endpoint: &Endpoint) -> Result<BoundListener> {
        let name = endpoint.to_string();
        match endpoint {
            Endpoint::Tls(_) => Err(Error::Unsupported(format!(
                "cannot listen on {endpoint}: tls:// is for connecting; serve TLS on a tcp:// address with --tls-cert/--tls-key or --tls-self-signed"
            ))),
            Endpoint::Tcp(hp) => self
                .bind_ip(hp, socket::tcp_listener)
                .await
                .map(BoundListener::Tcp),
            Endpoint::Udp(hp) => self
                .bind_ip(hp, socket::udp_bind)
                .await
                .map(BoundListener::Udp),
            Endpoint::Unix(addr) => {
                let (l, file) = socket_file::bind_unix(UnixType::Stream, &name, addr, || {
                    socket::unix_listener(addr, &self.listen)
                })?;
                Ok(BoundListener::Unix(l, file))
            }
            Endpoint::SeqPacket(addr) => {
                let (l, file) = socket_file::bind_unix(UnixType::SeqPacket, &name, addr, || {
                    socket::seqpacket_listener(addr, &self.listen)
                })?;
                Ok(BoundListener::SeqPacket(l, file))
            }
            Endpoint::UnixDgram(addr) => {
                let (s, file) = socket_file::bind_unix(UnixType::Datagram, &name, addr, || {
                    socket::unix_datagram_bind(addr, self.listen.mode)
                })?;
                Ok(BoundListener::UnixDgram(s, file))
            }
        }
    }

    /// Binds an IP endpoint with `open` (a TCP listener or a UDP socket),
    /// as [`Builder::listen`] and [`Builder::family`] describe.
    async fn bind_ip<T>(
        &self,
        hp: &HostPort,
        open: impl Fn(SocketAddr, &ListenOptions) -> std::io::Result<T>,
    ) -> Result<T> {
        let bind = |addr: SocketAddr, only_v6: Option<bool>| {
            let opts = ListenOptions {
                only_v6,
                ..self.listen.clone()
            };
            open(addr, &opts).map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })
        };
        let v4_any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, hp.port));
        let v6_any = SocketAddr::from((Ipv6Addr::UNSPECIFIED, hp.port));
        match (&hp.host, self.family) {
            (Host::Any, Some(Family::V4)) => bind(v4_any, None),
            (Host::Any, Some(Family::V6)) => bind(v6_any, Some(true)),
            (Host::Any, None) => match bind(v6_any, Some(false)) {
                Ok(listener) => Ok(listener),
                Err(Error::Bind { source, .. }) if ipv6_unavailable(&source) => bind(v4_any, None),
                Err(err) => Err(err),
            },
            (Host::Ip { addr, .. }, family) => {
                if family.is_some_and(|f| (f == Family::V4) != addr.is_ipv4()) {
                    return Err(Error::Resolve {
                        host: hp.to_string(),
                        reason: format!(
                            "{addr} is not an {} address (-4/-6 was given)",
                            if addr.is_ipv4() { "IPv6" } else { "IPv4" }
                        ),
                    });
                }
                let addr = hp.resolve(None).await?[0];
                bind(addr, addr.is_ipv6().then_some(true))
            }
            (Host::Name(_), family) => {
                let mut last = None;
                for addr in hp.resolve(family).await? {
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
    /// A panic in the service closes that connection only. To log it once,
    /// this installs (once per process) a panic hook that stays silent for
    /// panics caught at a connection and defers to the previous hook for
    /// all others.
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
            tls,
        } = self;
        panic::install_hook();
        let mut accept_loops = JoinSet::new();
        for listener in listeners {
            let (service, shared) = (service.clone(), shared.clone());
            match (listener, &tls) {
                (BoundListener::Tcp(l), Some((tls, _))) => {
                    accept_loops.spawn(accept::accept_loop(
                        l,
                        Arc::new(tls.handler(service)),
                        shared,
                    ));
                }
                (BoundListener::Unix(l, file), Some((tls, _))) => {
                    let handler = Arc::new(tls.handler(service));
                    accept_loops.spawn(async move {
                        accept::accept_loop(l, handler, shared).await;
                        drop(file);
                    });
                }
                (listener, _) => spawn_plain(&mut accept_loops, listener, service, shared),
            };
        }

        // Decide.
        shutdown.await;
        // Tell, then wait.
        info!(
            "shutting down: no new connections; finishing requests in flight (up to {}s)",
            grace.as_secs_f64()
        );
        let abandoned = shared.drain(accept_loops, grace, force).await;
        if let Some((_, Some(watcher))) = tls {
            watcher.abort();
        }
        let stats = &shared.stats;
        Summary {
            connections: stats.connections.load(Ordering::Relaxed),
            requests: stats.requests.load(Ordering::Relaxed),
            errors: stats.errors.load(Ordering::Relaxed),
            dropped_replies: stats.dropped_replies.load(Ordering::Relaxed),
            abandoned,
        }
    }
}

/// Starts the loop of one listener without TLS.
fn spawn_plain<S: Service>(
    accept_loops: &mut JoinSet<()>,
    listener: BoundListener,
    service: Arc<S>,
    shared: Arc<Shared>,
) {
    match listener {
        BoundListener::Tcp(l) => accept_loops.spawn(accept::accept_loop(l, service, shared)),
        // The socket file guard lives as long as the loop, and is
        // dropped (the file removed) once the socket is closed.
        BoundListener::Unix(l, file) => accept_loops.spawn(async move {
            accept::accept_loop(l, service, shared).await;
            drop(file);
        }),
        BoundListener::SeqPacket(l, file) => accept_loops.spawn(async move {
            accept::accept_loop(l, service, shared).await;
            drop(file);
        }),
        BoundListener::Udp(s) => accept_loops.spawn(datagram::datagram_loop(s, service, shared)),
        BoundListener::UnixDgram(s, file) => accept_loops.spawn(async move {
            datagram::datagram_loop(s, service, shared).await;
            drop(file);
        }),
    };
}
