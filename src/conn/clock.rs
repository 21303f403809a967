//! A connection's timeouts: which one applies to the wait about to start,
//! and the one timer every wait reuses.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Sleep};

use super::ConnLimits;

/// Which timeout ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// [`ConnLimits::header_timeout`]: a request head took too long.
    Header,
    /// [`ConnLimits::idle_timeout`] between requests.
    Idle,
    /// [`ConnLimits::idle_timeout`] between two reads of a request body.
    Body,
    /// [`ConnLimits::write_timeout`]: the client stopped reading.
    Write,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Header => "header timeout: request head incomplete",
            Timeout::Idle => "idle timeout",
            Timeout::Body => "idle timeout while reading a request body",
            Timeout::Write => "write timeout: the client stopped reading",
        })
    }
}

/// A connection's timeouts: where it is in its request, which decides how
/// long the next read may wait, and the one timer every wait reuses. One
/// per connection, kept by its [`Conn`](super::Conn).
///
/// A request–response service starts with [`Clock::for_requests`] and
/// tells the clock when a head is complete ([`Clock::head_done`]) and when
/// the request is over ([`Clock::request_done`]); these are plain stores,
/// free on the hot path. A stream service (echo, discard) uses
/// [`Clock::for_stream`] and only ever sees the idle timeout.
///
/// # Notes
///
/// The timer is allocated at the first wait and then reset for each one:
/// a `tokio::time::Sleep` is 96 bytes, and inline it would sit in every
/// connection's task state, idle or not. It is registered with the runtime
/// only when a wait finds the socket not ready.
#[derive(Debug)]
pub(crate) struct Clock {
    phase: Phase,
    timer: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: [`ConnLimits::idle_timeout`] applies once the buffer
    /// is empty; bytes left in it start a head.
    Idle,
    /// A head is arriving; it must be complete by the deadline set at its
    /// first wait. Once `armed`, the timer holds that deadline (so the
    /// phase stays one byte: every connection's task carries it).
    Head { armed: bool },
    /// A body is arriving: each read may wait [`ConnLimits::idle_timeout`], and
    /// shutdown waits for the body.
    Body,
}

impl Clock {
    /// For request–response services: the first head is held to
    /// [`ConnLimits::header_timeout`] from the first wait after accept, so a
    /// client that connects and sends nothing is closed as a slowloris is.
    pub(crate) fn for_requests() -> Self {
        Clock {
            phase: Phase::Head { armed: false },
            timer: None,
        }
    }

    /// For stream services: only [`ConnLimits::idle_timeout`] applies.
    pub(crate) fn for_stream() -> Self {
        Clock {
            phase: Phase::Idle,
            timer: None,
        }
    }

    /// A head is complete; `body_follows` if a body must still be read.
    pub(crate) fn head_done(&mut self, body_follows: bool) {
        self.phase = if body_follows {
            Phase::Body
        } else {
            Phase::Idle
        };
    }

    /// The request (and its body) has been read in full.
    pub(crate) fn request_done(&mut self) {
        self.phase = Phase::Idle;
    }

    /// Whether a wait with this buffer is idle: nothing of a request is
    /// pending, so shutdown may end it.
    pub(super) fn is_idle(&self, buf: &BytesMut) -> bool {
        buf.is_empty() && self.phase != Phase::Body
    }

    /// Arms the timer for a read wait about to start, and says which
    /// timeout it is.
    fn arm_read(&mut self, buf_empty: bool, limits: &ConnLimits) -> Timeout {
        match self.phase {
            Phase::Idle if buf_empty => {
                self.arm(limits.idle_timeout);
                Timeout::Idle
            }
            Phase::Idle | Phase::Head { armed: false } => {
                self.arm(limits.header_timeout);
                self.phase = Phase::Head { armed: true };
                Timeout::Header
            }
            // The head's deadline is already in the timer.
            Phase::Head { armed: true } => Timeout::Header,
            Phase::Body => {
                self.arm(limits.idle_timeout);
                Timeout::Body
            }
        }
    }

    /// Sets the timer to `timeout` from now, allocating it the first time.
    ///
    /// Coarse by up to [`TIMER_SLACK`]: a pending timer already due a little
    /// before the new deadline is kept as it is. Each reset locks tokio's
    /// timer wheel, and a busy keep-alive connection waits once per request;
    /// this way it resets its timer about once a second instead, and a
    /// timeout may end a wait up to a second early.
    pub(super) fn arm(&mut self, timeout: Duration) {
        let deadline = after(Instant::now(), timeout);
        match &mut self.timer {
            Some(timer) => {
                let due = timer.deadline();
                let close_enough =
                    due <= deadline && deadline - due < TIMER_SLACK && !timer.is_elapsed();
                if !close_enough {
                    timer.as_mut().reset(deadline);
                }
            }
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Polls the timer for a wait that found its socket not ready,
    /// arming it first if this wait has not yet (`armed` is the wait's own
    /// state, `None` at its start). Arming only here means a socket that is
    /// ready, as under load, never touches the timer.
    pub(super) fn poll_expiry(
        &mut self,
        cx: &mut Context<'_>,
        armed: &mut Option<Timeout>,
        wait: Wait,
        limits: &ConnLimits,
    ) -> Poll<Timeout> {
        let which = *armed.get_or_insert_with(|| match wait {
            Wait::Read { buf_empty } => self.arm_read(buf_empty, limits),
            Wait::Write => {
                self.arm(limits.write_timeout);
                Timeout::Write
            }
        });
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).map(|()| which),
            None => Poll::Pending,
        }
    }
}

/// How much earlier than asked a timeout may fire; see `Clock::arm`.
const TIMER_SLACK: Duration = Duration::from_secs(1);

/// What a wait is for, to pick its deadline.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    /// A read, with the buffer empty or not.
    Read { buf_empty: bool },
    /// A write that made no progress.
    Write,
}

/// `now + timeout`, where a timeout too large to add (`Duration::MAX`,
/// which the CLI's `0` means) never expires.
fn after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_resets_its_timer_about_once_a_second() {
        let limits = ConnLimits::default();
        let mut clock = Clock::for_stream();
        clock.arm(limits.idle_timeout);
        let first = clock.timer.as_ref().unwrap().deadline();
        // Requests 10 ms apart: the timer keeps its deadline for a second.
        tokio::time::sleep(Duration::from_millis(10)).await;
        clock.arm(limits.idle_timeout);
        assert_eq!(clock.timer.as_ref().unwrap().deadline(), first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.arm(limits.idle_timeout);
        let moved = clock.timer.as_ref().unwrap().deadline();
        assert_eq!(moved, Instant::now() + limits.idle_timeout);
        // A shorter deadline (a header or write wait) always resets it.
        clock.arm(limits.header_timeout);
        assert_eq!(
            clock.timer.as_ref().unwrap().deadline(),
            Instant::now() + limits.header_timeout
        );
    }
}
