//! HTTP/1.x request framing for the services: where a request head ends,
//! whether the connection stays open, and how long the body is. Parsing is
//! `httparse`'s; this module applies RFC 9112's rules on top of it, and
//! reads chunked bodies with a scanner of its own ([`body`]).
//!
//! Each rule, with the section it comes from (the README's HTTP section
//! lists the same table):
//!
//! | rule | RFC 9112 | answer |
//! |---|---|---|
//! | request line: `method SP target SP HTTP/1.x`, single spaces, exact case | §3 | 400 |
//! | a well-formed version other than 1.0 and 1.1 | §2.3, RFC 9110 §15.6.6 | 505 |
//! | empty lines before the request line are ignored | §2.2 | – |
//! | the request line does not fit in the head limit | §3 (RFC 9110 §15.5.15) | 414 |
//! | the head is over the limit, or has over [`MAX_HEADERS`] lines | RFC 6585 §5 | 431 |
//! | target: origin-form `/…`, absolute-form `scheme:…`, `*` only for `OPTIONS` | §3.2 | 400 |
//! | `CONNECT` (this server tunnels nothing; a 2xx would mean "tunnel open") | RFC 9110 §9.3.6 | 501 |
//! | HTTP/1.1 without `Host`; two `Host` lines; an invalid `Host` value | §3.2 | 400 |
//! | whitespace between a field name and the colon; obs-fold; bare CR | §5.1, §5.2, §2.2 | 400 |
//! | `Content-Length` not `1*DIGIT`, or given twice | §6.3, RFC 9110 §8.6 | 400 |
//! | `Transfer-Encoding` and `Content-Length` together | §6.3 (3) | 400 |
//! | `Transfer-Encoding` in HTTP/1.0 | §6.1 | 400 |
//! | `Transfer-Encoding` whose final coding is not `chunked`, or `chunked` twice | §6.3 (4), §6.1 | 400 |
//! | a transfer coding this server does not know | §6.1 | 501 |
//! | chunked framing (size, extensions, CRLFs, trailers) off the grammar | §7.1 | 400 |
//! | a body cut off by the end of the stream (a head cut off: closed without an answer) | §8 | 400 |
//!
//! Every error answer is followed by a close: after a framing error, the
//! bytes that follow cannot be trusted to start a request (one reading of
//! the bytes, never two).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

pub mod body;
pub mod host;

pub use body::{BodyLength, BodySkipper};

/// How many header lines a request may have before it gets 431.
pub const MAX_HEADERS: usize = 100;

/// What a request head says that a server must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes from the start of the buffer to the end of the blank line,
    /// empty lines before the request line included.
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

/// Why a request cannot be served; each maps to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// 400: the request is malformed.
    BadRequest,
    /// 414: the request line is longer than the head limit.
    UriTooLong,
    /// 431: the header section is larger than the limit.
    HeadersTooLarge,
    /// 501: a method (`CONNECT`) or transfer coding this server does not
    /// implement.
    NotImplemented,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl RequestError {
    /// The status line's code and reason.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RequestError::BadRequest => (400, "Bad Request"),
            RequestError::UriTooLong => (414, "URI Too Long"),
            RequestError::HeadersTooLarge => (431, "Request Header Fields Too Large"),
            RequestError::NotImplemented => (501, "Not Implemented"),
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
/// A [`RequestError`] for each rule of the module's table: 414 when the
/// request line does not fit in `max_head_bytes`, 431 when the head does
/// not (or has more than [`MAX_HEADERS`] lines), 505 for a version other
/// than 1.0 and 1.1, 501 for `CONNECT` and unknown transfer codings, and
/// 400 for anything else malformed, including the request-smuggling cases
/// of RFC 9112 §6.3.
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
                Err(too_large(buf, max_head_bytes))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            return match version_error(buf) {
                Some(err) => Err(err),
                None if buf.len() >= max_head_bytes => Err(too_large(buf, max_head_bytes)),
                None => Ok(None),
            };
        }
        Err(_) => return Err(RequestError::BadRequest),
    };
    if len > max_head_bytes {
        return Err(too_large(&buf[..len], max_head_bytes));
    }
    let minor_version = req.version.unwrap_or(1);
    let method = req.method.unwrap_or("");
    if method == "CONNECT" {
        return Err(RequestError::NotImplemented);
    }
    check_target(req.path.unwrap_or("").as_bytes(), method)?;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut content_length: Option<u64> = None;
    let mut codings = Codings::default();
    let mut expect_continue = false;
    let mut hosts = 0;
    for header in req.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                connection_close |= token.eq_ignore_ascii_case(b"close");
                connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // Two lines, even equal ones, are refused: a proxy that took
            // the other line would frame the body differently.
            if content_length.is_some() {
                return Err(RequestError::BadRequest);
            }
            content_length = Some(parse_content_length(header.value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings.add(header.value)?;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if hosts > 1 || !host::is_valid_host(header.value.trim_ascii()) {
                return Err(RequestError::BadRequest);
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        }
    }
    if minor_version == 1 && hosts == 0 {
        return Err(RequestError::BadRequest);
    }
    let body = match (codings.present, content_length) {
        // Both at once is how requests are smuggled past proxies: refuse.
        (true, Some(_)) => return Err(RequestError::BadRequest),
        // HTTP/1.0 has no transfer codings: its framing is faulty (§6.1).
        (true, None) if minor_version == 0 => return Err(RequestError::BadRequest),
        (true, None) => codings.body()?,
        (false, length) => BodyLength::Length(length.unwrap_or(0)),
    };
    let keep_alive = if minor_version == 0 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    Ok(Some(RequestHead {
        len,
        is_head: method == "HEAD",
        minor_version,
        keep_alive,
        body,
        expect_continue: expect_continue && minor_version == 1,
    }))
}

