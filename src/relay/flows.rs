//! UDP → UDP: one upstream socket per client address, so every reply goes
//! back to the client it answers.
//!
//! UDP has no connections, so the relay makes flows out of addresses:
//! 1. a datagram from a client address with no flow opens one: a new UDP
//!    socket, bound to an ephemeral port and `connect(2)`ed to TO, and a
//!    task that sends whatever TO answers on it back to that client;
//! 2. later datagrams from the same address go out on the same socket, so
//!    TO sees one stable source per client;
//! 3. a flow with no datagram either way for the idle timeout is reaped
//!    (its socket closed, its task ended), checked every quarter of the
//!    timeout;
//! 4. the table holds at most `max_flows` flows: a new client beyond that
//!    evicts the flow that has been quiet longest, so a flood of spoofed
//!    addresses costs a bounded number of descriptors.
//!
//! Sending never waits: a datagram that would block (a full send buffer)
//! is dropped and counted, as UDP allows, so one slow direction never
//! stalls the loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::server::accept::ConnLog;
use crate::socket;

/// The largest datagram relayed whole: 64 KiB, more than any UDP payload.
const MAX_DATAGRAM: usize = 64 * 1024;

/// Flows the table holds at most by default: 4,096 (each holds one
/// descriptor).
pub const DEFAULT_MAX_FLOWS: usize = 4096;

