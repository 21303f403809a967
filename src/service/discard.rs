//! The discard service (RFC 863): read everything, answer nothing.

use bytes::BytesMut;
use tracing::debug;

use crate::conn::{ConnContext, ConnReport, Connection};
use crate::service::{is_peer_gone, read_more, Read, Service};

/// The `discard` service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Service for Discard {
    async fn serve<C: Connection>(&self, mut conn: C, ctx: ConnContext) -> ConnReport {
        let mut report = ConnReport::default();
        let mut buf = BytesMut::new();
        loop {
            match read_more(&mut conn, &mut buf, &ctx.shutdown).await {
                Ok(Read::Data) => {
                    buf.clear();
                    report.requests += 1;
                    // A sender that never pauses must not hold shutdown up.
                    if ctx.shutdown.is_cancelled() {
                        return report;
                    }
                }
                Ok(Read::Eof | Read::Shutdown) => return report,
                Err(err) => {
                    report.error = !is_peer_gone(&err);
                    debug!(peer = %ctx.peer, %err, "read failed");
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
