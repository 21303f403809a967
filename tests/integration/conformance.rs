//! HTTP/1.1 conformance of the hello service: every request vector in
//! `tests/conformance/vectors.json` (taken from public suites, each naming
//! its source) is replayed raw against `sockit serve`, sent whole and sent
//! one byte per write, and the responses and the connection's fate are
//! compared with the expectation (sockit's policy, RFC 9112). All mismatches
//! are collected and reported in one table. The protocol is described in
//! `tests/conformance/README.md`; `record_nginx.py` replays the same vectors
//! against nginx with the same protocol.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::common::{escaped, Server};

/// How long any one wait (connect, a response, EOF) may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Sent after the expected responses when the connection should stay open;
/// a desync (leftover bytes read as a request) changes what it gets back.
const PROBE: &[u8] = b"GET /probe HTTP/1.1\r\nHost: x\r\n\r\n";

/// The tutorial's raw reply: no HTTP head.
const RAW_REPLY: &[u8] = b"Hello, world!";

/// Cases run side by side: most take milliseconds, a mismatch can take a
/// few timeouts, and the server is one process.
const WORKERS: usize = 16;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/conformance/vectors.json"
);

#[derive(Deserialize)]
struct Corpus {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    source: String,
    #[serde(default)]
    case: String,
    #[serde(default)]
    rfc: String,
    /// One byte per char, U+0000..U+00FF.
    request: String,
    half_close: bool,
    expect: Expectation,
    /// Indexes of responses that answer HEAD (a Content-Length, no body).
    #[serde(default)]
    bodiless: Vec<usize>,
}

#[derive(Deserialize, Clone)]
struct Expectation {
    responses: Responses,
    then: String,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Responses {
    /// `"raw"`: the tutorial's raw reply.
    Raw(String),
    Codes(Vec<u16>),
}

impl Expectation {
    fn responses(&self) -> Vec<String> {
        match &self.responses {
            Responses::Raw(raw) => vec![raw.clone()],
            Responses::Codes(codes) => codes.iter().map(u16::to_string).collect(),
        }
    }
}

impl Vector {
    fn bytes(&self) -> Result<Vec<u8>, String> {
        self.request
            .chars()
            .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("char {c:?} above U+00FF")))
            .collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum Split {
    Whole,
    Bytewise,
}

/// What a run saw: one entry per response (status code, `raw`, or a
/// description of what could not be parsed), and what became of the
/// connection afterwards (`close`, `open`, or what went wrong).
#[derive(PartialEq, Debug)]
struct Outcome {
    responses: Vec<String>,
    then: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.responses.join(", "), self.then)
    }
}

/// How the read side ended.
#[derive(Clone, Debug)]
enum End {
    Eof,
    Error(std::io::ErrorKind),
}

#[derive(Default)]
struct InboxState {
    bytes: Vec<u8>,
    end: Option<End>,
}

/// Bytes the server sent, collected by a reader thread as they arrive, so a
/// response is not lost to a reset while the test is still writing.
#[derive(Clone, Default)]
struct Inbox(Arc<(Mutex<InboxState>, Condvar)>);

impl Inbox {
    fn collect(&self, mut stream: TcpStream) -> std::thread::JoinHandle<()> {
        let inbox = self.clone();
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let result = stream.read(&mut chunk);
                let (state, cond) = &*inbox.0;
                let mut state = state.lock().unwrap();
                match result {
                    Ok(0) => state.end = Some(End::Eof),
                    Ok(n) => state.bytes.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => state.end = Some(End::Error(e.kind())),
                }
                cond.notify_all();
                if state.end.is_some() {
                    return;
                }
            }
        })
    }

    /// Waits until `ready` says yes for the bytes from `from` on and the end
    /// state, or [`TIMEOUT`] passes; returns the last answer and whether
    /// the wait timed out.
    fn wait<T>(
        &self,
        from: usize,
        mut ready: impl FnMut(&[u8], Option<&End>) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + TIMEOUT;
        let (state, cond) = &*self.0;
        let mut state = state.lock().unwrap();
        loop {
            if let Some(answer) = ready(
                &state.bytes[from.min(state.bytes.len())..],
                state.end.as_ref(),
            ) {
                return Some(answer);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = cond.wait_timeout(state, left).unwrap().0;
        }
    }
}

/// One parsed item at the front of the received bytes.
enum Parsed {
    /// A response with its status code, and how many bytes it took.
    Response(u16, usize),
    /// The raw reply.
    Raw,
    /// Bytes that are no response, described.
    Garbage(String),
}

