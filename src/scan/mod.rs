//! `sockit scan`: the tutorial's `connect_ex` turned into a port scanner
//! that is fast and gives the same answer every run.
//!
//! Each port of each address ends in one [`PortState`]:
//!
//! | protocol | answer | state |
//! |---|---|---|
//! | TCP | the handshake completes | `open` |
//! | TCP | RST (`ECONNREFUSED`) | `closed` |
//! | TCP, UDP | an ICMP unreachable other than "port" (`EHOSTUNREACH`, `ENETUNREACH`, `EACCES`, `EPERM`) | `filtered` |
//! | TCP | nothing within the timeout, after every retry | `filtered` |
//! | UDP | a datagram back | `open` |
//! | UDP | ICMP port unreachable (`ECONNREFUSED` on the connected socket) | `closed` |
//! | UDP | nothing, after every retry | `open\|filtered`: never `open` |
//!
//! How a scan stays exact:
//! 1. Probes in flight are bounded by the descriptor limit
//!    ([`window`]), so no `socket(2)` fails with `EMFILE`; if one fails
//!    anyway (another thread's descriptors, `ENOBUFS`, no free local
//!    port), that probe is sent again later, never reported.
//! 2. Silence is retried (`retries`), each retry waiting twice as long,
//!    and a port is `filtered` only when the last attempt got no answer
//!    either. The wait adapts to the round-trip time measured on the
//!    answers ([`rtt`]), and a probe whose wait ran out asks its socket
//!    once more before calling it silence, so a late task never turns an
//!    answer into a timeout.
//! 3. A TCP connect that ends connected to itself (loopback's
//!    simultaneous open when the source port equals the port probed) is
//!    `closed`, not open: the phantom open ports other scanners report.
//! 4. Results are reported in port order, whatever order they came in.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::{Error, Result};

pub mod ports;
pub mod report;
pub mod rtt;
pub mod target;
mod tcp;
mod udp;
pub mod wait;
pub mod window;

pub use ports::PortList;
pub use target::Target;

/// How long a probe waits for an answer at most: 1 second, as nmap's
/// initial RTT timeout. Later probes wait as long as the measured
/// round-trip time calls for ([`rtt::RttEstimator`]), never longer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times a silent port is probed again. Default is 2.
pub const DEFAULT_RETRIES: u32 = 2;

/// How many resource errors in a row, with nothing else in flight, end a
/// scan: each waits [`RESOURCE_BACKOFF`], so 2 seconds without a
/// descriptor or a local port to spare.
const MAX_RESOURCE_STALLS: u32 = 200;
const RESOURCE_BACKOFF: Duration = Duration::from_millis(10);

/// The transport to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP connects (`-sT` in nmap's terms).
    #[default]
    Tcp,
    /// UDP datagrams on connected sockets.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// What a port turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PortState {
    /// Something accepts connections (TCP) or answered (UDP).
    #[serde(rename = "open")]
    Open,
    /// The host answered that nothing is there (RST, ICMP port
    /// unreachable).
    #[serde(rename = "closed")]
    Closed,
    /// No answer (TCP), or an ICMP error saying something is in the way.
    #[serde(rename = "filtered")]
    Filtered,
    /// UDP silence: a service that ignored the probe, or a firewall that
    /// dropped it. The two cannot be told apart from here.
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl PortState {
    /// The state's name: `open`, `closed`, `filtered`, `open|filtered`.
    pub fn name(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The result for one port of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortResult {
    /// The address and port probed.
    pub addr: SocketAddr,
    /// The transport.
    pub protocol: Protocol,
    /// What it turned out to be.
    pub state: PortState,
    /// From sending the probe that was answered to its answer; `None`
    /// when nothing answered.
    pub rtt: Option<Duration>,
}

/// Options for [`scan`].
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// TCP or UDP. Default is TCP.
    pub protocol: Protocol,
    /// The longest a probe waits for an answer; see [`rtt`] for how the
    /// wait adapts below it. Default is 1 second ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// How many times a silent port is probed again. Default is 2
    /// ([`DEFAULT_RETRIES`]).
    pub retries: u32,
    /// The most probes in flight. Default is what the descriptor limit
    /// allows ([`window::default_parallel`]), at most
    /// [`window::MAX_PARALLEL`].
    pub parallel: Option<usize>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            protocol: Protocol::Tcp,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            parallel: None,
        }
    }
}

