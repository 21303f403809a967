//! `--find-max`: the highest open-loop rate at which the server still meets
//! a service-level objective (`--slo 'p99<10ms,errors<0.1%'`).
//!
//! The search, in order:
//! 1. coarse ramp: a step at the start rate, then at twice the rate, until
//!    a step misses the objective (or, when the first one misses, at half
//!    the rate until one meets it);
//! 2. bisection between the highest rate that met it and the lowest that
//!    missed, until they are within [`FindMaxConfig::precision`]; a step
//!    that misses is run once more (phase `confirm`), and the miss counts
//!    only if the re-run misses too;
//! 3. the answer is the highest rate that met it, with the table of steps.
//!
//! Each step is a whole open-loop run ([`run`](super::run)) at a constant
//! rate: new connections, the warm-up, then `step` seconds measured, so a
//! step is not disturbed by the backlog of the one before. A step's spread
//! is the range of its per-second p99 and throughput: a wide one says the
//! step was not long enough to be stable.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::report::Report;
use super::schedule::RateProfile;
use super::{BenchConfig, BenchError};
use crate::Result;

/// The most steps a search takes.
pub const MAX_STEPS: usize = 30;

/// A service-level objective: rules every step must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    rules: Vec<Rule>,
    text: String,
}

/// One rule of an [`Slo`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// A latency figure below a limit, in microseconds.
    Latency {
        figure: Figure,
        limit_us: f64,
        inclusive: bool,
    },
    /// Failed requests below a share of all requests (0.001 for 0.1%).
    Errors { limit: f64, inclusive: bool },
}

/// A latency figure.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Figure {
    /// A quantile, 0 < q < 1.
    Quantile(f64),
    Max,
    Mean,
}

const SLO_EXPECTED: &str = "comma-separated rules such as 'p99<10ms,errors<0.1%': p50, p90, p99, p99.9 (any pNN), max or mean below a duration (us, ms, s), errors below a percentage";

impl Slo {
    /// Parses `--slo`.
    ///
    /// # Errors
    ///
    /// [`BenchError::Parse`], naming the rule that is wrong.
    pub fn parse(text: &str) -> std::result::Result<Slo, BenchError> {
        let bad = |reason: String| BenchError::Parse {
            flag: "--slo",
            input: text.to_owned(),
            reason,
            expected: SLO_EXPECTED,
        };
        let mut rules = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (name, inclusive, value) = if let Some((n, v)) = part.split_once("<=") {
                (n, true, v)
            } else if let Some((n, v)) = part.split_once('<') {
                (n, false, v)
            } else {
                return Err(bad(format!("rule '{part}' has no < or <=")));
            };
            let (name, value) = (name.trim(), value.trim());
            let rule = match name.to_ascii_lowercase().as_str() {
                "errors" | "error" => {
                    let limit = parse_share(value).ok_or_else(|| {
                        bad(format!("'{value}' is not a percentage such as 0.1%"))
                    })?;
                    Rule::Errors { limit, inclusive }
                }
                other => {
                    let figure = match other {
                        "max" => Figure::Max,
                        "mean" => Figure::Mean,
                        p => {
                            let q = p
                                .strip_prefix('p')
                                .and_then(|n| n.parse::<f64>().ok())
                                .filter(|n| *n > 0.0 && *n < 100.0)
                                .ok_or_else(|| bad(format!("'{name}' is not a latency figure")))?;
                            Figure::Quantile(q / 100.0)
                        }
                    };
                    let limit_us = parse_micros(value).ok_or_else(|| {
                        bad(format!("'{value}' is not a duration such as 10ms or 500us"))
                    })?;
                    Rule::Latency {
                        figure,
                        limit_us,
                        inclusive,
                    }
                }
            };
            rules.push(rule);
        }
        Ok(Slo {
            rules,
            text: text.to_owned(),
        })
    }

    /// The rules `report` breaks, each as a short sentence (`p99 12.3ms ≥
    /// 10ms`); empty when it meets them all.
    pub fn violations(&self, report: &Report) -> Vec<String> {
        let h = report.histogram();
        let mut out = Vec::new();
        for rule in &self.rules {
            match *rule {
                Rule::Latency {
                    figure,
                    limit_us,
                    inclusive,
                } => {
                    let (name, value_us) = match figure {
                        _ if h.is_empty() => ("latency".to_owned(), f64::INFINITY),
                        Figure::Quantile(q) => (
                            format!("p{}", q * 100.0),
                            h.value_at_quantile(q) as f64 / 1000.0,
                        ),
                        Figure::Max => ("max".to_owned(), h.max() as f64 / 1000.0),
                        Figure::Mean => ("mean".to_owned(), h.mean() / 1000.0),
                    };
                    if !below(value_us, limit_us, inclusive) {
                        out.push(format!(
                            "{name} {} over {}",
                            show_us(value_us),
                            show_us(limit_us)
                        ));
                    }
                }
                Rule::Errors { limit, inclusive } => {
                    let all = report.requests + report.errors.total
                        - report.errors.status.values().sum::<u64>();
                    let share = if all == 0 {
                        1.0
                    } else {
                        report.errors.total as f64 / all as f64
                    };
                    if !below(share, limit, inclusive) {
                        out.push(format!(
                            "errors {:.3}% over {}%",
                            share * 100.0,
                            limit * 100.0
                        ));
                    }
                }
            }
        }
        out
    }
}

