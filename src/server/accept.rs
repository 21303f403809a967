//! The one accept loop. Every stream listener of every server runs it.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn, Instrument};

use crate::conn::ConnReport;
use crate::server::handler::{Accepted, Handler};
use crate::server::listener::Listener;
use crate::server::panic::catch_panic;
use crate::server::Shared;

/// How an `accept(2)` error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// The failed connection's own problem (it was reset before we took it,
    /// or the call was interrupted): take the next one at once.
    Connection,
    /// The process or system is out of something (descriptors, buffers,
    /// memory): retrying at once would spin, so back off until it frees up.
    Resource,
    /// Anything else: log it, back off, carry on; the loop never dies.
    Other,
}

pub(crate) fn classify(err: &io::Error) -> AcceptError {
    match err.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock => return AcceptError::Connection,
        _ => {}
    }
    match err.raw_os_error() {
        Some(
            libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM,
        ) => AcceptError::Resource,
        // Linux passes some network errors of the pending connection up
        // through accept (accept(2), "Error handling"): treat them as its own.
        Some(
            libc_errno::EPROTO
            | libc_errno::ENETDOWN
            | libc_errno::ENOPROTOOPT
            | libc_errno::EHOSTDOWN
            | libc_errno::ENONET
            | libc_errno::EHOSTUNREACH
            | libc_errno::EOPNOTSUPP
            | libc_errno::ENETUNREACH
            | libc_errno::EPERM,
        ) => AcceptError::Connection,
        _ => AcceptError::Other,
    }
}

/// errno values, named as in C (from nix, so no `libc` dependency of our own).
mod libc_errno {
    use nix::errno::Errno;
    pub const EMFILE: i32 = Errno::EMFILE as i32;
    pub const ENFILE: i32 = Errno::ENFILE as i32;
    pub const ENOBUFS: i32 = Errno::ENOBUFS as i32;
    pub const ENOMEM: i32 = Errno::ENOMEM as i32;
    pub const EPROTO: i32 = Errno::EPROTO as i32;
    pub const ENETDOWN: i32 = Errno::ENETDOWN as i32;
    pub const ENOPROTOOPT: i32 = Errno::ENOPROTOOPT as i32;
    pub const EHOSTDOWN: i32 = Errno::EHOSTDOWN as i32;
    pub const ENONET: i32 = Errno::ENONET as i32;
    pub const EHOSTUNREACH: i32 = Errno::EHOSTUNREACH as i32;
    pub const EOPNOTSUPP: i32 = Errno::EOPNOTSUPP as i32;
    pub const ENETUNREACH: i32 = Errno::ENETUNREACH as i32;
    pub const EPERM: i32 = Errno::EPERM as i32;
}

/// The first pause after a resource error; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Warnings about accept errors are this far apart at least: under a
/// flood, descriptors free up and run out again many times a second, and
/// each of those bursts would otherwise warn anew.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Tracks a burst of accept errors: warn when it starts (at most once per
/// [`WARN_INTERVAL`]; later bursts log at debug), note its end, and pause
/// a growing while in between.
#[derive(Debug, Default)]
struct Burst {
    errors: u64,
    delay: Duration,
    /// When the last warning was logged.
    warned_at: Option<std::time::Instant>,
    /// Whether this burst's start was a warning (so its end is worth an info line).
    loud: bool,
}

impl Burst {
    fn failed(&mut self, err: &io::Error, local: &str) -> Duration {
        if self.errors == 0 {
            let now = std::time::Instant::now();
            self.loud = match self.warned_at {
                Some(at) => now.duration_since(at) >= WARN_INTERVAL,
                None => true,
            };
            if self.loud {
                warn!("accept on {local} failed: {err}; pausing accepts until it clears");
                self.warned_at = Some(now);
            } else {
                debug!("accept on {local} failed: {err}; pausing accepts until it clears");
            }
            self.delay = FIRST_BACKOFF;
        } else {
            self.delay = (self.delay * 2).min(MAX_BACKOFF);
        }
        self.errors += 1;
        self.delay
    }

    fn succeeded(&mut self, local: &str) {
        if self.errors > 0 {
            if self.loud {
                info!(
                    "accept on {local} resumed after {} failed attempts",
                    self.errors
                );
            } else {
                debug!(
                    "accept on {local} resumed after {} failed attempts",
                    self.errors
                );
            }
            self.errors = 0;
        }
    }
}

/// Most "Accept new connection" lines per second and listener.
const CONN_LINES_PER_SEC: u32 = 100;

/// Rate-limits the per-connection line: the first [`CONN_LINES_PER_SEC`]
/// connections of each second are logged one by one, the rest as one
/// `… and N more connections` line.
///
/// Measured with `bench/run`: at 11,000 connections a second, a line per
/// connection cost the server a fifth of its core (formatting, plus the log
/// thread waking for each line), enough to fall behind nginx. A person
/// reads a hundred lines a second at most; past that, the count is what
/// they need.
#[derive(Debug)]
pub(crate) struct ConnLog {
    second: Instant,
    logged: u32,
    suppressed: u64,
}

impl Default for ConnLog {
    fn default() -> Self {
        ConnLog {
            second: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }
}

impl ConnLog {
    /// Whether this connection gets its own line.
    pub(crate) fn admit(&mut self) -> bool {
        if self.logged < CONN_LINES_PER_SEC {
            self.logged += 1;
            return true;
        }
        let now = Instant::now();
        if now.duration_since(self.second) >= Duration::from_secs(1) {
            self.flush();
            self.second = now;
            self.logged = 1;
            return true;
        }
        self.suppressed += 1;
        false
    }