/// What a datagram relay did, for its summary.
#[derive(Debug, Default)]
pub(crate) struct FlowTotals {
    pub(crate) flows: AtomicU64,
    pub(crate) up: AtomicU64,
    pub(crate) down: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// One client's flow.
#[derive(Debug)]
struct Flow {
    upstream: Arc<UdpSocket>,
    /// Milliseconds from the loop's start to the last datagram either way.
    last_ms: Arc<AtomicU64>,
    /// Datagrams each way, for the close line.
    up: u64,
    down: Arc<AtomicU64>,
    opened: Instant,
    replies: JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

/// Settings of [`flow_loop`].
#[derive(Debug, Clone)]
pub(crate) struct FlowOptions {
    pub(crate) target: SocketAddr,
    pub(crate) idle: Duration,
    pub(crate) max_flows: usize,
}

/// Relays datagrams between clients of `front` and `opts.target` until
/// `shutdown` is cancelled (see the [module docs](self)).
pub(crate) async fn flow_loop(
    front: UdpSocket,
    opts: FlowOptions,
    totals: Arc<FlowTotals>,
    shutdown: CancellationToken,
) {
    let front = Arc::new(front);
    let start = Instant::now();
    let now_ms = move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let idle_ms = u64::try_from(opts.idle.as_millis()).unwrap_or(u64::MAX);
    let max_flows = opts.max_flows.max(1);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    // "New UDP flow" lines are capped per second as the accept loop's
    // connection lines are: a flood of new senders must not flood the log.
    let mut flow_log = ConnLog::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Reap every quarter of the idle timeout (at most every 100 ms); with
    // no timeout, flows leave only by eviction.
    let period = (opts.idle / 4).max(Duration::from_millis(100));
    let mut reap = tokio::time::interval_at(Instant::now() + period, period);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (n, client) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = reap.tick(), if opts.idle != Duration::MAX => {
                let now = now_ms();
                flows.retain(|client, flow| {
                    let quiet = now.saturating_sub(flow.last_ms.load(Ordering::Relaxed));
                    let keep = quiet < idle_ms;
                    if !keep {
                        log_close(client, flow, "idle timeout");
                    }
                    keep
                });
                continue;
            }
            received = front.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(err) => {
                    // ECONNREFUSED and the like are an earlier reply's ICMP
                    // error; nothing ends this loop but shutdown.
                    debug!(%err, "recvfrom on the relay's UDP socket failed");
                    continue;
                }
            },
        };
        if !flows.contains_key(&client) {
            if flows.len() >= max_flows {
                evict_quietest(&mut flows);
            }
            match open_flow(&front, client, &opts, &totals, now_ms) {
                Ok(flow) => {
                    totals.flows.fetch_add(1, Ordering::Relaxed);
                    if flow_log.admit() {
                        info!(target: "sockit::conn", "New UDP flow from {client}");
                    }
                    flows.insert(client, flow);
                }
                Err(err) => {
                    info!(target: "sockit::conn", "UDP flow from {client} failed: cannot open a socket to udp://{}: {err}", opts.target);
                    totals.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let Some(flow) = flows.get_mut(&client) else {
            continue;
        };
        flow.last_ms.store(now_ms(), Ordering::Relaxed);
        match send_now(&flow.upstream, &buf[..n], None) {
            Ok(_) => {
                flow.up += 1;
                totals.up.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                debug!(%err, %client, "datagram to the upstream dropped");
                totals.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    flow_log.flush();
    for (client, flow) in &flows {
        log_close(client, flow, "shutdown");
    }
}

/// Opens `client`'s flow: the upstream socket and its reply task.
fn open_flow(
    front: &Arc<UdpSocket>,
    client: SocketAddr,
    opts: &FlowOptions,
    totals: &Arc<FlowTotals>,
    now_ms: impl Fn() -> u64 + Send + 'static,
) -> std::io::Result<Flow> {
    let upstream = Arc::new(socket::udp_connect(opts.target)?);
    let last_ms = Arc::new(AtomicU64::new(now_ms()));
    let down = Arc::new(AtomicU64::new(0));
    let replies = tokio::spawn(replies(
        upstream.clone(),
        front.clone(),
        client,
        last_ms.clone(),
        down.clone(),
        totals.clone(),
        now_ms,
    ));
    Ok(Flow {
        upstream,
        last_ms,
        up: 0,
        down,
        opened: Instant::now(),
        replies,
    })
}

/// A flow's reply task: every datagram TO sends on `upstream` goes to
/// `client` through `front`. Ends when the flow is dropped (aborted).
async fn replies(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    last_ms: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    totals: Arc<FlowTotals>,
    now_ms: impl Fn() -> u64,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = match upstream.recv(&mut buf).await {
            Ok(n) => n,
            Err(err) => {
                // A connected UDP socket reports TO's ICMP errors (port
                // unreachable) here; the flow lives on until it is reaped.
                debug!(%err, %client, "receiving from the upstream failed");
                continue;
            }
        };
        last_ms.store(now_ms(), Ordering::Relaxed);
        // Counted before the send, so a summary taken as soon as the
        // client has its reply includes it; taken back if the send fails.
        down.fetch_add(1, Ordering::Relaxed);
        totals.down.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = send_now(&front, &buf[..n], Some(client)) {
            debug!(%err, %client, "reply to the client dropped");
            down.fetch_sub(1, Ordering::Relaxed);
            totals.down.fetch_sub(1, Ordering::Relaxed);
            totals.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends one datagram without waiting (the socket is non-blocking), to
/// `to` or, with `None`, to the connected peer.
///
/// Straight to the socket rather than through tokio's `try_send`, which
/// says `WouldBlock` until the reactor has seen the socket writable once:
/// a new flow's first datagram would always be dropped.
fn send_now(socket: &UdpSocket, buf: &[u8], to: Option<SocketAddr>) -> std::io::Result<usize> {
    let socket = socket2::SockRef::from(socket);
    match to {
        Some(addr) => socket.send_to(buf, &addr.into()),
        None => socket.send(buf),
    }
}

/// Removes the flow whose last datagram is oldest.
fn evict_quietest(flows: &mut HashMap<SocketAddr, Flow>) {
    let quietest = flows
        .iter()
        .min_by_key(|(_, flow)| flow.last_ms.load(Ordering::Relaxed))
        .map(|(client, _)| *client);
    if let Some(client) = quietest {
        if let Some(flow) = flows.remove(&client) {
            log_close(&client, &flow, "evicted: --max-flows reached");
        }
    }
}

fn log_close(client: &SocketAddr, flow: &Flow, why: &str) {
    info!(
        target: "sockit::request",
        "UDP flow {client}: {why} after {:.3}s, {} datagrams up, {} datagrams down",
        flow.opened.elapsed().as_secs_f64(),
        flow.up,
        flow.down.load(Ordering::Relaxed)
    );
}
