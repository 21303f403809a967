//! The echo service (RFC 862): send back whatever arrives.
//!
//! On a stream, each read is written back as it is, until the client
//! closes; on seqpacket each read is one message, so each message comes
//! back as one message; a datagram comes back byte for byte.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tracing::debug;

use crate::conn::{ConnContext, ConnReport, Connection};
use crate::service::{is_peer_gone, read_more, Read, Service};

/// The `echo` service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service for Echo {
    async fn serve<C: Connection>(&self, mut conn: C, ctx: ConnContext) -> ConnReport {
        let mut report = ConnReport::default();
        let mut buf = BytesMut::new();
        loop {
            match read_more(&mut conn, &mut buf, &ctx.shutdown).await {
                Ok(Read::Data) => {
                    // One read in, one write out: message boundaries survive
                    // on seqpacket.
                    if let Err(err) = conn.write_all(&buf).await {
                        report.error = !is_peer_gone(&err);
                        debug!(peer = %ctx.peer, %err, "write failed");
                        return report;
                    }
                    buf.clear();
                    report.requests += 1;
                }
                Ok(Read::Eof) => {
                    // Half-close: the client has sent everything and all of
                    // it has been echoed; now end our side too.
                    let _ = conn.shutdown().await;
                    return report;
                }
                Ok(Read::Shutdown) => return report,
                Err(err) => {
                    report.error = !is_peer_gone(&err);
                    debug!(peer = %ctx.peer, %err, "read failed");
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
