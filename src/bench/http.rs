//! The HTTP/1.x response reader: framing on top of `httparse`, fed bytes as
//! they arrive, so a response split over many reads, a chunked body or a
//! truncated reply are each told apart exactly.
//!
//! A response is complete when:
//! 1. its head parses (status line and headers; `1xx` interim responses are
//!    skipped);
//! 2. its body is read: none for `HEAD`, `204` and `304`; `Content-Length`
//!    bytes; a `chunked` body up to its last chunk and trailers; otherwise
//!    everything up to end of stream.
//!
//! Anything else — a bad status line, two different `Content-Length`s, a bad
//! chunk size, end of stream mid-response — is a [`ResponseError`], so a
//! wrong reply is never counted as a success.

use bytes::{Buf, BytesMut};

/// Most header lines a response may have.
const MAX_HEADERS: usize = 64;

/// The largest response head accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why a response is not a valid HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The status line or a header line does not parse.
    #[error("bad response head: {0}")]
    BadHead(&'static str),
    /// The head is longer than [`MAX_HEAD_BYTES`].
    #[error("response head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// `Content-Length` is not a number, or appears twice with different values.
    #[error("bad Content-Length")]
    BadContentLength,
    /// A chunk-size line or a chunk's closing CRLF is wrong.
    #[error("bad chunked body")]
    BadChunk,
    /// The stream ended inside a response.
    #[error("response truncated by end of stream")]
    Truncated,
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Whether the server will close the connection after it (`Connection:
    /// close`, HTTP/1.0 without keep-alive, or a body framed by end of stream).
    pub close: bool,
}

/// Where the reader is inside the current response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (more of) the head.
    Head,
    /// `remaining` body bytes to go.
    Length { remaining: u64 },
    /// Chunked body: waiting for a chunk-size line.
    ChunkSize,
    /// Chunked body: `remaining` bytes of chunk data to go, then CRLF.
    ChunkData { remaining: u64 },
    /// Chunked body: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked body: trailer lines up to an empty line.
    Trailers,
    /// Body up to end of stream.
    UntilEof,
}

/// Reads responses off one connection, one after another.
///
/// Feed it the connection's buffer after each read; it consumes what it has
/// parsed and returns each response once complete.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    phase: Phase,
    /// The current response's status and close flag, once its head is read.
    current: Response,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader::new()
    }
}

impl ResponseReader {
    /// A reader waiting for the first response.
    pub fn new() -> Self {
        ResponseReader {
            phase: Phase::Head,
            current: Response {
                status: 0,
                close: false,
            },
        }
    }

