//! The echo service (RFC 862): send back whatever arrives.
//!
//! On a stream, each read is written back as it is, until the client
//! closes; on seqpacket each read is one message, so each message comes
//! back as one message; a datagram comes back byte for byte.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tracing::debug;

use crate::conn::{ConnContext, ConnReport, Connection};
use crate::service::{is_peer_gone, Service};

/// How much the buffer grows by for a stream read.
const READ_CHUNK: usize = 16 * 1024;

/// The `echo` service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service for Echo {
    async fn serve<C: Connection>(&self, mut conn: C, ctx: ConnContext) -> ConnReport {
        let mut report = ConnReport::default();
        let mut buf = BytesMut::new();
        loop {
            // `&mut`, moved in: the future stays `Send` (`C` need not be `Sync`).
            let waiting = &mut conn;
            let ready = tokio::select! {
                biased;
                ready = std::future::poll_fn(move |cx| waiting.poll_read_ready(cx)) => ready,
                () = ctx.shutdown.cancelled() => return report,
            };
            // `try_read_buf`, not `AsyncRead`: on seqpacket it takes one
            // whole message however long, so one write sends it back as one
            // message.
            buf.reserve(READ_CHUNK);
            let read = ready.and_then(|()| conn.try_read_buf(&mut buf));
            match read {
                Ok(0) => {
                    // Half-close: the client has sent everything and all of
                    // it has been echoed; now end our side too.
                    let _ = conn.shutdown().await;
                    return report;
                }
                Ok(_) => {
                    if let Err(err) = conn.write_all(&buf).await {
                        report.error = !is_peer_gone(&err);
                        debug!(peer = %ctx.peer, %err, "write failed");
                        return report;
                    }
                    buf.clear();
                    report.requests += 1;
                    // Shutting down: this chunk was the request in flight.
                    if ctx.shutdown.is_cancelled() {
                        let _ = conn.shutdown().await;
                        return report;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
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