/// Parses the response at the front of `buf`, or `None` if more bytes are
/// needed. `bodiless`: it answers HEAD (no body despite a Content-Length).
fn parse_response(buf: &[u8], bodiless: bool) -> Option<Parsed> {
    if buf.starts_with(RAW_REPLY) {
        return Some(Parsed::Raw);
    }
    let could_be = |what: &[u8]| what.starts_with(&buf[..buf.len().min(what.len())]);
    if !buf.starts_with(b"HTTP/") {
        return if could_be(b"HTTP/") || could_be(RAW_REPLY) {
            None
        } else {
            Some(Parsed::Garbage(format!("b'{}'", short(buf))))
        };
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else {
        return Some(Parsed::Garbage(format!(
            "bad status line b'{}'",
            short(buf)
        )));
    };
    let mut length = 0usize;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                match value.trim().parse() {
                    Ok(n) => length = n,
                    Err(_) => {
                        return Some(Parsed::Garbage(format!("bad Content-Length in {head:?}")))
                    }
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Some(Parsed::Garbage(format!(
                    "unexpected {line:?} in a response"
                )));
            }
        }
    }
    if bodiless || status == 100 || status == 204 || status == 304 {
        length = 0;
    }
    if buf.len() < head_end + length {
        return None;
    }
    Some(Parsed::Response(status, head_end + length))
}

fn short(bytes: &[u8]) -> String {
    let mut text = escaped(&bytes[..bytes.len().min(40)]);
    if bytes.len() > 40 {
        text.push('…');
    }
    text
}

/// Reads responses from `inbox` starting at `*at`, up to `want` of them
/// (100 Continue skipped), stopping at EOF, a reset, garbage or a timeout.
/// Returns what was read and, if it stopped early, why.
fn read_responses(
    inbox: &Inbox,
    at: &mut usize,
    want: usize,
    bodiless: &[usize],
) -> (Vec<String>, Option<String>) {
    let mut got = Vec::new();
    while got.len() < want {
        let head = bodiless.contains(&got.len());
        let step = inbox.wait(*at, |buf, end| match parse_response(buf, head) {
            Some(parsed) => Some(Ok(parsed)),
            None => end.map(|end| Err((end.clone(), buf.len()))),
        });
        match step {
            None => return (got, Some("timeout".into())),
            Some(Err((end, left))) => {
                let why = match (end, left) {
                    (End::Eof, 0) => "close".to_owned(),
                    (End::Eof, _) => "close mid-response".to_owned(),
                    (End::Error(kind), _) => format!("{kind:?}"),
                };
                return (got, Some(why));
            }
            Some(Ok(Parsed::Raw)) => {
                *at += RAW_REPLY.len();
                got.push("raw".into());
            }
            Some(Ok(Parsed::Response(100, used))) => *at += used,
            Some(Ok(Parsed::Response(status, used))) => {
                *at += used;
                got.push(status.to_string());
            }
            Some(Ok(Parsed::Garbage(what))) => {
                got.push(what);
                return (got, Some("garbage".into()));
            }
        }
    }
    (got, None)
}

/// Whether the server closes (EOF or reset) within [`TIMEOUT`] without
/// sending more: `close`, `open`, or what it sent instead.
fn then_state(inbox: &Inbox, at: usize) -> String {
    let seen = inbox.wait(at, |buf, end| {
        if !buf.is_empty() {
            Some(format!("extra bytes b'{}'", short(buf)))
        } else {
            end.map(|_| "close".to_owned())
        }
    });
    seen.unwrap_or_else(|| "open".into())
}

/// Sends the probe, half-closes, and expects exactly one 200 then EOF.
fn probe(stream: &mut TcpStream, inbox: &Inbox, mut at: usize) -> String {
    if stream.write_all(PROBE).is_err() {
        return "close (probe write failed)".into();
    }
    let _ = stream.shutdown(Shutdown::Write);
    let (got, stop) = read_responses(inbox, &mut at, 2, &[]);
    match (got.as_slice(), stop.as_deref()) {
        ([ok], Some("close")) if ok == "200" => "open".into(),
        ([], Some("close")) => "close".into(),
        (got, stop) => format!(
            "open, but the probe got [{}] then {}",
            got.join(", "),
            stop.unwrap_or("more")
        ),
    }
}

/// Replays one vector in one split mode and returns what happened.
fn run(addr: SocketAddr, vector: &Vector, request: &[u8], split: Split) -> Outcome {
    let fail = |then: String| Outcome {
        responses: Vec::new(),
        then,
    };
    let mut stream = match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Ok(stream) => stream,
        Err(e) => return fail(format!("connect failed: {e}")),
    };
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .and_then(|()| stream.try_clone());
    let reader_stream = match setup {
        Ok(clone) => clone,
        Err(e) => return fail(format!("socket setup failed: {e}")),
    };
    let inbox = Inbox::default();
    let reader = inbox.collect(reader_stream);

    // A server may answer and close before the request is all sent; the
    // write then fails and the verdict comes from what it sent.
    match split {
        Split::Whole => {
            let _ = stream.write_all(request);
        }
        Split::Bytewise => {
            for byte in request {
                if stream.write_all(std::slice::from_ref(byte)).is_err() {
                    break;
                }
            }
        }
    }
    if vector.half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }

    let expected = vector.expect.responses();
    let mut at = 0;
    let (responses, stop) = read_responses(&inbox, &mut at, expected.len(), &vector.bodiless);
    let then = match stop {
        Some(why) => why,
        None if vector.expect.then == "open" => probe(&mut stream, &inbox, at),
        None => then_state(&inbox, at),
    };
    let _ = stream.shutdown(Shutdown::Both);
    let _ = reader.join();
    Outcome { responses, then }
}

