//! The open-loop rate scheduler (`--rate`, `--stages`; wrk2's model).
//!
//! The rate may change over the run: a [`RateProfile`] is a list of
//! [`Stage`]s, each going linearly from one rate to another over a
//! duration, and holds its last rate after the end. With `Λ(t)` the number
//! of requests due by `t` (the integral of the rate from the start), the
//! run's `n`-th request (0-based) is intended at the first `t` with
//! `Λ(t) ≥ n`. Over C connections, connection `i` sends requests
//! `i, i + C, i + 2C, …`, so their requests interleave evenly at the
//! profile's rate in all. At a constant rate R, request `n` is intended at
//! `start + n / R`.
//!
//! A request's latency is measured from its intended time, not from when it
//! was actually written: when the server stalls, the requests that should
//! have gone out during the stall are late, and their lateness is part of
//! what a user of the server would have waited. A closed-loop generator
//! (wrk) simply stops sending during a stall and records one slow request —
//! "coordinated omission". [`corrected_latency`] is the corrected figure.
//! Because intended times follow `Λ`, this holds across changes of rate: a
//! ramp that outgrows the server shows as growing latency, never as fewer
//! requests asked for.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::BenchError;

/// Where a connection's schedule goes once the profile has ended at rate 0:
/// far enough that the run's deadline comes first.
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// One stage of a [`RateProfile`]: the rate goes linearly from `from` to
/// `to` requests per second over `secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// The rate at the start of the stage, requests per second.
    pub from: f64,
    /// The rate at the end of the stage.
    pub to: f64,
    /// The stage's length, in seconds.
    pub secs: f64,
}

impl Stage {
    /// Requests due over the whole stage (its area).
    fn requests(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.secs
    }
}

/// The open loop's rate over time: stages, then the last rate held.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    stages: Vec<Stage>,
    /// Seconds from the start to the start of each stage.
    offsets: Vec<f64>,
    /// Requests due before each stage.
    before: Vec<f64>,
    /// The rate after the last stage.
    hold: f64,
}

const RATE_EXPECTED: &str =
    "requests per second such as 5000, or a linear ramp FROM..TO/DURATION such as 100..20000/60s";
const STAGES_EXPECTED: &str = "comma-separated RATE/DURATION stages, each ramping linearly from the previous rate (the first from 0), such as '1000/10s,5000/30s,0/5s'; FROM..TO/DURATION sets a stage's start";

