//! The per-second time series (`--series`): what was sent, completed and
//! failed in each second of the measured run, and the latency of the
//! replies that completed in it.
//!
//! Each thread keeps its own [`Recorder`], so the hot path shares nothing:
//! counters per second, and one small HDR histogram for the second in
//! progress. When a reply lands in a new second, the previous second's
//! histogram is encoded (HdrHistogram's V2 format, a few hundred bytes) and
//! the histogram is reset, so memory stays a few hundred bytes per second
//! however long the run. Threads' series are merged at the end, second by
//! second, and so are saved runs (`sockit bench merge`).

use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Highest latency a per-second histogram holds (longer ones are clamped):
/// 1 hour, as the run's histogram.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Significant digits of per-second latencies: 1% resolution, a tenth of
/// the size of the run's 3-digit histogram.
const SECOND_DIGITS: u8 = 2;

/// The longest series kept: a week of seconds. Later samples count in the
/// last second.
const MAX_SECONDS: usize = 7 * 86_400;

/// A new, empty per-second histogram.
pub(crate) fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, SECOND_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Encodes a histogram in HdrHistogram's V2 format (lossless); empty bytes
/// for an empty histogram.
pub(crate) fn encode(histogram: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    if histogram.is_empty() {
        return out;
    }
    // Writing to a Vec cannot fail; a count too large to encode could, and
    // then the second shows no latency rather than a wrong one.
    if V2Serializer::new().serialize(histogram, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Decodes what [`encode`] wrote; empty bytes give `Ok(None)`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Option<Histogram<u64>>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map(Some)
        .map_err(|e| format!("not an HdrHistogram V2 histogram ({e:?})"))
}

/// What happened in one second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SecondData {
    /// Requests taken (written) in this second.
    pub sent: u64,
    /// Replies that completed in this second (any status).
    pub completed: u64,
    /// Requests that failed in this second (including non-2xx replies).
    pub errors: u64,
    /// Latencies of the replies completed in this second, V2-encoded.
    pub latency: Vec<u8>,
}

impl SecondData {
    /// Adds `other` into this second.
    ///
    /// # Errors
    ///
    /// When either histogram does not decode.
    pub fn add(&mut self, other: &SecondData) -> Result<(), String> {
        self.sent += other.sent;
        self.completed += other.completed;
        self.errors += other.errors;
        match (decode(&self.latency)?, decode(&other.latency)?) {
            (_, None) => {}
            (None, Some(_)) => self.latency.clone_from(&other.latency),
            (Some(mut mine), Some(theirs)) => {
                // Both have the per-second bounds, so adding cannot fail;
                // should it, the sum is clamped rather than lost.
                if mine.add(&theirs).is_err() {
                    for v in theirs.iter_recorded() {
                        mine.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                    }
                }
                self.latency = encode(&mine);
            }
        }
        Ok(())
    }
}

/// Adds `other` into `series`, `other`'s second 0 at `series`' second
/// `offset`.
///
/// # Errors
///
/// When a histogram does not decode.
pub(crate) fn merge(
    series: &mut Vec<SecondData>,
    other: &[SecondData],
    offset: usize,
) -> Result<(), String> {
    let len = (offset + other.len()).min(MAX_SECONDS);
    if series.len() < len {
        series.resize_with(len, SecondData::default);
    }
    for (i, second) in other.iter().enumerate() {
        let at = (offset + i).min(MAX_SECONDS - 1);
        series[at].add(second)?;
    }
    Ok(())
}

/// One thread's series while it runs.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    /// Second 0 starts here (the end of the warm-up).
    from: Instant,
    seconds: Vec<SecondData>,
    /// The second `histogram` holds.
    current: usize,
    histogram: Histogram<u64>,
}

impl Recorder {
    pub fn new(from: Instant) -> Recorder {
        Recorder {
            from,
            seconds: Vec::new(),
            current: 0,
            histogram: second_histogram(),
        }
    }

    /// The second `now` falls in, with its row.
    fn at(&mut self, now: Instant) -> (usize, &mut SecondData) {
        let second =
            (now.saturating_duration_since(self.from).as_secs() as usize).min(MAX_SECONDS - 1);
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, SecondData::default);
        }
        (second, &mut self.seconds[second])
    }

    /// A measured request was taken at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.at(now).1.sent += 1;
    }

    /// `n` measured requests failed at `now`.
    pub fn errors(&mut self, now: Instant, n: u64) {
        self.at(now).1.errors += n;
    }

    /// A measured reply completed at `now` after `latency_ns`; `error` for
    /// a non-2xx status.
    pub fn completed(&mut self, now: Instant, latency_ns: u64, error: bool) {
        let (second, row) = self.at(now);
        row.completed += 1;
        row.errors += u64::from(error);
        if second > self.current {
            self.flush();
            self.current = second;
        }
        // Replies complete in time order on one thread; one that did not
        // would count in the second in progress.
        self.histogram.saturating_record(latency_ns);
    }

    /// Encodes the second in progress into its row.
    fn flush(&mut self) {
        if self.histogram.is_empty() {
            return;
        }
        if let Some(row) = self.seconds.get_mut(self.current) {
            row.latency = encode(&self.histogram);
        }
        self.histogram.reset();
    }

    /// The finished series: a row per second, up to the last one with
    /// anything in it.
    pub fn finish(mut self) -> Vec<SecondData> {
        self.flush();
        self.seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_second_keeps_its_counts_and_latencies() {
        let from = Instant::now();
        let mut r = Recorder::new(from);
        let at = |ms: u64| from + Duration::from_millis(ms);
        r.sent(at(10));
        r.completed(at(20), 1_000_000, false);
        r.completed(at(900), 3_000_000, false);
        r.sent(at(1500));
        r.errors(at(1600), 2);
        r.completed(at(2100), 50_000_000, true);
        let rows = r.finish();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].sent, rows[0].completed, rows[0].errors), (1, 2, 0));
        assert_eq!((rows[1].sent, rows[1].completed, rows[1].errors), (1, 0, 2));
        assert_eq!((rows[2].completed, rows[2].errors), (1, 1));
        let h0 = decode(&rows[0].latency).unwrap().unwrap();
        assert_eq!(h0.len(), 2);
        assert!(h0.max().abs_diff(3_000_000) < 30_000, "{}", h0.max());
        assert!(decode(&rows[1].latency).unwrap().is_none());
        let h2 = decode(&rows[2].latency).unwrap().unwrap();
        assert!(h2.max().abs_diff(50_000_000) < 500_000);
    }

    #[test]
    fn merging_adds_counts_and_histograms_at_an_offset() {
        let from = Instant::now();
        let mut a = Recorder::new(from);
        let mut b = Recorder::new(from);
        for i in 0..100 {
            a.completed(from + Duration::from_millis(i * 10), 1_000_000, false);
            b.completed(from + Duration::from_millis(i * 10), 9_000_000, false);
        }
        let mut merged = a.finish();
        merge(&mut merged, &b.finish(), 1).unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].completed, 100);
        assert_eq!(merged[1].completed, 100);
        let both = {
            let mut all = merged.clone();
            let again = all.clone();
            merge(&mut all, &again, 0).unwrap();
            all
        };
        let h = decode(&both[0].latency).unwrap().unwrap();
        assert_eq!(h.len(), 200);
    }

    #[test]
    fn garbage_is_not_a_histogram() {
        assert!(decode(b"not a histogram").is_err());
        assert_eq!(decode(b"").unwrap(), None);
    }
}