impl std::fmt::Display for Slo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn below(value: f64, limit: f64, inclusive: bool) -> bool {
    if inclusive {
        value <= limit
    } else {
        value < limit
    }
}

/// `0.1%` → 0.001; a bare number is a fraction (`0.001`).
fn parse_share(text: &str) -> Option<f64> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (text, 1.0),
    };
    let v = number.parse::<f64>().ok()? * scale;
    (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(v)
}

/// `10ms`, `500us`, `500µs`, `1.5s`, `250ns` → microseconds.
fn parse_micros(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1e-3,
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return None,
    };
    let v = number.parse::<f64>().ok()? * scale;
    (v.is_finite() && v > 0.0).then_some(v)
}

fn show_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{us:.0}µs")
    }
}

/// How to search.
#[derive(Debug, Clone)]
pub struct FindMaxConfig {
    /// What every step must meet (`--slo`).
    pub slo: Slo,
    /// Measured time of each step (`--step`). Default is 5 s.
    pub step: Duration,
    /// The first rate tried (`--rate`). Default is 100 req/s.
    pub start_rate: f64,
    /// The search ends when the highest rate that met the objective and the
    /// lowest that missed it are within this share of each other. Default
    /// is 0.05 (5%).
    pub precision: f64,
}

impl FindMaxConfig {
    /// The defaults, for `slo`.
    pub fn new(slo: Slo) -> FindMaxConfig {
        FindMaxConfig {
            slo,
            step: Duration::from_secs(5),
            start_rate: 100.0,
            precision: 0.05,
        }
    }
}

/// One step of the search.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `ramp`, `bisect`, or `confirm` (the re-run of a miss).
    pub phase: &'static str,
    /// The open loop's rate, requests per second.
    pub rate: f64,
    /// Replies per second measured.
    pub achieved: f64,
    /// Latency figures of the step, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
    /// Failed requests, percent of all.
    pub errors_percent: f64,
    /// Lowest and highest per-second p99 over the step, µs.
    pub p99_spread_us: (f64, f64),
    /// Lowest and highest replies per second over the step's whole
    /// seconds.
    pub throughput_spread: (u64, u64),
    /// Whether the step met the objective.
    pub met: bool,
    /// The rules it broke.
    pub violations: Vec<String>,
    /// The generator's warnings for the step.
    pub warnings: Vec<String>,
}