    /// Whether the reader is between responses (no partial response read).
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Head
    }

    /// Parses what `buf` holds, consuming the bytes it uses, and returns the
    /// response once it is complete. `head_only` says the request was `HEAD`
    /// (so the response has no body, whatever its headers say).
    ///
    /// Call it again after a `Some`: `buf` may hold the next (pipelined)
    /// response too.
    ///
    /// # Errors
    ///
    /// A [`ResponseError`] when the bytes are not a valid response; the
    /// connection cannot be used after that.
    pub fn feed(
        &mut self,
        buf: &mut BytesMut,
        head_only: bool,
    ) -> Result<Option<Response>, ResponseError> {
        loop {
            match self.phase {
                Phase::Head => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let Some((len, status, close, body)) = parse_head(buf)? else {
                        if buf.len() > MAX_HEAD_BYTES {
                            return Err(ResponseError::HeadTooLarge);
                        }
                        return Ok(None);
                    };
                    buf.advance(len);
                    if (100..200).contains(&status) && status != 101 {
                        continue; // an interim response: the real one follows
                    }
                    self.current = Response { status, close };
                    let no_body = head_only || status == 204 || status == 304 || status == 101;
                    self.phase = match body {
                        _ if no_body => return Ok(Some(self.finish())),
                        Body::Length(0) => return Ok(Some(self.finish())),
                        Body::Length(n) => Phase::Length { remaining: n },
                        Body::Chunked => Phase::ChunkSize,
                        Body::UntilEof => {
                            self.current.close = true;
                            Phase::UntilEof
                        }
                    };
                }
                Phase::Length { remaining } => {
                    let take = remaining.min(buf.len() as u64);
                    buf.advance(take as usize);
                    if take < remaining {
                        self.phase = Phase::Length {
                            remaining: remaining - take,
                        };
                        return Ok(None);
                    }
                    return Ok(Some(self.finish()));
                }
                Phase::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((len, 0))) => {
                        buf.advance(len);
                        self.phase = Phase::Trailers;
                    }
                    Ok(httparse::Status::Complete((len, size))) => {
                        buf.advance(len);
                        self.phase = Phase::ChunkData { remaining: size };
                    }
                    Ok(httparse::Status::Partial) => {
                        if buf.len() > MAX_HEAD_BYTES {
                            return Err(ResponseError::BadChunk);
                        }
                        return Ok(None);
                    }
                    Err(_) => return Err(ResponseError::BadChunk),
                },
                Phase::ChunkData { remaining } => {
                    let take = remaining.min(buf.len() as u64);
                    buf.advance(take as usize);
                    if take < remaining {
                        self.phase = Phase::ChunkData {
                            remaining: remaining - take,
                        };
                        return Ok(None);
                    }
                    self.phase = Phase::ChunkEnd;
                }
                Phase::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ResponseError::BadChunk);
                    }
                    buf.advance(2);
                    self.phase = Phase::ChunkSize;
                }
                Phase::Trailers => {
                    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if buf.len() > MAX_HEAD_BYTES {
                            return Err(ResponseError::HeadTooLarge);
                        }
                        return Ok(None);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        return Ok(Some(self.finish()));
                    }
                }
                Phase::UntilEof => {
                    buf.clear();
                    return Ok(None);
                }
            }
        }
    }

    /// Tells the reader the stream has ended. Returns the response that end
    /// of stream completes (a body framed by end of stream), `None` when the
    /// reader was between responses.
    ///
    /// # Errors
    ///
    /// [`ResponseError::Truncated`] when the stream ended inside a response.
    /// `buf` holds what was left unparsed.
    pub fn eof(&mut self, buf: &BytesMut) -> Result<Option<Response>, ResponseError> {
        match self.phase {
            Phase::UntilEof => Ok(Some(self.finish())),
            Phase::Head if buf.is_empty() => Ok(None),
            _ => Err(ResponseError::Truncated),
        }
    }

    fn finish(&mut self) -> Response {
        self.phase = Phase::Head;
        self.current
    }
}

/// How a response's body is framed.
enum Body {
    Length(u64),
    Chunked,
    UntilEof,
}