    /// Logs the count of connections not logged one by one.
    pub(crate) fn flush(&mut self) {
        if self.suppressed > 0 {
            info!(target: "sockit::conn", "… and {} more connections", self.suppressed);
            self.suppressed = 0;
        }
    }
}

/// Accepts connections from `listener` and spawns `handler` on each, until
/// the server's shutdown token is cancelled. Then drops the listener, so the
/// kernel refuses new clients instead of queueing them.
///
/// Nothing else ends the loop: per-connection errors are skipped, resource
/// errors back off (see [`Burst`]), and the loop does no client I/O.
pub(crate) async fn accept_loop<L: Listener, H: Handler<L::Io>>(
    mut listener: L,
    handler: Arc<H>,
    shared: Arc<Shared>,
) {
    let local = listener
        .local_addr()
        .map_or_else(|_| "listener".to_owned(), |a| a.to_string());
    let mut burst = Burst::default();
    let mut conn_log = ConnLog::default();
    loop {
        // Wait for a free slot first: at the limit, new clients stay in the
        // kernel's backlog rather than being accepted and dropped.
        let permit = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            permit = shared.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (io, peer) = match accepted {
            Ok(accepted) => {
                burst.succeeded(&local);
                accepted
            }
            Err(err) => {
                let pause = match classify(&err) {
                    AcceptError::Connection => {
                        debug!(%err, "accept: connection failed before it was taken");
                        continue;
                    }
                    AcceptError::Resource => burst.failed(&err, &local),
                    AcceptError::Other => {
                        if burst.errors == 0 {
                            error!("accept on {local}: unexpected error: {err}");
                        }
                        burst.failed(&err, &local)
                    }
                };
                drop(permit);
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        shared.stats.connection_opened();
        if conn_log.admit() {
            info!(target: "sockit::conn", "Accept new connection from {peer}");
        }
        let span = tracing::debug_span!("conn", %peer);
        let accepted = Accepted {
            peer: peer.clone(),
            shutdown: shared.shutdown.clone(),
            limits: shared.conn_limits.clone(),
        };
        let handler = handler.clone();
        let stats = shared.stats.clone();
        shared.tracker.spawn(
            async move {
                // The connection boundary: a panic in the handler drops its
                // stream (closing the socket) and ends only this task.
                let report = match catch_panic(handler.handle(io, accepted)).await {
                    Ok(report) => report,
                    Err(panic) => {
                        error!("connection from {peer} closed: the service panicked: {panic}");
                        ConnReport {
                            requests: 0,
                            error: true,
                        }
                    }
                };
                stats.connection_closed(report);
                drop(permit);
            }
            .instrument(span),
        );
    }
    conn_log.flush();
    debug!("accept loop on {local} stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_lines_are_capped_per_second() {
        let mut log = ConnLog::default();
        let admitted = (0..1000).filter(|_| log.admit()).count();
        assert_eq!(admitted, CONN_LINES_PER_SEC as usize);
        assert_eq!(log.suppressed, 1000 - u64::from(CONN_LINES_PER_SEC));
        // A second later the next connection is logged again.
        log.second -= Duration::from_secs(1);
        assert!(log.admit());
        assert_eq!(log.suppressed, 0);
    }

    #[test]
    fn errors_are_sorted_by_kind_not_text() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&os(libc_errno::EMFILE)), AcceptError::Resource);
        assert_eq!(classify(&os(libc_errno::ENFILE)), AcceptError::Resource);
        assert_eq!(classify(&os(libc_errno::ENOBUFS)), AcceptError::Resource);
        assert_eq!(classify(&os(libc_errno::ENOMEM)), AcceptError::Resource);
        assert_eq!(
            classify(&os(nix::errno::Errno::ECONNABORTED as i32)),
            AcceptError::Connection
        );
        assert_eq!(
            classify(&os(nix::errno::Errno::EINTR as i32)),
            AcceptError::Connection
        );
        assert_eq!(
            classify(&os(nix::errno::Errno::ECONNRESET as i32)),
            AcceptError::Connection
        );
        assert_eq!(classify(&os(libc_errno::EPROTO)), AcceptError::Connection);
        assert_eq!(
            classify(&os(nix::errno::Errno::EBADF as i32)),
            AcceptError::Other
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut burst = Burst::default();
        let err = io::Error::from_raw_os_error(libc_errno::EMFILE);
        let first = burst.failed(&err, "test");
        assert_eq!(first, FIRST_BACKOFF);
        let mut last = first;
        for _ in 0..20 {
            last = burst.failed(&err, "test");
        }
        assert_eq!(last, MAX_BACKOFF);
        burst.succeeded("test");
        assert_eq!(burst.errors, 0);
        assert_eq!(burst.failed(&err, "test"), FIRST_BACKOFF);
    }

    #[test]
    fn only_the_first_burst_in_a_minute_warns() {
        let mut burst = Burst::default();
        let err = io::Error::from_raw_os_error(libc_errno::EMFILE);
        burst.failed(&err, "test");
        assert!(burst.loud);
        burst.succeeded("test");
        burst.failed(&err, "test");
        assert!(
            !burst.loud,
            "a second burst right after the first warned again"
        );
        burst.warned_at = Some(std::time::Instant::now() - WARN_INTERVAL);
        burst.succeeded("test");
        burst.failed(&err, "test");
        assert!(burst.loud);
    }
}