/// What a scan reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A port's result, in order: addresses as given, ports ascending.
    Port(&'a PortResult),
    /// How many ports are finished, of how many (sent every 256 ports and
    /// at the end; finished ports may still wait for their turn to be
    /// reported).
    Progress {
        /// Ports finished.
        done: u64,
        /// Ports in the scan.
        total: u64,
    },
}

/// Counts of a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Ports probed.
    pub ports: u64,
    /// `open` ports.
    pub open: u64,
    /// `closed` ports.
    pub closed: u64,
    /// `filtered` ports.
    pub filtered: u64,
    /// `open|filtered` ports.
    pub open_filtered: u64,
    /// Probes sent, retries included.
    pub probes: u64,
    /// How long the scan took.
    pub elapsed: Duration,
}

impl Summary {
    fn count(&mut self, state: PortState) {
        match state {
            PortState::Open => self.open += 1,
            PortState::Closed => self.closed += 1,
            PortState::Filtered => self.filtered += 1,
            PortState::OpenFiltered => self.open_filtered += 1,
        }
    }
}

/// What one probe found out.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// An answer that settles the port.
    Answer { state: PortState, rtt: Duration },
    /// Nothing within the wait.
    Silence,
    /// The probe could not be sent for want of a descriptor, a buffer or
    /// a local port: send it again later.
    Resource(io::Error),
    /// An error that is neither an answer nor a passing shortage.
    Failed(io::Error),
}

/// Sorts a socket error into what it says about the port.
pub(crate) fn classify(err: io::Error, rtt: Duration) -> Outcome {
    use nix::libc;
    let answer = |state| Outcome::Answer { state, rtt };
    if err.kind() == io::ErrorKind::ConnectionRefused {
        return answer(PortState::Closed);
    }
    match err.raw_os_error() {
        Some(
            libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EACCES
            | libc::EPERM
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EPROTO,
        ) => answer(PortState::Filtered),
        Some(libc::ETIMEDOUT) => Outcome::Silence,
        Some(
            libc::EMFILE
            | libc::ENFILE
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::EADDRNOTAVAIL
            | libc::EAGAIN,
        ) => Outcome::Resource(err),
        _ => Outcome::Failed(err),
    }
}

/// The probes of a scan: every port of every address, address-major.
#[derive(Debug, Clone)]
pub(crate) enum Jobs<'a> {
    /// `targets` × `ports`.
    Grid {
        targets: &'a [SocketAddr],
        ports: &'a [u16],
    },
    /// A list of addresses with their ports.
    List(&'a [SocketAddr]),
}

impl Jobs<'_> {
    fn len(&self) -> u64 {
        match self {
            Jobs::Grid { targets, ports } => targets.len() as u64 * ports.len() as u64,
            Jobs::List(addrs) => addrs.len() as u64,
        }
    }

    fn get(&self, job: u64) -> SocketAddr {
        match self {
            Jobs::Grid { targets, ports } => {
                let n = ports.len() as u64;
                let mut addr = targets[(job / n) as usize];
                addr.set_port(ports[(job % n) as usize]);
                addr
            }
            Jobs::List(addrs) => addrs[job as usize],
        }
    }
}

