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
use std::sync::{Arc, Mutex, MutexGuard};
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

/// The estimator, even if a task panicked while holding it (its numbers
/// stay valid: each update is one assignment).
fn lock(rtt: &Mutex<rtt::RttEstimator>) -> MutexGuard<'_, rtt::RttEstimator> {
    rtt.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A finished port, waiting for its turn to be reported.
type Slot = Option<(PortState, Option<Duration>)>;

/// Probes in flight in tasks: each ends with its job, attempt and outcome.
type Tasks = JoinSet<(u64, u32, Outcome)>;

/// How many probes the loop starts in a row before it lets the runtime
/// run the tasks that wait (and their timers).
const BURST: u32 = 256;

/// The state of one scan: the loop in [`run`] starts probes and hands
/// each outcome to [`Scan::outcome`].
struct Scan<'a> {
    jobs: Jobs<'a>,
    opts: &'a ScanOptions,
    total: u64,
    silent_state: PortState,
    window: window::Window,
    /// Shared with the waiting tasks, which read it when they start to
    /// wait, so a probe sent in the first burst already waits what the
    /// answers before it say.
    rtt: Arc<Mutex<rtt::RttEstimator>>,
    /// Probes to send again (silence, or a resource error), before new ones.
    again: VecDeque<(u64, u32)>,
    /// The next new job.
    next: u64,
    /// Results from `base` on, in job order: reported once all before are.
    pending: VecDeque<Slot>,
    base: u64,
    done: u64,
    /// Resource errors in a row with nothing in flight.
    stalls: u32,
    summary: Summary,
}

/// What the loop does after an outcome.
enum Step {
    Go,
    /// Nothing is in flight and a resource is short: wait a little.
    Backoff,
}

