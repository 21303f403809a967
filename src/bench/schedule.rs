//! The open-loop rate scheduler (`--rate`, wrk2's model).
//!
//! At a rate of R requests per second over C connections, connection `i`
//! sends its `k`-th request at the *intended* time
//!
//! ```text
//! start + i / R + k * C / R
//! ```
//!
//! so the connections' requests interleave evenly at R per second in all.
//! A request's latency is measured from its intended time, not from when it
//! was actually written: when the server stalls, the requests that should
//! have gone out during the stall are late, and their lateness is part of
//! what a user of the server would have waited. A closed-loop generator
//! (wrk) simply stops sending during a stall and records one slow request —
//! "coordinated omission". [`corrected_latency`] is the corrected figure.

use std::time::Duration;

use tokio::time::Instant;

/// The intended send times of one connection's requests.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The intended time of request 0.
    first: Instant,
    /// Seconds between two requests of this connection (`C / R`).
    interval: f64,
    /// How many requests have been taken so far.
    taken: u64,
}

impl Schedule {
    /// The schedule of connection `index` (0-based) of `connections`, at
    /// `rate` requests per second over all of them, starting at `start`.
    ///
    /// # Panics
    ///
    /// When `rate` is not positive and finite, or `connections` is 0.
    pub fn for_connection(start: Instant, rate: f64, connections: usize, index: usize) -> Self {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        assert!(connections > 0, "at least one connection");
        Schedule {
            first: start + Duration::from_secs_f64(index as f64 / rate),
            interval: connections as f64 / rate,
            taken: 0,
        }
    }

    /// The intended send time of request `k` (0-based).
    pub fn intended(&self, k: u64) -> Instant {
        // Computed from the start each time, so rounding never accumulates.
        self.first + Duration::from_secs_f64(k as f64 * self.interval)
    }

    /// The intended time of the next request, without taking it.
    pub fn peek(&self) -> Instant {
        self.intended(self.taken)
    }

    /// Takes the next request and returns its intended time.
    pub fn take(&mut self) -> Instant {
        let at = self.peek();
        self.taken += 1;
        at
    }

    /// How many requests have been taken.
    pub fn taken(&self) -> u64 {
        self.taken
    }
}

/// The latency of a request intended at `intended` that completed at `done`
/// (coordinated omission corrected): zero if it somehow completed earlier.
pub fn corrected_latency(intended: Instant, done: Instant) -> Duration {
    done.saturating_duration_since(intended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_evenly_at_the_total_rate() {
        let start = Instant::now();
        // 1000/s over 4 connections: connection i sends at i ms, i+4 ms, …
        let mut all: Vec<Duration> = (0..4)
            .flat_map(|i| {
                let mut s = Schedule::for_connection(start, 1000.0, 4, i);
                (0..250).map(move |_| s.take() - start).collect::<Vec<_>>()
            })
            .collect();
        all.sort();
        assert_eq!(all.len(), 1000);
        for (n, at) in all.iter().enumerate() {
            let want = Duration::from_millis(n as u64);
            let diff = at.abs_diff(want);
            assert!(diff < Duration::from_micros(1), "request {n} at {at:?}");
        }
    }

    #[test]
    fn intended_times_do_not_drift_over_a_long_run() {
        let start = Instant::now();
        let s = Schedule::for_connection(start, 3.0, 1, 0); // 1/3 s: not exact in binary
        let at = s.intended(3_000_000) - start;
        assert!(at.abs_diff(Duration::from_secs(1_000_000)) < Duration::from_millis(1));
    }

    /// One connection, one request at a time: a request is written at its
    /// intended time or, if the previous reply is late, as soon as it comes.
    /// Returns (corrected, uncorrected) latencies.
    fn simulate(rate: f64, service: &[Duration]) -> (Vec<Duration>, Vec<Duration>) {
        let start = Instant::now();
        let mut schedule = Schedule::for_connection(start, rate, 1, 0);
        let mut free_at = start;
        let (mut corrected, mut naive) = (Vec::new(), Vec::new());
        for &took in service {
            let intended = schedule.take();
            let sent = intended.max(free_at);
            let done = sent + took;
            free_at = done;
            corrected.push(corrected_latency(intended, done));
            naive.push(done - sent);
        }
        (corrected, naive)
    }

    #[test]
    fn a_stall_shows_in_every_request_it_delays() {
        // 100 requests/s, 1 ms each, but request 100 stalls for 1 s.
        let mut service = vec![Duration::from_millis(1); 300];
        service[100] = Duration::from_secs(1);
        let (corrected, naive) = simulate(100.0, &service);
        // Uncorrected, only the one stalled request is slow: p99 hides it.
        assert_eq!(
            naive
                .iter()
                .filter(|d| **d > Duration::from_millis(10))
                .count(),
            1
        );
        // Corrected, the 100 requests that should have gone out during the
        // stall waited too: request 150, intended 0.5 s into the
        // stall, completes 0.55 s late.
        let slow: Vec<_> = corrected
            .iter()
            .filter(|d| **d > Duration::from_millis(10))
            .collect();
        assert!(slow.len() >= 99, "{} slow", slow.len());
        assert!(corrected[100] >= Duration::from_secs(1));
        assert!(corrected[150].abs_diff(Duration::from_millis(550)) < Duration::from_millis(2));
        // And the schedule catches up: the last requests are fast again.
        assert_eq!(corrected[299], Duration::from_millis(1));
    }
}
