//! The tutorial's service: answer `Hello, world!`.
//!
//! Two kinds of client meet it, and each gets what it expects:
//!
//! 1. HTTP/1.0 and 1.1 clients (curl, browsers, wrk) get a valid response:
//!    keep-alive, pipelining (all responses to one read go out in one
//!    write), `HEAD`, request bodies skipped, and 400/431/505 on bad input.
//! 2. Raw clients (the tutorial's own, `nc`), whose first bytes cannot start
//!    an HTTP request line, get exactly the reply bytes and a close, as the
//!    tutorial's server does.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info};

use crate::conn::{ConnContext, ConnReport, Connection};
use crate::escape::Escaped;
use crate::http::{self, BodySkipper, RequestError, Sniff};
use crate::service::{is_peer_gone, linger_close, read_more, Read, Service};

/// The body the tutorial's server sends.
pub const DEFAULT_REPLY: &str = "Hello, world!";

/// How much of a request `-v` shows.
const LOGGED_REQUEST_BYTES: usize = 1024;

/// The `hello` service. Cheap to share: build once, serve every connection.
#[derive(Debug, Clone)]
pub struct Hello {
    body: Bytes,
    /// Everything of a 200 response up to the `Date` value, built once.
    ok_prefix: Box<[u8]>,
}

impl Default for Hello {
    fn default() -> Self {
        Hello::new(DEFAULT_REPLY)
    }
}

/// Which `Connection` header a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionHeader {
    /// None: HTTP/1.1 keeps the connection by default.
    Omitted,
    /// `keep-alive`: an HTTP/1.0 client asked for it.
    KeepAlive,
    /// `close`: we close after this response.
    Close,
}

/// A response owed once the request body has been skipped.
#[derive(Debug, Clone, Copy)]
struct Owed {
    head_only: bool,
    header: ConnectionHeader,
}

impl Hello {
    /// A hello service that answers `reply` (the HTTP body, and the raw reply).
    pub fn new(reply: impl Into<Bytes>) -> Self {
        let body = reply.into();
        let ok_prefix = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nDate: ",
            body.len()
        )
        .into_bytes()
        .into_boxed_slice();
        Hello { body, ok_prefix }
    }

    /// The reply body.
    pub fn reply(&self) -> &[u8] {
        &self.body
    }

    fn push_ok(&self, out: &mut Vec<u8>, owed: Owed) {
        out.extend_from_slice(&self.ok_prefix);
        http::push_date(out);
        out.extend_from_slice(match owed.header {
            ConnectionHeader::Omitted => b"\r\n\r\n".as_slice(),
            ConnectionHeader::KeepAlive => b"\r\nConnection: keep-alive\r\n\r\n",
            ConnectionHeader::Close => b"\r\nConnection: close\r\n\r\n",
        });
        if !owed.head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

fn push_error(out: &mut Vec<u8>, err: RequestError) {
    let (code, reason) = err.status();
    let body = format!("{reason}\n");
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nDate: ",
            body.len()
        )
        .as_bytes(),
    );
    http::push_date(out);
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// What parsing the buffered bytes decided.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Read more bytes.
    Read,
    /// Write what is queued, then close.
    Close { linger: bool },
    /// A raw client: answer it the tutorial's way.
    Raw,
}

/// One connection's HTTP state between reads.
#[derive(Debug)]
struct Exchange {
    /// No request has been seen yet: the first bytes decide raw or HTTP.
    sniffing: bool,
    /// The body of the current request, still arriving.
    body: BodySkipper,
    /// The response to send once that body is over.
    owed: Option<Owed>,
}