/// Which limit a head over `max_head_bytes` broke: the request line itself
/// (414, as nginx answers a line longer than its buffer) or the headers
/// after it (431).
fn too_large(buf: &[u8], max_head_bytes: usize) -> RequestError {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    if start == buf.len() {
        // Nothing but empty lines: no request at all.
        return RequestError::BadRequest;
    }
    match buf[start..].iter().position(|&b| b == b'\n') {
        Some(end) if start + end < max_head_bytes => RequestError::HeadersTooLarge,
        _ => RequestError::UriTooLong,
    }
}

/// The request-target's form must fit the method (RFC 9112 §3.2): origin-form
/// (`/path?query`) or absolute-form (`http://host/path`) for every method,
/// asterisk-form (`*`) for `OPTIONS` only. httparse has already checked the
/// bytes themselves.
fn check_target(target: &[u8], method: &str) -> Result<(), RequestError> {
    let valid = match target {
        [b'/', ..] => true,
        b"*" => method == "OPTIONS",
        _ => is_absolute_form(target),
    };
    if valid {
        Ok(())
    } else {
        Err(RequestError::BadRequest)
    }
}

/// `scheme ":" …` with `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
/// (RFC 3986 §3.1).
fn is_absolute_form(target: &[u8]) -> bool {
    let Some(colon) = target.iter().position(|&b| b == b':') else {
        return false;
    };
    let scheme = &target[..colon];
    scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// The transfer codings of a request, over all its `Transfer-Encoding`
/// lines (a field sent as several lines is one comma-separated list, RFC
/// 9110 §5.3).
#[derive(Debug, Default)]
struct Codings {
    present: bool,
    /// How many times `chunked` appears.
    chunked: u32,
    /// Whether the last coding so far is `chunked`.
    chunked_last: bool,
    /// A coding this server does not know.
    unknown: bool,
    /// How many codings there are.
    count: u32,
}

impl Codings {
    fn add(&mut self, value: &[u8]) -> Result<(), RequestError> {
        self.present = true;
        // Empty list elements are allowed and ignored (RFC 9110 §5.6.1.2).
        for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if coding.is_empty() {
                continue;
            }
            // `transfer-coding = token *( OWS ";" OWS transfer-parameter )`:
            // only the name matters here, and `chunked` takes no parameter.
            let name = coding.split(|&b| b == b';').next().unwrap_or(b"");
            let name = name.trim_ascii();
            if name.is_empty() || !name.iter().copied().all(is_tchar) {
                return Err(RequestError::BadRequest);
            }
            self.count += 1;
            self.chunked_last = name.eq_ignore_ascii_case(b"chunked");
            if self.chunked_last {
                self.chunked += 1;
                if name.len() != coding.len() {
                    return Err(RequestError::BadRequest);
                }
            } else if !KNOWN_CODINGS.iter().any(|k| name.eq_ignore_ascii_case(k)) {
                self.unknown = true;
            }
        }
        Ok(())
    }

    /// The body's framing: chunked last and once (§6.3 (4), §6.1), and
    /// every other coding one this server knows (§6.1: else 501).
    fn body(&self) -> Result<BodyLength, RequestError> {
        if !self.chunked_last || self.chunked > 1 {
            return Err(RequestError::BadRequest);
        }
        if self.unknown {
            return Err(RequestError::NotImplemented);
        }
        Ok(BodyLength::Chunked)
    }
}

