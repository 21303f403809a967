//! HTTP/1.x request framing for the services: where a request head ends,
//! whether the connection stays open, and how long the body is. Parsing is
//! `httparse`'s; this module only applies RFC 9112's rules on top of it.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many header lines a request may have before it gets 431.
pub const MAX_HEADERS: usize = 100;

/// The longest chunk-size or trailer line accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// What a request head says that a server must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes from the start of the buffer to the end of the blank line.
    pub len: usize,
    /// `HEAD` requests get no response body.
    pub is_head: bool,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The request body that follows the head.
    pub body: BodyLength,
    /// `Expect: 100-continue` was sent: the client waits for a `100` before
    /// sending the body.
    pub expect_continue: bool,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// `Content-Length: N`, or no body (0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a request cannot be served; each maps to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// 400: the request is malformed.
    BadRequest,
    /// 431: the header section is larger than the limit.
    HeadersTooLarge,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl RequestError {
    /// The status line's code and reason.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RequestError::BadRequest => (400, "Bad Request"),
            RequestError::HeadersTooLarge => (431, "Request Header Fields Too Large"),
            RequestError::VersionNotSupported => (505, "HTTP Version Not Supported"),
        }
    }
}

/// Parses the request head at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed and the head is still
/// within `max_head_bytes`.
///
/// # Errors
///
/// [`RequestError::HeadersTooLarge`] when the head is (or would grow) larger
/// than `max_head_bytes` or has more than [`MAX_HEADERS`] lines;
/// [`RequestError::VersionNotSupported`] for any version but 1.0 and 1.1; and
/// [`RequestError::BadRequest`] for anything else malformed, including
/// conflicting or invalid `Content-Length` and `Transfer-Encoding` headers
/// (the request-smuggling cases of RFC 9112 §6.3).
pub fn parse_request_head(
    buf: &[u8],
    max_head_bytes: usize,
) -> Result<Option<RequestHead>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= max_head_bytes {
                Err(RequestError::HeadersTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadersTooLarge),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(RequestError::BadRequest),
    };
    if len > max_head_bytes {
        return Err(RequestError::HeadersTooLarge);
    }
    let minor_version = req.version.unwrap_or(1);
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut expect_continue = false;
    for header in req.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                connection_close |= token.eq_ignore_ascii_case(b"close");
                connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = parse_content_length(header.value)?;
            if content_length.is_some_and(|seen| seen != value) {
                return Err(RequestError::BadRequest);
            }
            content_length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the last coding decides whether the body is chunked.
            chunked = header
                .value
                .split(|&b| b == b',')
                .next_back()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        }
    }
    let body = match (transfer_encoding, content_length) {
        // Both at once is how requests are smuggled past proxies: refuse.
        (true, Some(_)) => return Err(RequestError::BadRequest),
        // A body whose end cannot be known cannot be skipped.
        (true, None) if !chunked => return Err(RequestError::BadRequest),
        (true, None) => BodyLength::Chunked,
        (false, length) => BodyLength::Length(length.unwrap_or(0)),
    };
    let keep_alive = if minor_version == 0 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    Ok(Some(RequestHead {
        len,
        is_head: req.method == Some("HEAD"),
        minor_version,
        keep_alive,
        body,
        expect_continue: expect_continue && minor_version == 1,
    }))
}

/// httparse reports any version it cannot read as `Version`; only a
/// well-formed `HTTP/x.y` that is not 1.0/1.1 is "not supported".
///
/// The verdict depends only on the version's bytes up to the first one
/// httparse rejected, so it is the same however the request was split into
/// reads (found by fuzzing: an earlier version looked at the whole rest of
/// the line, and answered `GET / HTTP/1./1.1\r HTTP/1.1` with 505 when it
/// came in one read but 400 when it came in two).
fn version_error(buf: &[u8]) -> RequestError {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or(b"");
    match version {
        // HTTP/2, HTTP/3, …: a major version other than 1.
        [b'H', b'T', b'T', b'P', b'/', major, ..] if major.is_ascii_digit() && *major != b'1' => {
            RequestError::VersionNotSupported
        }
        // HTTP/1.2 … HTTP/1.9.
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, ..] if minor.is_ascii_digit() => {
            RequestError::VersionNotSupported
        }
        _ => RequestError::BadRequest,
    }
}

fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return Err(RequestError::BadRequest);
    }
    Ok(value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Whether `buf` starts with an HTTP request line.
///
/// 1. The first bytes must be a method token (RFC 9110 `tchar`s) and a
///    space: the tutorial's client, sending `Hello, world`, fails at the
///    comma at once.
/// 2. Once the first line is complete, it must end in `HTTP/…`: text such
///    as `hi there` is not HTTP either.
///
/// A first line still incomplete after `max_head_bytes` is left to the HTTP
/// parser, which answers 431.
pub fn sniff(buf: &[u8], max_head_bytes: usize) -> Sniff {
    // No registered method is longer than this; a longer "token" is text.
    const MAX_METHOD: usize = 24;
    let mut method_end = None;
    for (i, &b) in buf.iter().enumerate().take(MAX_METHOD + 1) {
        if b == b' ' {
            if i == 0 {
                return Sniff::Raw;
            }
            method_end = Some(i);
            break;
        }
        if !is_tchar(b) {
            return Sniff::Raw;
        }
    }
    let Some(method_end) = method_end else {
        return if buf.len() > MAX_METHOD {
            Sniff::Raw
        } else {
            Sniff::NeedMore
        };
    };
    let rest = &buf[method_end..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
            let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
            if line.len() > 1 && version.starts_with(b"HTTP/") {
                Sniff::Http
            } else {
                Sniff::Raw
            }
        }
        None if buf.len() >= max_head_bytes => Sniff::Http,
        None => Sniff::NeedMore,
    }
}

/// The verdict of [`sniff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// The bytes start like a request line.
    Http,
    /// They cannot start one.
    Raw,
    /// Too few bytes to tell.
    NeedMore,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Skips a request body as its bytes arrive, so that the bytes after it are
/// read as the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySkipper {
    /// This many bytes of a `Content-Length` body are left.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// This many bytes of chunk data are left.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data.
    ChunkDataEnd,
    /// Expecting trailer lines or the final blank line.
    Trailer,
    /// The body is over.
    Done,
}

impl BodySkipper {
    /// The skipper for a body of this length.
    pub fn new(body: BodyLength) -> Self {
        match body {
            BodyLength::Length(0) => BodySkipper::Done,
            BodyLength::Length(n) => BodySkipper::Length(n),
            BodyLength::Chunked => BodySkipper::ChunkSize,
        }
    }

    /// Consumes as much of the body as `buf` holds and returns how many
    /// bytes were body; check [`BodySkipper::is_done`] afterwards.
    ///
    /// # Errors
    ///
    /// [`RequestError::BadRequest`] when the chunked framing is broken.
    pub fn skip(&mut self, buf: &[u8]) -> Result<usize, RequestError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match *self {
                BodySkipper::Done => return Ok(pos),
                BodySkipper::Length(n) | BodySkipper::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    pos += take as usize;
                    let left = n - take;
                    *self = match (*self, left) {
                        (BodySkipper::Length(_), 0) => BodySkipper::Done,
                        (BodySkipper::Length(_), _) => BodySkipper::Length(left),
                        (_, 0) => BodySkipper::ChunkDataEnd,
                        _ => BodySkipper::ChunkData(left),
                    };
                    if left > 0 {
                        return Ok(pos);
                    }
                }
                BodySkipper::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        pos += used;
                        *self = BodySkipper::Trailer;
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        pos += used;
                        *self = BodySkipper::ChunkData(size);
                    }
                    Ok(httparse::Status::Partial) if rest.len() < MAX_CHUNK_LINE => return Ok(pos),
                    _ => return Err(RequestError::BadRequest),
                },
                BodySkipper::ChunkDataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        *self = BodySkipper::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(pos),
                    _ => return Err(RequestError::BadRequest),
                },
                BodySkipper::Trailer => match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        pos += end + 1;
                        if rest[..end] == *b"" || rest[..end] == *b"\r" {
                            *self = BodySkipper::Done;
                        }
                    }
                    None if rest.len() < MAX_CHUNK_LINE => return Ok(pos),
                    None => return Err(RequestError::BadRequest),
                },
            }
        }
    }

    /// Whether the whole body has been skipped.
    pub fn is_done(&self) -> bool {
        *self == BodySkipper::Done
    }
}