impl RateProfile {
    /// A constant `rate` for the whole run.
    ///
    /// # Errors
    ///
    /// [`BenchError::Parse`] unless `rate` is positive and finite.
    pub fn constant(rate: f64) -> Result<RateProfile, BenchError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(BenchError::Parse {
                flag: "--rate",
                input: rate.to_string(),
                reason: "a rate must be a positive number".into(),
                expected: RATE_EXPECTED,
            });
        }
        Ok(RateProfile::build(Vec::new(), rate))
    }

    /// The profile of `stages`, holding the last stage's end rate after them.
    ///
    /// # Errors
    ///
    /// [`BenchError::Parse`] when there are no stages, a rate is negative or
    /// not finite, a length is negative, or no request would ever be due.
    pub fn from_stages(stages: Vec<Stage>) -> Result<RateProfile, BenchError> {
        let bad = |reason: &str| BenchError::Parse {
            flag: "--stages",
            input: format!("{stages:?}"),
            reason: reason.into(),
            expected: STAGES_EXPECTED,
        };
        let Some(last) = stages.last() else {
            return Err(bad("no stages"));
        };
        let hold = last.to;
        for s in &stages {
            let rates_ok = [s.from, s.to].iter().all(|r| r.is_finite() && *r >= 0.0);
            if !(rates_ok && s.secs.is_finite() && s.secs >= 0.0) {
                return Err(bad("rates and durations must be numbers of 0 or more"));
            }
        }
        if stages.iter().all(|s| s.requests() == 0.0) && hold == 0.0 {
            return Err(bad("every rate is 0: no request would be sent"));
        }
        Ok(RateProfile::build(stages, hold))
    }

    fn build(stages: Vec<Stage>, hold: f64) -> RateProfile {
        let (mut offsets, mut before) = (Vec::new(), Vec::new());
        let (mut t, mut n) = (0.0, 0.0);
        for s in &stages {
            offsets.push(t);
            before.push(n);
            t += s.secs;
            n += s.requests();
        }
        RateProfile {
            stages,
            offsets,
            before,
            hold,
        }
    }

    /// Parses `--rate`: `R` (constant) or `FROM..TO/DURATION` (a linear
    /// ramp, then `TO` held).
    ///
    /// # Errors
    ///
    /// [`BenchError::Parse`], naming what was expected.
    pub fn parse_rate(text: &str) -> Result<RateProfile, BenchError> {
        let bad = |reason: String| BenchError::Parse {
            flag: "--rate",
            input: text.to_owned(),
            reason,
            expected: RATE_EXPECTED,
        };
        if !text.contains("..") && !text.contains('/') {
            let rate = parse_rate_number(text).map_err(bad)?;
            if rate == 0.0 {
                return Err(bad("a rate must be above 0".into()));
            }
            return RateProfile::constant(rate).map_err(|_| bad("not a positive rate".into()));
        }
        let stage = parse_stage(text, None).map_err(bad)?;
        if stage.from == 0.0 && stage.to == 0.0 {
            return Err(bad("every rate is 0: no request would be sent".into()));
        }
        RateProfile::from_stages(vec![stage]).map_err(|_| bad("not a valid ramp".into()))
    }

    /// Parses `--stages`: `RATE/DURATION,…`, each stage ramping linearly
    /// from the previous stage's end rate (the first from 0) to RATE;
    /// `FROM..TO/DURATION` starts a stage at FROM instead, so
    /// `500..500/10s` is a step.
    ///
    /// # Errors
    ///
    /// [`BenchError::Parse`], naming the stage that is wrong.
    pub fn parse_stages(text: &str) -> Result<RateProfile, BenchError> {
        let bad = |reason: String| BenchError::Parse {
            flag: "--stages",
            input: text.to_owned(),
            reason,
            expected: STAGES_EXPECTED,
        };
        let mut stages: Vec<Stage> = Vec::new();
        for (i, part) in text.split(',').enumerate() {
            let previous = stages.last().map_or(0.0, |s| s.to);
            let stage = parse_stage(part.trim(), Some(previous))
                .map_err(|reason| bad(format!("stage {}: {reason}", i + 1)))?;
            stages.push(stage);
        }
        RateProfile::from_stages(stages).map_err(|e| match e {
            BenchError::Parse { reason, .. } => bad(reason),
            other => other,
        })
    }

    /// The stages (empty for a constant rate).
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The rate held after the stages (for a constant rate, that rate).
    pub fn final_rate(&self) -> f64 {
        self.hold
    }

    /// Whether the rate never changes.
    pub fn is_constant(&self) -> bool {
        self.stages.is_empty()
    }

    /// The length of the stages: the run's length when no `-d` is given.
    /// `None` for a constant rate.
    pub fn length(&self) -> Option<Duration> {
        let secs: f64 = self.stages.iter().map(|s| s.secs).sum();
        (!self.stages.is_empty()).then(|| Duration::from_secs_f64(secs))
    }

    /// The rate `t` seconds after the start.
    pub fn rate_at(&self, t: f64) -> f64 {
        match self.stage_at_time(t) {
            Some(i) => {
                let s = &self.stages[i];
                let x = if s.secs > 0.0 {
                    ((t - self.offsets[i]) / s.secs).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                s.from + (s.to - s.from) * x
            }
            None => self.hold,
        }
    }

    /// `Λ(t)`: requests due in the first `t` seconds.
    pub fn due(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match self.stage_at_time(t) {
            Some(i) => {
                let s = &self.stages[i];
                let tau = (t - self.offsets[i]).clamp(0.0, s.secs);
                let slope = if s.secs > 0.0 {
                    (s.to - s.from) / s.secs
                } else {
                    0.0
                };
                self.before[i] + s.from * tau + slope * tau * tau / 2.0
            }
            None => {
                let end = self.offsets.last().map_or(0.0, |o| o + self.last_secs());
                let total = self.before.last().map_or(0.0, |b| b + self.last_area());
                total + self.hold * (t - end)
            }
        }
    }

    /// Seconds from the start at which request `n` is due: the first `t`
    /// with `Λ(t) ≥ n`. `None` when it never is (the profile ended at 0).
    pub fn time_of(&self, n: f64) -> Option<f64> {
        let ends = |i: usize| self.before[i] + self.stages[i].requests();
        let first = {
            // The first stage whose end has `n` requests due.
            let (mut lo, mut hi) = (0, self.stages.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if ends(mid) >= n {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        if first < self.stages.len() {
            let s = &self.stages[first];
            let m = (n - self.before[first]).max(0.0);
            // Λ within the stage is from·τ + a·τ², a = (to − from) / 2·secs.
            // τ = 2m / (from + √(from² + 4am)): the stable root, also for a < 0.
            let a = if s.secs > 0.0 {
                (s.to - s.from) / (2.0 * s.secs)
            } else {
                0.0
            };
            let root = (s.from * s.from + 4.0 * a * m).max(0.0).sqrt();
            let denominator = s.from + root;
            let tau = if denominator > 0.0 {
                2.0 * m / denominator
            } else {
                0.0
            };
            return Some(self.offsets[first] + tau.clamp(0.0, s.secs));
        }
        let end = self.offsets.last().map_or(0.0, |o| o + self.last_secs());
        let total = self.before.last().map_or(0.0, |b| b + self.last_area());
        if n <= total {
            return Some(end);
        }
        (self.hold > 0.0).then(|| end + (n - total) / self.hold)
    }

    fn last_secs(&self) -> f64 {
        self.stages.last().map_or(0.0, |s| s.secs)
    }

    fn last_area(&self) -> f64 {
        self.stages.last().map_or(0.0, Stage::requests)
    }

    /// The stage holding time `t`, `None` after the last.
    fn stage_at_time(&self, t: f64) -> Option<usize> {
        let i = self.offsets.partition_point(|o| *o <= t);
        // `i - 1` is the last stage starting at or before `t`.
        let i = i.saturating_sub(1);
        let s = self.stages.get(i)?;
        (t <= self.offsets[i] + s.secs).then_some(i)
    }

    /// The profile as `--stages` would take it (`5000` for a constant rate).
    pub fn describe(&self) -> String {
        if self.stages.is_empty() {
            return format!("{}", self.hold);
        }
        self.stages
            .iter()
            .map(|s| format!("{}..{}/{}s", s.from, s.to, s.secs))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A rate: a non-negative number, `k` for thousands allowed (`20k`).
fn parse_rate_number(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1000.0),
        None => (text, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r * scale),
        _ => Err(format!("'{text}' is not a rate")),
    }
}

/// `[FROM..]TO/DURATION`, FROM defaulting to `previous` (required when
/// `previous` is `None`).
fn parse_stage(text: &str, previous: Option<f64>) -> Result<Stage, String> {
    let Some((rates, duration)) = text.split_once('/') else {
        return Err(format!("'{text}' has no /DURATION"));
    };
    let (from, to) = match rates.split_once("..") {
        Some((from, to)) => (parse_rate_number(from)?, parse_rate_number(to)?),
        None => match previous {
            Some(previous) => (previous, parse_rate_number(rates)?),
            None => return Err(format!("'{text}' has no FROM.. rate")),
        },
    };
    let secs = parse_seconds(duration)?;
    Ok(Stage { from, to, secs })
}

/// Seconds as a bare number (`5`, `0.5`) or with a unit (`500ms`, `2m`).
pub(crate) fn parse_seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(secs);
        }
        return Err(format!("'{text}' is not a duration"));
    }
    humantime::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .map_err(|_| format!("'{text}' is not a duration (such as 10s, 500ms or 2m)"))
}