impl Hello {
    /// Consumes every complete request in `buf`, queueing responses in `out`.
    fn process(
        &self,
        ex: &mut Exchange,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        ctx: &ConnContext,
        report: &mut ConnReport,
    ) -> Next {
        loop {
            if !ex.body.is_done() {
                match ex.body.skip(buf) {
                    Ok(used) => buf.advance(used),
                    Err(err) => {
                        push_error(out, err);
                        report.error = true;
                        return Next::Close { linger: true };
                    }
                }
                if !ex.body.is_done() {
                    return Next::Read;
                }
                if let Some(owed) = ex.owed.take() {
                    self.push_ok(out, owed);
                    report.requests += 1;
                    if owed.header == ConnectionHeader::Close {
                        return Next::Close {
                            linger: !buf.is_empty(),
                        };
                    }
                }
            }
            if buf.is_empty() {
                return Next::Read;
            }
            if ex.sniffing {
                match http::sniff(buf, ctx.limits.max_header_bytes) {
                    Sniff::Http => ex.sniffing = false,
                    Sniff::Raw => return Next::Raw,
                    Sniff::NeedMore => return Next::Read,
                }
            }
            let head = match http::parse_request_head(buf, ctx.limits.max_header_bytes) {
                Ok(Some(head)) => head,
                Ok(None) => return Next::Read,
                Err(err) => {
                    debug!(peer = %ctx.peer, error = ?err, "bad request");
                    push_error(out, err);
                    report.error = true;
                    return Next::Close { linger: true };
                }
            };
            info!(target: "sockit::request", "{} {}", ctx.peer, Escaped::truncated(&buf[..head.len], LOGGED_REQUEST_BYTES));
            buf.advance(head.len);
            let header = if !head.keep_alive || ctx.shutdown.is_cancelled() {
                ConnectionHeader::Close
            } else if head.minor_version == 0 {
                ConnectionHeader::KeepAlive
            } else {
                ConnectionHeader::Omitted
            };
            let owed = Owed {
                head_only: head.is_head,
                header,
            };
            ex.body = BodySkipper::new(head.body);
            if ex.body.is_done() {
                self.push_ok(out, owed);
                report.requests += 1;
                if header == ConnectionHeader::Close {
                    return Next::Close {
                        linger: !buf.is_empty(),
                    };
                }
            } else {
                if head.expect_continue && buf.is_empty() {
                    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                ex.owed = Some(owed);
            }
        }
    }

    /// The tutorial's reply: the bytes, then close.
    async fn answer_raw<C: Connection>(&self, conn: &mut C, received: &[u8], ctx: &ConnContext) {
        info!(target: "sockit::request", "{} {}", ctx.peer, Escaped::truncated(received, LOGGED_REQUEST_BYTES));
        if conn.write_all(&self.body).await.is_ok() {
            linger_close(conn).await;
        }
    }
}

impl Service for Hello {
    /// The raw reply, whatever the datagram says (the tutorial's server
    /// answers every request the same way).
    fn reply_to_datagram(&self, _datagram: &[u8], reply: &mut Vec<u8>) -> bool {
        reply.extend_from_slice(&self.body);
        true
    }

    async fn serve<C: Connection>(&self, mut conn: C, ctx: ConnContext) -> ConnReport {
        let mut report = ConnReport::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut ex = Exchange {
            sniffing: true,
            body: BodySkipper::Done,
            owed: None,
        };
        loop {
            let next = self.process(&mut ex, &mut buf, &mut out, &ctx, &mut report);
            if next == Next::Raw {
                self.answer_raw(&mut conn, &buf, &ctx).await;
                report.requests += 1;
                return report;
            }
            if !out.is_empty() {
                if let Err(err) = conn.write_all(&out).await {
                    if !is_peer_gone(&err) {
                        report.error = true;
                    }
                    debug!(peer = %ctx.peer, %err, "write failed");
                    return report;
                }
                // Nothing more to answer yet: the connection may now sit
                // idle, and an idle connection keeps no buffer.
                if buf.is_empty() {
                    out = Vec::new();
                } else {
                    out.clear();
                }
            }
            if let Next::Close { linger } = next {
                // Without unread input, dropping the socket sends FIN after
                // the response: no shutdown(2) needed.
                if linger {
                    linger_close(&mut conn).await;
                }
                return report;
            }
            match read_more(&mut conn, &mut buf, &ctx.shutdown).await {
                Ok(Read::Data) => {}
                Ok(Read::Eof) => {
                    // The tutorial answers whatever it received, even nothing,
                    // once the client has finished sending.
                    if ex.sniffing {
                        self.answer_raw(&mut conn, &buf, &ctx).await;
                        report.requests += 1;
                    }
                    return report;
                }
                Ok(Read::Shutdown) => return report,
                Err(err) => {
                    if !is_peer_gone(&err) {
                        report.error = true;
                    }
                    debug!(peer = %ctx.peer, %err, "read failed");
                    return report;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task holds this future for its whole life, idle
    /// or not: it must stay small (nginx needs about 0.5 KiB per idle
    /// keep-alive connection).
    #[test]
    fn a_connection_future_is_small() {
        let (limits, shutdown) = (
            std::sync::Arc::new(crate::server::Limits::default()),
            tokio_util::sync::CancellationToken::new(),
        );
        let ctx = ConnContext {
            peer: crate::conn::PeerAddr::Unix(None),
            shutdown,
            limits,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, _b) = tokio::net::UnixStream::pair().unwrap();
            let hello = Hello::default();
            let fut = hello.serve(a, ctx);
            let size = std::mem::size_of_val(&fut);
            assert!(size <= 512, "the connection future is {size} bytes");
        });
    }
}
