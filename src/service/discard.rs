//! The discard service (RFC 863): read everything, answer nothing.

use bytes::BytesMut;
use tracing::debug;

use crate::conn::{is_routine_end, Conn, ConnReport, Connection, Read};
use crate::service::Service;

/// The `discard` service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Service for Discard {
    async fn serve<C: Connection>(&self, mut conn: Conn<C>) -> ConnReport {
        conn.stream_timeouts();
        let mut report = ConnReport::default();
        let mut buf = BytesMut::new();
        loop {
            match conn.read(&mut buf).await {
                Ok(Read::Data) => {
                    buf.clear();
                    report.requests += 1;
                    // A sender that never pauses must not hold shutdown up.
                    if conn.is_shutting_down() {
                        return report;
                    }
                }
                Ok(Read::Eof | Read::Shutdown | Read::TimedOut(_)) => return report,
                Err(err) => {
                    report.error = !is_routine_end(&err);
                    debug!(peer = %conn.peer(), %err, "read failed");
                    return report;
                }
            }
        }
    }

    /// "Any received datagram is thrown away": no reply.
    fn reply_to_datagram(&self, _datagram: &[u8], _reply: &mut Vec<u8>) -> bool {
        false
    }
}
