//! HTTP/1.1 framing over real sockets: the request-smuggling cases of RFC
//! 9112 answered once, with one reading of the bytes, however they arrive.
//! (Each rule's unit tests sit beside the parser in `src/http/`; the public
//! conformance vectors replay in `conformance.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{connect, read_to_end, send, Server};

/// Sends `request` whole, or one byte per write (`TCP_NODELAY`, so each
/// byte is its own segment), then half-closes, and returns everything the
/// server sent until it closed.
fn exchange(server: &Server, request: &[u8], bytewise: bool) -> String {
    let mut stream = connect(server.addr);
    stream.set_nodelay(true).unwrap();
    if bytewise {
        for byte in request {
            // The server may close early (an error is found mid-way).
            if stream.write_all(std::slice::from_ref(byte)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    } else {
        send(&mut stream, request);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    String::from_utf8_lossy(&drain(&mut stream)).into_owned()
}

/// Reads to end of stream; a reset after some bytes ends it too.
fn drain(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

fn statuses(responses: &str) -> Vec<&str> {
    responses
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &responses[at + 9..at + 12])
        .collect()
}

/// The hole the conformance run found: a chunk-size line with no digit was
/// read as the last chunk, and what followed was answered as a second
/// request (200 + 200; nginx: 400 and close). RFC 9112 §7.1:
/// `chunk-size = 1*HEXDIG`.
#[test]
fn a_chunk_size_line_without_a_digit_gets_one_400_and_a_close_however_it_arrives() {
    let server = Server::start(&["-q"]);
    for size_line in ["\r\n", " \r\n", ";ext\r\n"] {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nfoo\r\n{size_line}\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        for bytewise in [false, true] {
            let got = exchange(&server, request.as_bytes(), bytewise);
            assert_eq!(
                statuses(&got),
                ["400"],
                "{size_line:?} bytewise={bytewise}: {got}"
            );
        }
    }
}

/// RFC 9112 §7.1.1: a bare LF or a control character inside a chunk
/// extension is no extension; one reading of the bytes, never two.
#[test]
fn a_bare_lf_or_ctl_in_a_chunk_extension_gets_400_and_a_close() {
    let server = Server::start(&["-q"]);
    for ext in [";a\nb", ";a=\x01", ";\"x\ny\""] {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             3{ext}\r\nfoo\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        for bytewise in [false, true] {
            let got = exchange(&server, request.as_bytes(), bytewise);
            assert_eq!(
                statuses(&got),
                ["400"],
                "{ext:?} bytewise={bytewise}: {got}"
            );
        }
    }
}

/// A body cut off by the end of the stream is an error, not a wait.
#[test]
fn a_body_cut_off_by_end_of_stream_gets_400() {
    let server = Server::start(&["-q"]);
    for request in [
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
    ] {
        let got = exchange(&server, request.as_bytes(), false);
        assert_eq!(statuses(&got), ["400"], "{request:?}: {got}");
    }
}

/// RFC 9112 §6.1: HTTP/1.0 has no transfer codings, so a 1.0 request
/// with `Transfer-Encoding` has faulty framing.
#[test]
fn http10_with_transfer_encoding_gets_400() {
    let server = Server::start(&["-q"]);
    let got = exchange(
        &server,
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(statuses(&got), ["400"], "{got}");
}

/// RFC 9110 §9.3.6: a 2xx to CONNECT means "tunnel established".
#[test]
fn connect_gets_501_and_a_close() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    send(
        &mut stream,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    let got = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(got.starts_with("HTTP/1.1 501 Not Implemented\r\n"), "{got}");
    assert!(got.contains("\r\nConnection: close\r\n"), "{got}");
}

/// RFC 9112 §3.2: Host is required in 1.1, once, and valid.
#[test]
fn host_missing_twice_or_invalid_gets_400() {
    let server = Server::start(&["-q"]);
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
    ] {
        let got = exchange(&server, request.as_bytes(), false);
        assert_eq!(statuses(&got), ["400"], "{request:?}: {got}");
    }
}

/// RFC 9112 §2.2: empty lines before a request line are skipped, so a
/// client that sends CRLF after a body is not taken for a raw client.
#[test]
fn empty_lines_before_a_request_are_ignored() {
    let server = Server::start(&["-q"]);
    let got = exchange(
        &server,
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        false,
    );
    assert_eq!(statuses(&got), ["200", "200"], "{got}");
}

/// A known method followed by SP is HTTP even when the rest is broken: it
/// gets 400, not the tutorial's raw reply. Text that is not a request line
/// still gets the raw reply.
#[test]
fn a_broken_request_line_gets_400_and_text_gets_the_raw_reply() {
    let server = Server::start(&["-q"]);
    for line in [
        "GET / HTTP/ 1.1\r\nHost: x\r\n\r\n",
        "GET / http/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1 xxx\r\nHost: x\r\n\r\n",
        "GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let got = exchange(&server, line.as_bytes(), false);
        assert_eq!(statuses(&got), ["400"], "{line:?}: {got}");
    }
    assert_eq!(exchange(&server, b"Hello, world", false), "Hello, world!");
}

/// A request line longer than the head limit is 414, not 431.
#[test]
fn a_target_over_the_limit_gets_414() {
    let server = Server::start(&["-q"]);
    let request = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let got = exchange(&server, request.as_bytes(), false);
    assert!(got.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{got}");
}