/// Scans every port of `ports` on every address of `targets` (from
/// [`target::resolve`]; their ports are ignored), calling `on_event` with
/// each result in order and with progress.
///
/// See the [module documentation](self) for how each state is decided.
///
/// # Errors
///
/// [`Error::Io`] when a probe fails in a way that says nothing about the
/// port (`EINVAL` for an address no socket can reach, …), or when no
/// descriptor or local port has come free for 2 seconds with no other
/// probe in flight.
///
/// # Examples
///
/// ```no_run
/// use sockit::scan::{self, Event, PortList, ScanOptions};
///
/// # async fn demo() -> sockit::Result<()> {
/// let targets = scan::target::resolve(&["127.0.0.1".parse().unwrap()], None).await?;
/// let ports: PortList = "22,80,8000-8100".parse().unwrap();
/// let summary = scan::scan(&targets, &ports, &ScanOptions::default(), |event| {
///     if let Event::Port(port) = event {
///         println!("{} {}", port.addr, port.state);
///     }
/// })
/// .await?;
/// println!("{} open", summary.open);
/// # Ok(()) }
/// ```
pub async fn scan(
    targets: &[SocketAddr],
    ports: &PortList,
    opts: &ScanOptions,
    on_event: impl FnMut(Event<'_>),
) -> Result<Summary> {
    let jobs = Jobs::Grid {
        targets,
        ports: ports.as_slice(),
    };
    run(jobs, opts, on_event).await
}

/// A finished port, waiting for its turn to be reported.
type Slot = Option<(PortState, Option<Duration>)>;

/// The scan loop: keeps the window full, retries silence, and reports
/// results in job order.
pub(crate) async fn run(
    jobs: Jobs<'_>,
    opts: &ScanOptions,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Summary> {
    let start = Instant::now();
    let total = jobs.len();
    let silent_state = match opts.protocol {
        Protocol::Tcp => PortState::Filtered,
        Protocol::Udp => PortState::OpenFiltered,
    };
    let mut window = window::Window::new(opts.parallel.unwrap_or_else(window::default_parallel));
    let mut rtt = rtt::RttEstimator::new(opts.timeout);
    let mut tasks: JoinSet<(u64, u32, Outcome)> = JoinSet::new();
    let mut again: VecDeque<(u64, u32)> = VecDeque::new();
    let mut next: u64 = 0;
    // Results from `base` on, in job order: reported once all before are.
    let mut pending: VecDeque<Slot> = VecDeque::new();
    let mut base: u64 = 0;
    let mut done: u64 = 0;
    let mut stalls: u32 = 0;
    let mut summary = Summary {
        ports: total,
        ..Summary::default()
    };
    loop {
        while tasks.len() < window.size() {
            let (job, attempt) = match again.pop_front() {
                Some(retry) => retry,
                None if next < total => {
                    next += 1;
                    pending.push_back(None);
                    (next - 1, 0)
                }
                None => break,
            };
            let addr = jobs.get(job);
            let wait = rtt.timeout(attempt);
            let protocol = opts.protocol;
            summary.probes += 1;
            tasks.spawn(async move {
                let outcome = match protocol {
                    Protocol::Tcp => tcp::probe(addr, wait).await,
                    Protocol::Udp => udp::probe(addr, wait).await,
                };
                (job, attempt, outcome)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (job, attempt, outcome) = joined.map_err(|e| Error::Io {
            what: "scanning",
            addr: "a port".into(),
            source: io::Error::other(format!("a probe task failed: {e}")),
        })?;
        let finished = match outcome {
            Outcome::Answer { state, rtt: took } => {
                stalls = 0;
                if attempt == 0 {
                    rtt.sample(took);
                    window.answered();
                } else {
                    window.lost();
                }
                Some((state, Some(took)))
            }
            Outcome::Silence if attempt < opts.retries => {
                again.push_back((job, attempt + 1));
                None
            }
            Outcome::Silence => Some((silent_state, None)),
            Outcome::Resource(err) => {
                summary.probes -= 1;
                window.exhausted(tasks.len());
                again.push_front((job, attempt));
                if tasks.is_empty() {
                    stalls += 1;
                    if stalls > MAX_RESOURCE_STALLS {
                        return Err(Error::Io {
                            what: "scanning",
                            addr: jobs.get(job).to_string(),
                            source: err,
                        });
                    }
                    tokio::time::sleep(RESOURCE_BACKOFF).await;
                }
                None
            }
            Outcome::Failed(err) => {
                return Err(Error::Io {
                    what: "scanning",
                    addr: jobs.get(job).to_string(),
                    source: err,
                });
            }
        };
        let Some((state, took)) = finished else {
            continue;
        };
        summary.count(state);
        done += 1;
        // `job >= base`: each job finishes once, and `base` only passes
        // finished jobs.
        let index = usize::try_from(job - base).unwrap_or(usize::MAX);
        if let Some(slot) = pending.get_mut(index) {
            *slot = Some((state, took));
        }
        while let Some(Some((state, rtt))) = pending.front().copied() {
            pending.pop_front();
            let result = PortResult {
                addr: jobs.get(base),
                protocol: opts.protocol,
                state,
                rtt,
            };
            base += 1;
            on_event(Event::Port(&result));
        }
        if done % 256 == 0 {
            on_event(Event::Progress { done, total });
        }
    }
    on_event(Event::Progress { done, total });
    summary.elapsed = start.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_sort_into_states_retries_and_failures() {
        let state = |errno| match classify(io::Error::from_raw_os_error(errno), Duration::ZERO) {
            Outcome::Answer { state, .. } => Some(state),
            _ => None,
        };
        use nix::libc;
        assert_eq!(state(libc::ECONNREFUSED), Some(PortState::Closed));
        assert_eq!(state(libc::EHOSTUNREACH), Some(PortState::Filtered));
        assert_eq!(state(libc::EPERM), Some(PortState::Filtered));
        let kind = |errno| classify(io::Error::from_raw_os_error(errno), Duration::ZERO);
        assert!(matches!(kind(libc::EMFILE), Outcome::Resource(_)));
        assert!(matches!(kind(libc::EADDRNOTAVAIL), Outcome::Resource(_)));
        assert!(matches!(kind(libc::ETIMEDOUT), Outcome::Silence));
        assert!(matches!(kind(libc::EINVAL), Outcome::Failed(_)));
    }

    #[test]
    fn jobs_run_address_major_over_the_ports() {
        let targets: Vec<SocketAddr> =
            vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
        let ports = [22, 80];
        let jobs = Jobs::Grid {
            targets: &targets,
            ports: &ports,
        };
        assert_eq!(jobs.len(), 4);
        let all: Vec<String> = (0..4).map(|j| jobs.get(j).to_string()).collect();
        assert_eq!(
            all,
            ["127.0.0.1:22", "127.0.0.1:80", "[::1]:22", "[::1]:80"]
        );
    }

    #[tokio::test]
    async fn a_scan_reports_every_port_in_order_with_its_state() {
        let open: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let open_ports: Vec<u16> = open
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        // Ports that were free a moment ago: closed (nothing else binds
        // them in this test process).
        let closed_ports: Vec<u16> = (0..3)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let ports = PortList::new(open_ports.iter().chain(&closed_ports).copied()).unwrap();
        let targets = ["127.0.0.1:0".parse().unwrap()];
        let mut seen = Vec::new();
        let summary = scan(&targets, &ports, &ScanOptions::default(), |event| {
            if let Event::Port(result) = event {
                seen.push((result.addr.port(), result.state));
            }
        })
        .await
        .unwrap();
        let mut expected: Vec<(u16, PortState)> = open_ports
            .iter()
            .map(|&p| (p, PortState::Open))
            .chain(closed_ports.iter().map(|&p| (p, PortState::Closed)))
            .collect();
        expected.sort();
        assert_eq!(seen, expected);
        assert_eq!((summary.open, summary.closed, summary.ports), (3, 3, 6));
    }
}