/// The transfer codings of the IANA registry besides `chunked` (RFC 9112
/// §7): a body in them is framed by the chunked coding after them, which is
/// all a server that skips bodies needs.
const KNOWN_CODINGS: [&[u8]; 5] = [b"gzip", b"deflate", b"compress", b"x-gzip", b"x-compress"];

/// httparse reports any version it cannot read as `Version`; only a
/// well-formed `HTTP/x.y` (RFC 9112 §2.3: `"HTTP/" DIGIT "." DIGIT`) that is
/// not 1.0/1.1 is "not supported" (505), anything else is malformed (400).
///
/// The verdict waits for the whole request line (`None` until then): only
/// then can `HTTP/0.9` (505) be told from `HTTP/01.1` (400). So it is the
/// same however the request was split into reads (found by fuzzing: an
/// earlier version looked at whatever had arrived, and answered
/// `GET / HTTP/1./1.1\r HTTP/1.1` with 505 in one read but 400 in two).
fn version_error(buf: &[u8]) -> Option<RequestError> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let buf = &buf[start..];
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or(b"");
    Some(match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            RequestError::VersionNotSupported
        }
        _ => RequestError::BadRequest,
    })
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6); more than 18 digits could
/// overflow and is no body anyone sends.
fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return Err(RequestError::BadRequest);
    }
    Ok(value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Methods of the IANA registry that clients send: a first line starting
/// with one of these and SP or HTAB is HTTP, however broken the rest is, and
/// gets 400 rather than the raw reply.
const KNOWN_METHODS: [&[u8]; 17] = [
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
];

/// Whether `buf` starts with an HTTP request.
///
/// 1. Empty lines (CRLF or LF) before the request line are skipped (RFC
///    9112 §2.2).
/// 2. A registered method followed by SP or HTAB is HTTP: whatever follows,
///    the parser judges it (a malformed line gets 400).
/// 3. Otherwise the first bytes must be a method token (RFC 9110 `tchar`s)
///    and a space: the tutorial's client, sending `Hello, world`, fails at
///    the comma at once.
/// 4. And once that first line is complete, it must end in `HTTP/…`: text
///    such as `hi there` is not HTTP either.
///
/// A first line still incomplete after `max_head_bytes` is left to the HTTP
/// parser, which answers 414.
pub fn sniff(buf: &[u8], max_head_bytes: usize) -> Sniff {
    // No registered method is longer than this; a longer "token" is text.
    const MAX_METHOD: usize = 24;
    let mut start = 0;
    loop {
        match &buf[start..] {
            [b'\r', b'\n', ..] => start += 2,
            [b'\n', ..] => start += 1,
            [] | [b'\r'] => return need_more(buf, max_head_bytes),
            _ => break,
        }
    }
    let line = &buf[start..];
    for method in KNOWN_METHODS {
        if let Some(rest) = line.strip_prefix(method) {
            match rest.first() {
                Some(b' ' | b'\t') => return Sniff::Http,
                None => return need_more(buf, max_head_bytes),
                Some(_) => {}
            }
        }
    }
    let mut method_end = None;
    for (i, &b) in line.iter().enumerate().take(MAX_METHOD + 1) {
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
        return if line.len() > MAX_METHOD {
            Sniff::Raw
        } else {
            need_more(buf, max_head_bytes)
        };
    };
    let rest = &line[method_end..];
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

/// More bytes are needed to tell, unless the buffer is already at the head
/// limit: then the parser judges it, so a buffer never grows past the limit.
fn need_more(buf: &[u8], max_head_bytes: usize) -> Sniff {
    if buf.len() >= max_head_bytes {
        Sniff::Http
    } else {
        Sniff::NeedMore
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

/// Whether the request at the start of `buf` (after empty lines) is a
/// `HEAD`, judged from its method alone, so that even a malformed one gets
/// an answer without a body.
pub fn is_head_request(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    matches!(buf[start..], [b'H', b'E', b'A', b'D', b' ' | b'\t', ..])
}

/// `tchar` (RFC 9110 §5.6.2): the bytes of a token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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
        assert!(!head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(
            !head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, Close\r\n\r\n").keep_alive
        );
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
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".as_slice(),
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
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

    /// Asserts the verdict on each request, whole and at every prefix that
    /// the parser must already judge the same way (a verdict may not depend
    /// on how the bytes were split into reads).
    #[track_caller]
    fn assert_verdicts(cases: &[(&[u8], RequestError)]) {
        for (req, want) in cases {
            let got = parse_request_head(req, MAX);
            assert_eq!(got, Err(*want), "{}", crate::escape::Escaped::new(req));
        }
    }

    /// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
    /// code to any HTTP/1.1 request message that lacks a Host header field
    /// and to any request message that contains more than one Host header
    /// field line or a Host header field with an invalid field value."
    #[test]
    fn host_is_required_once_and_valid() {
        use RequestError::BadRequest;
        assert_verdicts(&[
            (b"GET / HTTP/1.1\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", BadRequest),
        ]);
        assert_eq!(head(b"GET / HTTP/1.0\r\n\r\n").minor_version, 0);
        assert!(head(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").keep_alive);
        assert!(head(b"GET / HTTP/1.1\r\nHost: [::1]:8888\r\n\r\n").keep_alive);
    }

    /// RFC 9112 §6.1 and §6.3: the framing cases proxies and servers have
    /// disagreed on (PortSwigger's "HTTP Desync Attacks" obfuscations among
    /// them).
    #[test]
    fn transfer_encoding_is_chunked_last_once_and_never_with_content_length() {
        use RequestError::{BadRequest, NotImplemented};
        const P: &str = "POST / HTTP/1.1\r\nHost: x\r\n";
        let cases: Vec<(String, RequestError)> = [
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                BadRequest,
            ),
            (
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                BadRequest,
            ),
            ("Transfer-Encoding: chunked, gzip\r\n", BadRequest),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                BadRequest,
            ),
            ("Transfer-Encoding: chunked, chunked\r\n", BadRequest),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                BadRequest,
            ),
            ("Transfer-Encoding: xchunked\r\n", BadRequest),
            ("Transfer-Encoding: chunked;x=1\r\n", BadRequest),
            ("Transfer-Encoding: \"chunked\"\r\n", BadRequest),
            ("Transfer-Encoding:\r\n", BadRequest),
            ("Transfer-Encoding: identity\r\n", BadRequest),
            ("Transfer-Encoding: foo, chunked\r\n", NotImplemented),
        ]
        .iter()
        .map(|(h, e)| (format!("{P}{h}\r\n"), *e))
        .collect();
        for (req, want) in &cases {
            assert_verdicts(&[(req.as_bytes(), *want)]);
        }
        // HTTP/1.0 has no transfer codings (§6.1).
        assert_verdicts(&[(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            BadRequest,
        )]);
        for ok in [
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: CHUNKED\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip,, chunked \r\n",
        ] {
            let req = format!("{P}{ok}\r\n");
            assert_eq!(head(req.as_bytes()).body, BodyLength::Chunked, "{ok}");
        }
    }

    /// RFC 9110 §8.6: `Content-Length = 1*DIGIT`.
    #[test]
    fn content_length_is_digits_and_sent_once() {
        use RequestError::BadRequest;
        for value in ["", "+5", "-1", "0x5", "5 5", "5, 5", "5.0", "1e3"] {
            let req = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n");
            assert_verdicts(&[(req.as_bytes(), BadRequest)]);
        }
        assert_verdicts(&[(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            BadRequest,
        )]);
        let h = head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\n");
        assert_eq!(h.body, BodyLength::Length(5));
    }

    /// RFC 9112 §3 and §5: request lines and field lines off the grammar.
    #[test]
    fn malformed_request_lines_and_fields_are_400() {
        use RequestError::BadRequest;
        assert_verdicts(&[
            (b"GET / HTTP/ 1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET / http/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1 xxx\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", BadRequest),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
                BadRequest,
            ),
            (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", BadRequest),
            (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", BadRequest),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
                BadRequest,
            ),
            (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET example.com HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
            (b"GET 1http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", BadRequest),
        ]);
        assert!(head(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
        assert!(head(b"GET http://x/y?z HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
    }

    /// RFC 9110 §9.3.6: a 2xx to CONNECT means the tunnel is open.
    #[test]
    fn connect_is_not_implemented() {
        assert_verdicts(&[(
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            RequestError::NotImplemented,
        )]);
    }

    /// RFC 9112 §2.2: "a server that is expecting to receive and parse a
    /// request-line SHOULD ignore at least one empty line (CRLF) received
    /// prior to the request-line".
    #[test]
    fn empty_lines_before_the_request_line_are_skipped() {
        let req = b"\r\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(head(req).len, req.len());
        assert_eq!(sniff(b"\r\nGET / HTTP/1.1\r\n", MAX), Sniff::Http);
        assert_eq!(sniff(b"\r\n", MAX), Sniff::NeedMore);
        assert_eq!(sniff(b"\r", MAX), Sniff::NeedMore);
        // A flood of empty lines is bounded by the head limit.
        let flood = b"\r\n".repeat(MAX / 2);
        assert_eq!(sniff(&flood, MAX), Sniff::Http);
        assert_eq!(
            parse_request_head(&flood, MAX),
            Err(RequestError::BadRequest)
        );
    }

    /// A request line that does not fit in the head limit is 414 (as nginx
    /// answers a line longer than its buffer); a head that does not, 431.
    #[test]
    fn long_targets_are_414_and_long_heads_431() {
        let target = [b"GET /".as_slice(), &[b'a'; MAX]].concat();
        assert_eq!(
            parse_request_head(&target, MAX),
            Err(RequestError::UriTooLong)
        );
        assert_eq!(
            parse_request_head(
                &[&target[..], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat(),
                MAX
            ),
            Err(RequestError::UriTooLong)
        );
        let headers = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX]].concat();
        assert_eq!(
            parse_request_head(&headers, MAX),
            Err(RequestError::HeadersTooLarge)
        );
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
        // From the fuzzer: the text after the version must not matter, and
        // no prefix may get a verdict the whole line would not.
        for (full, verdict) in [
            (
                b"GET / HTTP/1./1.1\r HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(),
                RequestError::BadRequest,
            ),
            (b"GET / HTTP/2x\r\n\r\n", RequestError::BadRequest),
            (
                b"GET / HTTP/01.1\r\nHost: x\r\n\r\n",
                RequestError::BadRequest,
            ),
            (
                b"GET / HTTP/0.9\r\nHost: x\r\n\r\n",
                RequestError::VersionNotSupported,
            ),
            (b"GET / HTTP/2.0\r\n\r\n", RequestError::VersionNotSupported),
        ] {
            for end in 1..full.len() {
                let got = parse_request_head(&full[..end], MAX);
                assert!(
                    got == Ok(None) || got == Err(verdict),
                    "{}: {got:?}",
                    crate::escape::Escaped::new(&full[..end])
                );
            }
            assert_eq!(parse_request_head(full, MAX), Err(verdict));
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
        // A registered method and SP: HTTP, malformed or not (400, not raw).
        assert_eq!(sniff(b"GET /\r\n"), Sniff::Http);
        assert_eq!(sniff(b"GET / http/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff(b"GET\t/ HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff(b"GET "), Sniff::Http);
        assert_eq!(sniff(b"GET"), Sniff::NeedMore);
        assert_eq!(sniff(b"GETX foo\n"), Sniff::Raw);
        assert_eq!(sniff(b"hello world\n"), Sniff::Raw);
        assert_eq!(sniff(b" GET"), Sniff::Raw);
        assert_eq!(sniff(b"\x16\x03\x01"), Sniff::Raw);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff(b"GET / HTTP/2.0\n"), Sniff::Http);
        assert_eq!(sniff(b"M-SEARCH * HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(sniff(b"GET / HTTP/1.1"), Sniff::Http);
        assert_eq!(sniff(b"M-SEARCH * HTTP/1.1"), Sniff::NeedMore);
        assert_eq!(sniff(b"GE"), Sniff::NeedMore);
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(&[b'a'; 40]), Sniff::Raw);
        // A first line longer than the head limit goes to the parser (431).
        let long = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(sniff(&long), Sniff::Http);
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
