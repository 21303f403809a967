//! How long a probe waits for an answer: the round-trip time measured on
//! the answers so far, as TCP's retransmission timer does (RFC 6298).

use std::time::Duration;

/// The shortest wait for an answer, however fast the answers so far:
/// 100 ms, nmap's `--min-rtt-timeout`. A few scheduler hiccups on a busy
/// machine stay well under it.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// A smoothed round-trip time and its variation, and the wait they give.
///
/// 1. Before any answer, a probe waits the whole `max` (`--timeout`).
/// 2. Each answer to a first attempt is a sample (Karn's rule: an answer to
///    a retry could belong to either attempt, so it is not one):
///    `srtt = 7/8 srtt + 1/8 r`, `rttvar = 3/4 rttvar + 1/4 |srtt - r|`.
/// 3. The wait is `srtt + 4 rttvar`, at least [`MIN_TIMEOUT`], doubled for
///    each retry, and never more than `max`.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    max: Duration,
}

impl RttEstimator {
    /// An estimator with no samples, whose waits never exceed `max`.
    pub fn new(max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            max,
        }
    }

    /// Records the round-trip time of an answer to a first attempt.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = if srtt > rtt { srtt - rtt } else { rtt - srtt };
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + rtt / 8);
            }
        }
    }

    /// The smoothed round-trip time, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// How long attempt number `attempt` (0 for the first) waits.
    pub fn timeout(&self, attempt: u32) -> Duration {
        let Some(srtt) = self.srtt else {
            return self.max;
        };
        let base = (srtt + self.rttvar * 4).max(MIN_TIMEOUT.min(self.max));
        base.checked_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(1);

    #[test]
    fn before_any_answer_a_probe_waits_the_whole_timeout() {
        let rtt = RttEstimator::new(MAX);
        assert_eq!(rtt.timeout(0), MAX);
        assert_eq!(rtt.timeout(3), MAX);
    }

    #[test]
    fn fast_answers_bring_the_wait_down_to_the_floor_and_retries_double_it() {
        let mut rtt = RttEstimator::new(MAX);
        for _ in 0..20 {
            rtt.sample(Duration::from_micros(50));
        }
        assert_eq!(rtt.timeout(0), MIN_TIMEOUT);
        assert_eq!(rtt.timeout(1), MIN_TIMEOUT * 2);
        assert_eq!(rtt.timeout(2), MIN_TIMEOUT * 4);
        assert_eq!(rtt.timeout(4), MAX, "never past --timeout");
        assert_eq!(rtt.timeout(40), MAX);
    }

    #[test]
    fn slow_and_varying_answers_lengthen_the_wait() {
        let mut rtt = RttEstimator::new(Duration::from_secs(10));
        rtt.sample(Duration::from_millis(200));
        // srtt 200 ms, rttvar 100 ms: 200 + 4 * 100.
        assert_eq!(rtt.timeout(0), Duration::from_millis(600));
        rtt.sample(Duration::from_millis(600));
        // rttvar = 75 + 100, srtt = 175 + 75.
        assert_eq!(rtt.srtt(), Some(Duration::from_millis(250)));
        assert_eq!(rtt.timeout(0), Duration::from_millis(950));
    }

    #[test]
    fn a_timeout_below_the_floor_is_kept() {
        let mut rtt = RttEstimator::new(Duration::from_millis(20));
        rtt.sample(Duration::from_micros(10));
        assert_eq!(rtt.timeout(0), Duration::from_millis(20));
    }
}