impl Step {
    fn of(phase: &'static str, rate: f64, report: &Report, slo: &Slo) -> Step {
        // Whole seconds only: a last, partial second would widen the spread.
        let whole = ((report.duration_secs + 1e-3).floor() as usize)
            .clamp(1, report.series.len().max(1))
            .min(report.series.len());
        let full = &report.series[..whole];
        let with_replies = full.iter().filter(|s| s.completed > 0);
        let p99s: Vec<f64> = with_replies.map(|s| s.p99_us).collect();
        let spread = |v: &[f64]| {
            (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(0.0, f64::max),
            )
        };
        let (lo, hi) = spread(&p99s);
        let counts: Vec<u64> = full.iter().map(|s| s.completed).collect();
        let all =
            report.requests + report.errors.total - report.errors.status.values().sum::<u64>();
        let violations = slo.violations(report);
        Step {
            phase,
            rate,
            achieved: report.requests_per_sec,
            p50_us: report.latency.p50_us,
            p99_us: report.latency.p99_us,
            max_us: report.latency.max_us,
            errors_percent: if all == 0 {
                0.0
            } else {
                report.errors.total as f64 / all as f64 * 100.0
            },
            p99_spread_us: if p99s.is_empty() {
                (0.0, 0.0)
            } else {
                (lo, hi)
            },
            throughput_spread: (
                counts.iter().copied().min().unwrap_or(0),
                counts.iter().copied().max().unwrap_or(0),
            ),
            met: violations.is_empty(),
            violations,
            warnings: report.generator.warnings.clone(),
        }
    }
}

/// What the search found.
#[derive(Debug, Clone, Serialize)]
pub struct FindMax {
    /// The objective, as given.
    pub slo: String,
    /// The highest rate that met it; `null` when none did.
    pub max_rate: Option<f64>,
    /// Whether the search was cut short (Ctrl-C, or [`MAX_STEPS`]).
    pub incomplete: bool,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
}

impl FindMax {
    /// As one JSON object.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// As text: the answer, then the table of steps.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = match self.max_rate {
            Some(rate) => writeln!(
                out,
                "highest rate meeting {}: {rate:.0} req/s{}",
                self.slo,
                if self.incomplete {
                    " (search cut short)"
                } else {
                    ""
                }
            ),
            None => writeln!(out, "no rate tried met {}", self.slo),
        };
        let _ = writeln!(
            out,
            "  {:>4}  {:<6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}  {:>19}  {:>13}  result",
            "step",
            "phase",
            "rate",
            "achieved",
            "p50",
            "p99",
            "max",
            "errors",
            "p99/s spread",
            "req/s spread"
        );
        for (i, s) in self.steps.iter().enumerate() {
            let result = if s.met {
                "met".to_owned()
            } else {
                format!("missed: {}", s.violations.join(", "))
            };
            let _ = writeln!(
                out,
                "  {:>4}  {:<6}  {:>9.0}  {:>9.1}  {:>9}  {:>9}  {:>9}  {:>6.2}%  {:>19}  {:>13}  {result}",
                i + 1,
                s.phase,
                s.rate,
                s.achieved,
                show_us(s.p50_us),
                show_us(s.p99_us),
                show_us(s.max_us),
                s.errors_percent,
                format!("{}..{}", show_us(s.p99_spread_us.0), show_us(s.p99_spread_us.1)),
                format!("{}..{}", s.throughput_spread.0, s.throughput_spread.1),
            );
        }
        out
    }
}