/// Parses a response head: `(head length, status, close, body framing)`, or
/// `None` when the head is not complete yet.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, bool, Body)>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(ResponseError::BadHead("not HTTP/1.x")),
        Err(httparse::Error::Status) => return Err(ResponseError::BadHead("bad status code")),
        Err(_) => return Err(ResponseError::BadHead("bad status or header line")),
    };
    let status = response.code.unwrap_or(0);
    let minor = response.version.unwrap_or(1);
    let mut close = minor == 0;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(ResponseError::BadContentLength)?;
            if length.is_some_and(|l| l != value) {
                return Err(ResponseError::BadContentLength);
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .split(|&b| b == b',')
                .next_back()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    close = false;
                }
            }
        }
    }
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
    let body = match (chunked, length) {
        (true, _) => Body::Chunked,
        (false, Some(n)) => Body::Length(n),
        (false, None) => Body::UntilEof,
    };
    Ok(Some((len, status, close, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!";

    /// Feeds `bytes` in pieces of `step` bytes and collects every response.
    fn feed_in_steps(bytes: &[u8], step: usize) -> Result<Vec<Response>, ResponseError> {
        let mut reader = ResponseReader::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(resp) = reader.feed(&mut buf, false)? {
                out.push(resp);
            }
        }
        if let Some(resp) = reader.eof(&buf)? {
            out.push(resp);
        }
        Ok(out)
    }

    #[test]
    fn a_response_split_over_every_byte_boundary_is_read_once() {
        for step in 1..=OK.len() {
            let got = feed_in_steps(OK, step).unwrap();
            assert_eq!(
                got,
                [Response {
                    status: 200,
                    close: false
                }],
                "step {step}"
            );
        }
    }

    #[test]
    fn pipelined_responses_in_one_read_are_all_returned() {
        let three = [OK, OK, OK].concat();
        assert_eq!(feed_in_steps(&three, three.len()).unwrap().len(), 3);
        assert_eq!(feed_in_steps(&three, 7).unwrap().len(), 3);
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers_are_read_to_the_end() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nHello\r\n8;ext=1\r\n, world!\r\n0\r\nX-Trailer: yes\r\n\r\n";
        let both = [chunked.as_slice(), OK].concat();
        for step in 1..=both.len() {
            let got = feed_in_steps(&both, step).unwrap();
            assert_eq!(got.len(), 2, "step {step}");
            assert!(got.iter().all(|r| r.status == 200));
        }
    }

    #[test]
    fn a_bad_chunk_size_is_an_error() {
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nHello\r\n0\r\n\r\n";
        assert_eq!(feed_in_steps(bad, 4), Err(ResponseError::BadChunk));
        let no_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHelloXX0\r\n\r\n";
        assert_eq!(feed_in_steps(no_crlf, 100), Err(ResponseError::BadChunk));
    }

    #[test]
    fn a_truncated_body_or_head_is_an_error_not_a_success() {
        assert_eq!(
            feed_in_steps(&OK[..OK.len() - 1], 5),
            Err(ResponseError::Truncated)
        );
        assert_eq!(feed_in_steps(&OK[..10], 3), Err(ResponseError::Truncated));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHel";
        assert_eq!(feed_in_steps(chunked, 9), Err(ResponseError::Truncated));
    }

    #[test]
    fn a_bad_status_line_is_an_error() {
        for bad in [
            b"Hello, world!".as_slice(),
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        ] {
            let err = feed_in_steps(bad, bad.len()).unwrap_err();
            assert!(
                matches!(err, ResponseError::BadHead(_)),
                "{:?}: {err:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn conflicting_content_lengths_are_an_error() {
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
        assert_eq!(
            feed_in_steps(bad, 100),
            Err(ResponseError::BadContentLength)
        );
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n";
        assert_eq!(
            feed_in_steps(bad, 100),
            Err(ResponseError::BadContentLength)
        );
    }

    #[test]
    fn a_body_without_length_ends_at_end_of_stream_and_closes() {
        let got = feed_in_steps(b"HTTP/1.1 200 OK\r\n\r\nHello, world!", 4).unwrap();
        assert_eq!(
            got,
            [Response {
                status: 200,
                close: true
            }]
        );
    }

    #[test]
    fn connection_close_and_http10_mean_close() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(feed_in_steps(close, 100).unwrap()[0].close);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(feed_in_steps(old, 100).unwrap()[0].close);
        let old_kept = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(!feed_in_steps(old_kept, 100).unwrap()[0].close);
    }

    #[test]
    fn interim_responses_are_skipped_and_head_has_no_body() {
        let both = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!";
        assert_eq!(feed_in_steps(both, 3).unwrap()[0].status, 404);
        let mut reader = ResponseReader::new();
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"[..]);
        assert_eq!(reader.feed(&mut buf, true).unwrap().unwrap().status, 200);
        assert!(buf.is_empty() && reader.is_idle());
    }

    #[test]
    fn an_endless_head_is_an_error() {
        let mut reader = ResponseReader::new();
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        buf.extend_from_slice(&vec![b'a'; MAX_HEAD_BYTES]);
        assert_eq!(
            reader.feed(&mut buf, false),
            Err(ResponseError::HeadTooLarge)
        );
    }
}
