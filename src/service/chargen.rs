//! The character generator service (RFC 864).
//!
//! The RFC's pattern: the 95 printable ASCII characters in a ring, each
//! line 72 of them starting one further along, ended by CR LF. On a stream
//! the lines flow until the client closes (or the server shuts down); a
//! datagram gets back one datagram of a random length from 0 to 512
//! characters, whatever it contained.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::debug;

use crate::conn::{is_routine_end, Conn, ConnReport, Connection};
use crate::service::Service;

/// Characters per line, before CR LF.
const LINE: usize = 72;
/// Printable ASCII, `' '` to `'~'`.
const RING: usize = 95;
/// The longest datagram reply, per the RFC.
pub const MAX_DATAGRAM_CHARS: usize = 512;

/// The `chargen` service.
#[derive(Debug)]
pub struct Chargen {
    /// All 95 lines of the pattern, one full cycle (7,030 bytes): written
    /// whole, again and again.
    cycle: Box<[u8]>,
    /// State of the length generator for datagram replies.
    seed: AtomicU64,
}

impl Default for Chargen {
    fn default() -> Self {
        let mut cycle = Vec::with_capacity(RING * (LINE + 2));
        for start in 0..RING {
            cycle.extend((0..LINE).map(|i| b' ' + ((start + i) % RING) as u8));
            cycle.extend_from_slice(b"\r\n");
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Chargen {
            cycle: cycle.into_boxed_slice(),
            seed: AtomicU64::new(nanos | 1),
        }
    }
}

impl Chargen {
    /// A length from 0 to 512, from a xorshift generator: lengths need not
    /// be unpredictable, only spread out.
    fn next_len(&self) -> usize {
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        (x % (MAX_DATAGRAM_CHARS as u64 + 1)) as usize
    }

    /// The first `len` characters of the pattern.
    pub fn pattern(&self, len: usize) -> &[u8] {
        &self.cycle[..len.min(self.cycle.len())]
    }
}

impl Service for Chargen {
    async fn serve<C: Connection>(&self, mut conn: Conn<C>) -> ConnReport {
        let mut report = ConnReport::default();
        // Each cycle is a request; a client that stops reading is dropped at
        // the write timeout, and shutdown ends a write at once.
        loop {
            match conn.write_all_or_shutdown(&self.cycle).await {
                Ok(true) => report.requests += 1,
                Ok(false) => break,
                Err(err) => {
                    // The client closing is how chargen normally ends.
                    report.error = !is_routine_end(&err);
                    debug!(peer = %conn.peer(), %err, "chargen stopped");
                    return report;
                }
            }
        }
        let _ = conn.shutdown_write().await;
        report
    }

    fn reply_to_datagram(&self, _datagram: &[u8], reply: &mut Vec<u8>) -> bool {
        reply.extend_from_slice(self.pattern(self.next_len()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_rfc_pattern() {
        let chargen = Chargen::default();
        let text = std::str::from_utf8(&chargen.cycle).unwrap();
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 95);
        let first: String = (0..72u8).map(|i| char::from(b' ' + i)).collect();
        assert_eq!(lines[0], first);
        assert!(lines[1].starts_with("!\"#$"));
        assert!(lines.iter().all(|l| l.len() == 72));
        assert!(
            lines[94].starts_with("~ !\""),
            "the ring wraps: {}",
            lines[94]
        );
    }

    #[test]
    fn datagram_lengths_stay_within_0_to_512_and_vary() {
        let chargen = Chargen::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut reply = Vec::new();
            assert!(chargen.reply_to_datagram(b"", &mut reply));
            assert!(reply.len() <= MAX_DATAGRAM_CHARS);
            assert_eq!(&reply[..], &chargen.cycle[..reply.len()]);
            seen.insert(reply.len());
        }
        assert!(seen.len() > 100, "lengths barely vary: {}", seen.len());
    }
}
