//! The checks behind the fuzz targets in `fuzz/`, kept in the library so
//! the corpus replays in the normal `cargo test` on stable Rust (see the
//! test at the end), and so the targets stay one line each.
//!
//! Not part of the public API: compiled for tests and with the `fuzzing`
//! feature only.

use crate::conn::ConnLimits;
use crate::http::{parse_request_head, sniff, BodyLength, BodySkipper, RequestError};
use crate::service::Hello;
use crate::Endpoint;

/// The request reader's parts on arbitrary bytes: the sniffer, the head
/// parser and the body skipper. None may panic; each stays within its input.
pub fn http_request(data: &[u8]) {
    let _ = sniff(data, 8192);
    if let Ok(Some(head)) = parse_request_head(data, 8192) {
        assert!(head.len <= data.len() && head.len <= 8192);
        let rest = &data[head.len..];
        let mut skipper = BodySkipper::new(head.body);
        if let Ok(used) = skipper.skip(rest) {
            assert!(used <= rest.len());
        }
    }
    // The chunked skipper alone, fed in two parts as two reads would.
    let mut skipper = BodySkipper::new(BodyLength::Chunked);
    let half = data.len() / 2;
    if let Ok(used) = skipper.skip(&data[..half]) {
        assert!(used <= half);
        if let Ok(more) = skipper.skip(&data[used..]) {
            assert!(used + more <= data.len());
        }
    }
}

/// Splits a fuzz input into its payload and sorted cut points: the first
/// byte's low 3 bits say how many cut points follow (one byte each, scaled
/// to the payload); the rest is the payload.
fn cut_points(data: &[u8]) -> Option<(&[u8], Vec<usize>)> {
    let (&cuts, rest) = data.split_first()?;
    let cuts = usize::from(cuts % 8).min(rest.len());
    let (cut_bytes, payload) = rest.split_at(cuts);
    let mut points: Vec<usize> = cut_bytes
        .iter()
        .map(|&b| usize::from(b) * payload.len() / 256)
        .collect();
    points.sort_unstable();
    Some((payload, points))
}

/// The chunked body reader alone, on arbitrary bytes cut into reads: the
/// verdict (an error, or how many bytes were body and whether it ended) is
/// the same whole, at the cut points the input chooses, and one byte per
/// read. A verdict that depends on the split is how one reading of a
/// stream becomes two (request smuggling).
///
/// Input: the first byte's low 3 bits say how many cut points follow (one
/// byte each, scaled to the payload); the rest is the payload.
pub fn chunked_body(data: &[u8]) {
    let Some((payload, points)) = cut_points(data) else {
        return;
    };
    let whole = read_chunked(payload, &[]);
    let split = read_chunked(payload, &points);
    assert_eq!(whole, split, "verdict differs at cuts {points:?}");
    if payload.len() <= 4096 {
        let every: Vec<usize> = (1..payload.len()).collect();
        assert_eq!(
            whole,
            read_chunked(payload, &every),
            "bytewise verdict differs"
        );
    }
    if let Ok((_, used)) = whole {
        assert!(used <= payload.len());
    }
}

/// Feeds `payload` to a chunked [`BodySkipper`] in reads ending at `cuts`,
/// as a connection does: unconsumed bytes stay and the next read appends.
/// Returns whether the body ended and how many bytes it took.
pub fn read_chunked(payload: &[u8], cuts: &[usize]) -> Result<(bool, usize), RequestError> {
    let mut skipper = BodySkipper::new(BodyLength::Chunked);
    let mut buf = Vec::new();
    let mut total = 0;
    let mut from = 0;
    for end in cuts.iter().copied().chain([payload.len()]) {
        buf.extend_from_slice(&payload[from..end.max(from)]);
        from = end.max(from);
        let used = skipper.skip(&buf)?;
        buf.drain(..used);
        total += used;
        if skipper.is_done() {
            break;
        }
    }
    Ok((skipper.is_done(), total))
}

/// The hello service's whole state machine (sniff, heads, bodies,
/// pipelining, backpressure) over bytes cut into reads.
///
/// Input: the first byte's low 3 bits say how many cut points follow (one
/// byte each, scaled to the payload); the rest is the payload. Checks: no
/// panic; the read buffer and the queued responses stay bounded; and what
/// is written does not depend on how the payload was cut (except the `Date`
/// value, and a `100 Continue`, which is sent only when the body has not
/// arrived with the head).
pub fn hello_exchange(data: &[u8]) {
    let Some((payload, points)) = cut_points(data) else {
        return;
    };
    let mut reads = Vec::new();
    let mut from = 0;
    for p in points {
        reads.push(&payload[from..p]);
        from = p;
    }
    reads.push(&payload[from..]);

    let hello = Hello::default();
    let whole = hello.exchange(&[payload], exchange_limits());
    let split = hello.exchange(&reads, exchange_limits());
    for t in [&whole, &split] {
        assert!(
            t.max_buf_capacity <= 64 * 1024,
            "read buffer grew to {}",
            t.max_buf_capacity
        );
        assert!(
            t.max_unwritten <= EXCHANGE_UNWRITTEN + 512,
            "{} bytes of responses queued",
            t.max_unwritten
        );
    }
    assert_eq!(whole.closed, split.closed);
    assert!(
        normalize(&whole.written) == normalize(&split.written),
        "responses differ by split {reads:?}"
    );
}

/// Small, so fuzzing reaches the flush path.
const EXCHANGE_UNWRITTEN: usize = 1024;

fn exchange_limits() -> ConnLimits {
    ConnLimits {
        max_unwritten_bytes: EXCHANGE_UNWRITTEN,
        ..ConnLimits::default()
    }
}

/// Responses with the parts that may differ by split or time blanked out.
pub fn normalize(bytes: &[u8]) -> Vec<u8> {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut bytes = bytes.to_vec();
    while let Some(at) = bytes.windows(CONTINUE.len()).position(|w| w == CONTINUE) {
        bytes.drain(at..at + CONTINUE.len());
    }
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(6).position(|w| w == b"Date: ") {
        let start = at + pos + 6;
        let end = (start + 29).min(bytes.len());
        bytes[start..end].fill(b'D');
        at = end;
    }
    bytes
}

/// The endpoint parser on arbitrary text: no panic, and what parses prints
/// back (`Display`) as text that parses to the same endpoint.
pub fn endpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(endpoint) = text.parse::<Endpoint>() {
        let shown = endpoint.to_string();
        let again: Endpoint = shown
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} parsed, but its Display {shown:?} does not: {e}"));
        assert_eq!(again, endpoint, "{text:?} -> {shown:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Replays every committed fuzz input (`fuzz/corpus/<target>/` and the
    /// crashes fixed since, `fuzz/regressions/<target>/`) through the same
    /// checks the fuzzer ran.
    #[test]
    fn fuzz_corpus_replays_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        type Check = fn(&[u8]);
        let targets: [(&str, Check); 4] = [
            ("http_request", super::http_request),
            ("chunked_body", super::chunked_body),
            ("hello_exchange", super::hello_exchange),
            ("endpoint", super::endpoint),
        ];
        for (target, check) in targets {
            let mut replayed = 0;
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| check(&data));
                    assert!(outcome.is_ok(), "{} fails", path.display());
                    replayed += 1;
                }
            }
            assert!(replayed > 0, "no corpus for {target}");
        }
    }
}