/// Searches for the highest rate meeting `search.slo`, running steps of
/// `config` (whose rate and duration each step sets), until the search
/// ends or `stop` completes. `on_step` is called after each step.
///
/// # Errors
///
/// What [`run`](super::run) returns for the first step (an invalid
/// configuration, a name that does not resolve).
pub async fn find_max(
    config: BenchConfig,
    search: FindMaxConfig,
    stop: impl Future<Output = ()>,
    mut on_step: impl FnMut(&Step),
) -> Result<FindMax> {
    let mut stop = std::pin::pin!(stop);
    let stopped = std::cell::Cell::new(false);
    let mut steps = Vec::new();
    let (mut met, mut missed): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = search.start_rate;
    let mut incomplete = false;
    // Whether the step about to run re-runs a miss.
    let mut confirming = false;
    loop {
        if steps.len() >= MAX_STEPS || stopped.get() {
            incomplete = true;
            break;
        }
        let phase = if confirming {
            "confirm"
        } else if met.is_some() && missed.is_some() {
            "bisect"
        } else {
            "ramp"
        };
        let mut step_config = config.clone();
        step_config.rate = Some(RateProfile::constant(rate)?);
        step_config.duration = Some(search.step);
        step_config.requests = None;
        let cut = async {
            (&mut stop).await;
            stopped.set(true);
        };
        let report = super::run(step_config, cut, |_| {}).await?;
        if report.interrupted {
            incomplete = true;
            break;
        }
        let step = Step::of(phase, rate, &report, &search.slo);
        on_step(&step);
        let step_met = step.met;
        steps.push(step);
        // A miss is run once more before it counts, so that one stall of
        // the machine (another process, a page-in) does not end the search
        // below the server's real capacity.
        if !step_met && !confirming {
            confirming = true;
            continue;
        }
        confirming = false;
        if step_met {
            met = Some(met.map_or(rate, |m: f64| m.max(rate)));
        } else {
            missed = Some(missed.map_or(rate, |m: f64| m.min(rate)));
        }
        rate = match (met, missed) {
            (Some(lo), Some(hi)) => {
                if hi - lo <= search.precision * lo {
                    break;
                }
                (lo + hi) / 2.0
            }
            (Some(lo), None) => lo * 2.0,
            (None, Some(hi)) => hi / 2.0,
            // Unreachable: this step set one of them.
            (None, None) => break,
        };
        // Below one request per step, there is nothing left to find.
        if rate * search.step.as_secs_f64() < 1.0 {
            break;
        }
    }
    Ok(FindMax {
        slo: search.slo.to_string(),
        max_rate: met,
        incomplete,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_parse() {
        let slo = Slo::parse("p99<10ms, errors<0.1%,p99.9<=1s,max<500us,mean<2ms").unwrap();
        assert_eq!(slo.rules.len(), 5);
        assert_eq!(
            slo.rules[0],
            Rule::Latency {
                figure: Figure::Quantile(0.99),
                limit_us: 10_000.0,
                inclusive: false
            }
        );
        assert_eq!(
            slo.rules[1],
            Rule::Errors {
                limit: 0.001,
                inclusive: false
            }
        );
        assert!(matches!(
            slo.rules[2],
            Rule::Latency { figure: Figure::Quantile(q), limit_us, inclusive: true }
                if (q - 0.999).abs() < 1e-12 && limit_us == 1e6
        ));
        assert_eq!(
            Slo::parse("errors<0.01").unwrap().rules[0],
            Rule::Errors {
                limit: 0.01,
                inclusive: false
            }
        );
    }

    #[test]
    fn malformed_slos_are_one_line_errors() {
        for bad in [
            "",
            "p99",
            "p99>10ms",
            "p99<",
            "p99<10",
            "p99<10 parsecs",
            "p100<1ms",
            "p0<1ms",
            "px<1ms",
            "latency<1ms",
            "errors<x",
            "errors<150%",
            "errors<-1%",
            "p99<-5ms",
            "p99<10ms,",
            "p99<0ms",
        ] {
            let err = Slo::parse(bad).expect_err(bad).to_string();
            assert!(err.starts_with("invalid --slo '"), "{bad}: {err}");
            assert!(err.contains("expected"), "{bad}: {err}");
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
    }
}