/// The intended send times of one connection's requests.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    profile: Arc<RateProfile>,
    /// The run's number of this connection's next request.
    next: u64,
    /// Between two requests of this connection: the number of connections.
    stride: u64,
    /// The intended time of request `next`.
    next_at: Instant,
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
        let profile = RateProfile::constant(rate).unwrap_or_else(|e| panic!("{e}"));
        Schedule::with_profile(start, Arc::new(profile), connections, index)
    }

    /// The schedule of connection `index` (0-based) of `connections`,
    /// following `profile` over all of them from `start`.
    ///
    /// # Panics
    ///
    /// When `connections` is 0.
    pub fn with_profile(
        start: Instant,
        profile: Arc<RateProfile>,
        connections: usize,
        index: usize,
    ) -> Self {
        assert!(connections > 0, "at least one connection");
        let mut schedule = Schedule {
            start,
            profile,
            next: index as u64,
            stride: connections as u64,
            next_at: start,
            taken: 0,
        };
        schedule.next_at = schedule.at(schedule.next);
        schedule
    }

    /// The intended time of the run's request `n`.
    fn at(&self, n: u64) -> Instant {
        // Computed from the start each time, so rounding never accumulates.
        match self.profile.time_of(n as f64) {
            Some(secs) => self.start + Duration::from_secs_f64(secs),
            None => self.start + NEVER,
        }
    }

    /// The intended send time of this connection's request `k` (0-based).
    pub fn intended(&self, k: u64) -> Instant {
        let first = self.next - self.taken * self.stride;
        self.at(first + k * self.stride)
    }

    /// The intended time of the next request, without taking it.
    pub fn peek(&self) -> Instant {
        self.next_at
    }

    /// Takes the next request and returns its intended time.
    pub fn take(&mut self) -> Instant {
        let at = self.next_at;
        self.taken += 1;
        self.next += self.stride;
        self.next_at = self.at(self.next);
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

    #[test]
    fn rates_and_ramps_parse() {
        let p = RateProfile::parse_rate("5000").unwrap();
        assert!(p.is_constant());
        assert_eq!(p.final_rate(), 5000.0);
        assert_eq!(p.length(), None);
        assert_eq!(
            RateProfile::parse_rate("20k").unwrap().final_rate(),
            20_000.0
        );
        let p = RateProfile::parse_rate("100..20000/60s").unwrap();
        assert_eq!(
            p.stages(),
            [Stage {
                from: 100.0,
                to: 20_000.0,
                secs: 60.0
            }]
        );
        assert_eq!(p.length(), Some(Duration::from_secs(60)));
        assert_eq!(p.final_rate(), 20_000.0);
        assert!((p.rate_at(30.0) - 10_050.0).abs() < 1e-9);
        assert!((p.due(60.0) - 603_000.0).abs() < 1e-6);
        let p = RateProfile::parse_rate("10..20/500ms").unwrap();
        assert_eq!(p.stages()[0].secs, 0.5);
    }

    #[test]
    fn stages_ramp_from_the_previous_rate() {
        let p = RateProfile::parse_stages("1000/10s,5000/30s,0/5s").unwrap();
        let want = [
            (0.0, 1000.0, 10.0),
            (1000.0, 5000.0, 30.0),
            (5000.0, 0.0, 5.0),
        ];
        let got: Vec<_> = p.stages().iter().map(|s| (s.from, s.to, s.secs)).collect();
        assert_eq!(got, want);
        assert_eq!(p.length(), Some(Duration::from_secs(45)));
        // 5,000 + 90,000 + 12,500 requests in all, then nothing more.
        assert!((p.due(45.0) - 107_500.0).abs() < 1e-6);
        assert_eq!(p.time_of(107_500.0), Some(45.0));
        assert_eq!(p.time_of(107_501.0), None);
        let p = RateProfile::parse_stages("500..500/10s, 2000/1s").unwrap();
        assert_eq!(p.stages()[0].from, 500.0);
        assert_eq!(p.stages()[1].from, 500.0);
    }

    #[test]
    fn malformed_rates_and_stages_are_one_line_errors() {
        for bad in [
            "",
            "abc",
            "-5",
            "0",
            "nan",
            "inf",
            "1e400",
            "100..",
            "100../5s",
            "..5/1s",
            "100..200",
            "100..200/",
            "100..200/xs",
            "100..200/-1s",
            "0..0/5s",
            "5/1s",
            "1..2..3/4s",
        ] {
            let err = RateProfile::parse_rate(bad).expect_err(bad).to_string();
            assert!(err.starts_with("invalid --rate '"), "{bad}: {err}");
            assert!(err.contains("expected"), "{bad}: {err}");
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
        for bad in [
            "",
            ",",
            "1000/10s,,",
            "1000",
            "1000/",
            "x/1s",
            "1000/10s,5000/abc",
            "0/5s",
            "-1/5s",
            "1000/-5s",
            "10/1s,0..x/1s",
        ] {
            let err = RateProfile::parse_stages(bad).expect_err(bad).to_string();
            assert!(err.starts_with("invalid --stages '"), "{bad}: {err}");
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
        let err = RateProfile::parse_stages("1000/10s,5000/abc").unwrap_err();
        assert!(err.to_string().contains("stage 2"), "{err}");
    }

    #[test]
    fn intended_times_invert_the_integral_of_the_rate() {
        for text in ["100..20000/60s", "1000/10s,5000/30s,0/5s", "5000..100/20s"] {
            let p = RateProfile::parse_stages(text)
                .or_else(|_| RateProfile::parse_rate(text))
                .unwrap();
            let total = p.due(p.length().unwrap().as_secs_f64());
            let mut last = 0.0;
            for k in 0..1000 {
                let n = total * k as f64 / 1000.0;
                let t = p.time_of(n).unwrap();
                assert!(t >= last, "{text}: time goes back at {n}");
                last = t;
                assert!(
                    (p.due(t) - n).abs() < 1e-6 * n.max(1.0),
                    "{text}: n {n}, t {t}"
                );
            }
        }
    }

    #[test]
    fn connections_interleave_evenly_along_a_ramp() {
        // 0 → 2000/s over 2 s: 2000 requests over 8 connections; merged,
        // they are the run's requests 0..2000 in order, at Λ⁻¹(n).
        let start = Instant::now();
        let p = Arc::new(RateProfile::parse_stages("2000/2s").unwrap());
        let mut all: Vec<Duration> = (0..8)
            .flat_map(|i| {
                let mut s = Schedule::with_profile(start, Arc::clone(&p), 8, i);
                (0..250).map(move |_| s.take() - start).collect::<Vec<_>>()
            })
            .collect();
        all.sort();
        for (n, at) in all.iter().enumerate() {
            let want = Duration::from_secs_f64(p.time_of(n as f64).unwrap());
            assert!(at.abs_diff(want) < Duration::from_micros(1), "request {n}");
        }
        // Requests due in each tenth of a second follow the integral of the
        // rate, Λ(t) = 500·t²: 5 in the first, 195 in the last.
        let in_tenth = |k: u32| {
            let (a, b) = (
                Duration::from_millis(100) * k,
                Duration::from_millis(100) * (k + 1),
            );
            all.iter().filter(|t| **t >= a && **t < b).count()
        };
        assert!(in_tenth(0).abs_diff(5) <= 1, "{}", in_tenth(0));
        assert!(in_tenth(19).abs_diff(195) <= 1, "{}", in_tenth(19));
    }

    #[tokio::test(start_paused = true)]
    async fn on_the_paused_clock_sends_follow_the_stages() {
        // One connection sleeping to each intended time, on tokio's paused
        // clock: the count per second is the stage's integral over it.
        let start = Instant::now();
        let p = Arc::new(
            RateProfile::parse_stages("100..100/2s,100..300/2s,0..0/1s,50..50/1s").unwrap(),
        );
        let mut s = Schedule::with_profile(start, Arc::clone(&p), 1, 0);
        let mut per_second = [0u32; 6];
        loop {
            let at = s.take();
            if at >= start + Duration::from_secs(6) {
                break;
            }
            tokio::time::sleep_until(at).await;
            let second = (Instant::now() - start).as_secs() as usize;
            per_second[second] += 1;
        }
        // Request 600 is due the moment Λ reaches 600, at 4 s sharp, as the
        // pause begins; the last stage's 50 end with request 650 at 6 s.
        assert_eq!(per_second, [100, 100, 150, 250, 1, 49]);
    }
}