struct Mismatch {
    name: String,
    source: String,
    split: Split,
    expected: String,
    got: String,
}

#[test]
fn hello_answers_every_public_http11_vector_as_rfc_9112_says() {
    let text = std::fs::read_to_string(VECTORS).expect("read tests/conformance/vectors.json");
    let corpus: Corpus = serde_json::from_str(&text).expect("parse tests/conformance/vectors.json");
    assert!(
        corpus.vectors.len() >= 100,
        "only {} vectors; the issue asks for at least 100",
        corpus.vectors.len()
    );
    let mut requests = Vec::new();
    for vector in &corpus.vectors {
        let (repo, path) = vector.source.split_once(':').unwrap_or(("", ""));
        assert!(
            repo.contains('/') && !path.is_empty() && !vector.case.is_empty(),
            "vector {} names no source (owner/repo:path and a case)",
            vector.name
        );
        assert!(
            !vector.rfc.is_empty(),
            "vector {} names no RFC section",
            vector.name
        );
        assert!(
            ["open", "close"].contains(&vector.expect.then.as_str()),
            "vector {}: then must be open or close",
            vector.name
        );
        let request = vector
            .bytes()
            .unwrap_or_else(|e| panic!("vector {}: {e}", vector.name));
        requests.push(request);
    }

    let server = Server::start(&["-q"]);
    let addr = server.addr;
    let cases: Vec<(usize, Split)> = (0..corpus.vectors.len())
        .flat_map(|i| [(i, Split::Whole), (i, Split::Bytewise)])
        .collect();
    let next = AtomicUsize::new(0);
    let mismatches = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let Some(&(i, split)) = cases.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                let vector = &corpus.vectors[i];
                let got = run(addr, vector, &requests[i], split);
                let expected = Outcome {
                    responses: vector.expect.responses(),
                    then: vector.expect.then.clone(),
                };
                if got != expected {
                    mismatches.lock().unwrap().push((
                        i,
                        Mismatch {
                            name: vector.name.clone(),
                            source: format!("{} ({})", vector.source, vector.case),
                            split,
                            expected: expected.to_string(),
                            got: got.to_string(),
                        },
                    ));
                }
            });
        }
    });
    let mut mismatches = mismatches.into_inner().unwrap();
    mismatches.sort_by_key(|(i, m)| (*i, matches!(m.split, Split::Bytewise)));
    if mismatches.is_empty() {
        return;
    }
    let failed_vectors = {
        let mut ids: Vec<usize> = mismatches.iter().map(|(i, _)| *i).collect();
        ids.dedup();
        ids.len()
    };
    let mut table = format!(
        "{} of {} vectors mismatch ({} of {} runs, {:.1} s):\n{:<44} {:<9} {:<16} {}\n",
        failed_vectors,
        corpus.vectors.len(),
        mismatches.len(),
        cases.len(),
        started.elapsed().as_secs_f64(),
        "name",
        "split",
        "expected",
        "got"
    );
    for (_, m) in &mismatches {
        table.push_str(&format!(
            "{:<44} {:<9} {:<16} {}\n{:>44} source: {}\n",
            m.name,
            format!("{:?}", m.split).to_lowercase(),
            m.expected,
            m.got,
            "",
            m.source
        ));
    }
    panic!("{table}");
}

#[test]
fn conformance_parser_reads_responses_raw_replies_and_garbage() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!";
    assert!(matches!(parse_response(ok, false), Some(Parsed::Response(200, n)) if n == ok.len()));
    assert!(parse_response(&ok[..ok.len() - 1], false).is_none());
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
    assert!(
        matches!(parse_response(head, true), Some(Parsed::Response(200, n)) if n == head.len())
    );
    assert!(matches!(
        parse_response(b"Hello, world!", false),
        Some(Parsed::Raw)
    ));
    assert!(parse_response(b"Hello", false).is_none());
    assert!(parse_response(b"HTT", false).is_none());
    assert!(matches!(
        parse_response(b"XYZ", false),
        Some(Parsed::Garbage(_))
    ));
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(matches!(
        parse_response(chunked, false),
        Some(Parsed::Garbage(_))
    ));
}