/// Appends the current `Date` header value (RFC 9110 IMF-fixdate, always 29
/// bytes) to `out`.
///
/// Formatting a date per response would cost more than the rest of the
/// response; the value is cached per thread and redone once a second.
pub fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cache.1.copy_from_slice(text.as_bytes());
                cache.0 = secs;
            }
        }
        out.extend_from_slice(&cache.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    fn head(req: &[u8]) -> RequestHead {
        parse_request_head(req, MAX).unwrap().unwrap()
    }

    #[test]
    fn http11_keeps_alive_unless_told_to_close() {
        let h = head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(h.keep_alive);
        assert_eq!(h.minor_version, 1);
        assert_eq!(h.body, BodyLength::Length(0));
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n").keep_alive);
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn partial_heads_wait_for_more_until_the_limit() {
        assert_eq!(parse_request_head(b"GET / HTTP/1.1\r\nHo", MAX), Ok(None));
        let big = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 9000]].concat();
        assert_eq!(
            parse_request_head(&big, MAX),
            Err(RequestError::HeadersTooLarge)
        );
    }

    #[test]
    fn malformed_and_smuggling_requests_are_refused() {
        for bad in [
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".as_slice(),
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                parse_request_head(bad, MAX),
                Err(RequestError::BadRequest),
                "{}",
                crate::escape::Escaped::new(bad)
            );
        }
    }

    #[test]
    fn other_versions_are_not_supported() {
        assert_eq!(
            parse_request_head(b"GET / HTTP/2.0\r\n\r\n", MAX),
            Err(RequestError::VersionNotSupported)
        );
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.2\r\n\r\n", MAX),
            Err(RequestError::VersionNotSupported)
        );
    }

    #[test]
    fn the_version_verdict_does_not_depend_on_how_much_has_arrived() {
        // From the fuzzer: the text after the version must not matter.
        let full = b"GET / HTTP/1./1.1\r HTTP/1.1\r\nHost: x\r\n\r\n";
        for end in 14..full.len() {
            assert_eq!(
                parse_request_head(&full[..end], MAX),
                Err(RequestError::BadRequest),
                "{end}"
            );
        }
        let full = b"GET / HTTP/2x\r\n\r\n";
        for end in 12..full.len() {
            assert_eq!(
                parse_request_head(&full[..end], MAX),
                Err(RequestError::VersionNotSupported),
                "{end}"
            );
        }
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_request_head(&req, 1 << 20),
            Err(RequestError::HeadersTooLarge)
        );
    }

    #[test]
    fn sniff_tells_raw_clients_from_http() {
        let sniff = |buf: &[u8]| sniff(buf, 64);
        assert_eq!(sniff(b"Hello, world"), Sniff::Raw);
        assert_eq!(sniff(b"hello\n"), Sniff::Raw);
        assert_eq!(sniff(b"hi there\n"), Sniff::Raw);
        assert_eq!(sniff(b"GET /\r\n"), Sniff::Raw);
        assert_eq!(sniff(b" GET"), Sniff::Raw);
        assert_eq!(sniff(b"\x16\x03\x01"), Sniff::Raw);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff(b"GET / HTTP/2.0\n"), Sniff::Http);
        assert_eq!(sniff(b"M-SEARCH * HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff(b"GET / HTTP/1.1"), Sniff::NeedMore);
        assert_eq!(sniff(b"GE"), Sniff::NeedMore);
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(&[b'a'; 40]), Sniff::Raw);
        // A first line longer than the head limit goes to the parser (431).
        let long = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(sniff(&long), Sniff::Http);
    }

    fn skip_all(body: BodyLength, input: &[u8], split: usize) -> (BodySkipper, usize) {
        let mut skipper = BodySkipper::new(body);
        let first = skipper.skip(&input[..split]).unwrap();
        // A real reader keeps unconsumed bytes and appends the next read.
        let second = skipper.skip(&input[first..]).unwrap();
        (skipper, first + second)
    }

    #[test]
    fn chunked_bodies_are_skipped_at_any_split() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nGET";
        let body_len = body.len() - 3;
        for split in 0..=body.len() {
            let (skipper, used) = skip_all(BodyLength::Chunked, body, split);
            assert!(skipper.is_done(), "split {split}: {skipper:?}");
            assert_eq!(used, body_len, "split {split}");
        }
    }

    #[test]
    fn length_bodies_stop_at_their_end() {
        let (skipper, used) = skip_all(BodyLength::Length(5), b"helloGET /", 2);
        assert!(skipper.is_done());
        assert_eq!(used, 5);
    }

    #[test]
    fn broken_chunk_framing_is_a_bad_request() {
        let mut skipper = BodySkipper::new(BodyLength::Chunked);
        assert_eq!(skipper.skip(b"zz\r\n"), Err(RequestError::BadRequest));
        let mut skipper = BodySkipper::new(BodyLength::Chunked);
        assert_eq!(skipper.skip(b"2\r\nabXY"), Err(RequestError::BadRequest));
    }

    #[test]
    fn date_is_an_imf_fixdate() {
        let mut out = Vec::new();
        push_date(&mut out);
        assert_eq!(out.len(), 29);
        assert!(out.ends_with(b" GMT"));
        httpdate::parse_http_date(std::str::from_utf8(&out).unwrap()).unwrap();
    }
}
