//! The echo service (RFC 862): send back whatever arrives.
//!
//! On a stream, each read is written back as it is, until the client
//! closes; on seqpacket each read is one message, so each message comes
//! back as one message; a datagram comes back byte for byte.

use bytes::BytesMut;
use tracing::debug;

use crate::conn::{is_routine_end, Conn, ConnReport, Connection, Read};
use crate::service::Service;

/// The `echo` service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service for Echo {
    async fn serve<C: Connection>(&self, mut conn: Conn<C>) -> ConnReport {
        conn.stream_timeouts();
        let mut report = ConnReport::default();
        let mut buf = BytesMut::new();
        loop {
            // `read_message`: on seqpacket one whole message, however long,
            // so one write sends it back as one message.
            match conn.read_message(&mut buf).await {
                Ok(Read::Data) => {
                    if let Err(err) = conn.write_all(&buf).await {
                        report.error = !is_routine_end(&err);
                        debug!(peer = %conn.peer(), %err, "write failed");
                        return report;
                    }
                    buf.clear();
                    report.requests += 1;
                    // Shutting down: this chunk was the request in flight.
                    if conn.is_shutting_down() {
                        let _ = conn.shutdown_write().await;
                        return report;
                    }
                }
                Ok(Read::Eof) => {
                    // Half-close: the client has sent everything and all of
                    // it has been echoed; now end our side too.
                    let _ = conn.shutdown_write().await;
                    return report;
                }
                Ok(Read::Shutdown) => return report,
                Ok(Read::TimedOut(timeout)) => {
                    debug!(peer = %conn.peer(), "closing: {timeout}");
                    return report;
                }
                Err(err) => {
                    report.error = !is_routine_end(&err);
                    debug!(peer = %conn.peer(), %err, "read failed");
                    return report;
                }
            }
        }
    }

    fn reply_to_datagram(&self, datagram: &[u8], reply: &mut Vec<u8>) -> bool {
        reply.extend_from_slice(datagram);
        true
    }
}