impl Scan<'_> {
    /// The next probe to send: a retry first, else a new job.
    fn next_probe(&mut self) -> Option<(u64, u32)> {
        if let Some(retry) = self.again.pop_front() {
            return Some(retry);
        }
        if self.next < self.total {
            self.next += 1;
            self.pending.push_back(None);
            return Some((self.next - 1, 0));
        }
        None
    }

    /// Books an outcome: a result to report, a retry, or an error.
    fn outcome(
        &mut self,
        job: u64,
        attempt: u32,
        outcome: Outcome,
        in_flight: usize,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<Step> {
        let finished = match outcome {
            Outcome::Answer { state, rtt } => {
                self.stalls = 0;
                if attempt == 0 {
                    // Karn's rule: an answer to a retry may be the earlier
                    // attempt's, so only first attempts are timed.
                    lock(&self.rtt).sample(rtt);
                    self.window.answered();
                } else {
                    self.window.lost();
                }
                (state, Some(rtt))
            }
            Outcome::Silence if attempt < self.opts.retries => {
                self.again.push_back((job, attempt + 1));
                return Ok(Step::Go);
            }
            Outcome::Silence => (self.silent_state, None),
            Outcome::Resource(err) => {
                self.summary.probes -= 1;
                self.window.exhausted(in_flight);
                self.again.push_front((job, attempt));
                if in_flight > 0 {
                    return Ok(Step::Go);
                }
                self.stalls += 1;
                if self.stalls > MAX_RESOURCE_STALLS {
                    return Err(Error::Io {
                        what: "scanning",
                        addr: self.jobs.get(job).to_string(),
                        source: err,
                    });
                }
                return Ok(Step::Backoff);
            }
            Outcome::Failed(err) => {
                return Err(Error::Io {
                    what: "scanning",
                    addr: self.jobs.get(job).to_string(),
                    source: err,
                });
            }
        };
        self.summary.count(finished.0);
        self.done += 1;
        // `job >= base`: each job finishes once, and `base` only passes
        // finished jobs.
        let index = usize::try_from(job - self.base).unwrap_or(usize::MAX);
        if let Some(slot) = self.pending.get_mut(index) {
            *slot = Some(finished);
        }
        while let Some(Some((state, rtt))) = self.pending.front().copied() {
            self.pending.pop_front();
            let result = PortResult {
                addr: self.jobs.get(self.base),
                protocol: self.opts.protocol,
                state,
                rtt,
            };
            self.base += 1;
            on_event(Event::Port(&result));
        }
        if self.done % 256 == 0 {
            on_event(Event::Progress {
                done: self.done,
                total: self.total,
            });
        }
        Ok(Step::Go)
    }

    /// Sends one probe: a TCP probe answered at once is booked here and
    /// then; one that must wait, and every UDP probe, goes to a task.
    fn send(
        &mut self,
        job: u64,
        attempt: u32,
        tasks: &mut Tasks,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<Step> {
        let addr = self.jobs.get(job);
        self.summary.probes += 1;
        let rtt = Arc::clone(&self.rtt);
        let wait = move || lock(&rtt).timeout(attempt);
        match self.opts.protocol {
            Protocol::Tcp => match tcp::start(addr) {
                tcp::Start::Done(outcome) => {
                    return self.outcome(job, attempt, outcome, tasks.len(), on_event)
                }
                tcp::Start::Pending(pending) => {
                    tasks.spawn(async move { (job, attempt, pending.finish(wait).await) });
                }
            },
            Protocol::Udp => {
                tasks.spawn(async move { (job, attempt, udp::probe(addr, wait).await) });
            }
        }
        Ok(Step::Go)
    }
}

/// The scan loop: keeps the window full, retries silence, and reports
/// results in job order.
///
/// On loopback nearly every TCP probe is answered inside `connect(2)`
/// ([`tcp::start`]), so the loop books it at once, with no task, timer
/// or reactor registration; every [`BURST`] probes it yields, so the
/// tasks of probes that wait are polled in time.
pub(crate) async fn run(
    jobs: Jobs<'_>,
    opts: &ScanOptions,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Summary> {
    let start = Instant::now();
    let total = jobs.len();
    let mut scan = Scan {
        jobs,
        opts,
        total,
        silent_state: match opts.protocol {
            Protocol::Tcp => PortState::Filtered,
            Protocol::Udp => PortState::OpenFiltered,
        },
        window: window::Window::new(opts.parallel.unwrap_or_else(window::default_parallel)),
        rtt: Arc::new(Mutex::new(rtt::RttEstimator::new(opts.timeout))),
        again: VecDeque::new(),
        next: 0,
        pending: VecDeque::new(),
        base: 0,
        done: 0,
        stalls: 0,
        summary: Summary {
            ports: total,
            ..Summary::default()
        },
    };
    let mut tasks: Tasks = JoinSet::new();
    loop {
        let mut burst = 0;
        let mut step = Step::Go;
        while tasks.len() < scan.window.size() && burst < BURST {
            let Some((job, attempt)) = scan.next_probe() else {
                break;
            };
            burst += 1;
            step = scan.send(job, attempt, &mut tasks, &mut on_event)?;
            if let Step::Backoff = step {
                break;
            }
        }
        if let Step::Backoff = step {
            tokio::time::sleep(RESOURCE_BACKOFF).await;
            continue;
        }
        if burst == BURST {
            // More to send: let the waiting tasks run, then go on.
            tokio::task::yield_now().await;
            while let Some(joined) = tasks.try_join_next() {
                let (job, attempt, outcome) = joined.map_err(task_failed)?;
                scan.outcome(job, attempt, outcome, tasks.len(), &mut on_event)?;
            }
            continue;
        }
        let Some(joined) = tasks.join_next().await else {
            if scan.again.is_empty() && scan.next >= total {
                break;
            }
            continue;
        };
        let (job, attempt, outcome) = joined.map_err(task_failed)?;
        if let Step::Backoff = scan.outcome(job, attempt, outcome, tasks.len(), &mut on_event)? {
            tokio::time::sleep(RESOURCE_BACKOFF).await;
        }
    }
    on_event(Event::Progress {
        done: scan.done,
        total,
    });
    let mut summary = scan.summary;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

fn task_failed(err: tokio::task::JoinError) -> Error {
    Error::Io {
        what: "scanning",
        addr: "a port".into(),
        source: io::Error::other(format!("a probe task failed: {err}")),
    }
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
