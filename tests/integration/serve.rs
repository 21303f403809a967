//! `sockit serve` with the hello service: raw and HTTP clients, concurrency,
//! descriptors, shutdown, bind errors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::{
    assert_bytes_eq, connect, have, python, read_response, read_to_end, run, send, sockit, summary,
    Server,
};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// The tutorial's client, as the tutorial writes it.
const TUTORIAL_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(b"Hello, world")
data = b""
while True:
    chunk = s.recv(1024)
    if not chunk:
        break
    data += chunk
s.close()
sys.stdout.buffer.write(data)
"#;

fn host_port(addr: SocketAddr) -> (String, String) {
    (addr.ip().to_string(), addr.port().to_string())
}

#[test]
fn serve_answers_raw_client_with_hello() {
    let server = Server::start(&[]);
    let (host, port) = host_port(server.addr);
    // The script reads until end of stream: exactly the reply, then EOF.
    assert_bytes_eq(&python(TUTORIAL_CLIENT, &[&host, &port]), b"Hello, world!");
    server
        .stderr
        .wait_for("Accept new connection from 127.0.0.1:");
}

#[test]
fn serve_answers_raw_bytes_on_a_plain_socket() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    // Starts like a method and a space, but the line is no request line.
    send(&mut stream, b"hi there\n");
    assert_bytes_eq(&read_to_end(&mut stream), b"Hello, world!");
}

#[test]
fn serve_answers_a_client_that_sends_nothing_and_half_closes() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_end(&mut stream), b"Hello, world!");
}

#[test]
fn serve_reply_flag_changes_both_bodies() {
    let server = Server::start(&["-q", "--reply", "Bonjour"]);
    let mut raw = connect(server.addr);
    send(&mut raw, b"Hello, world");
    assert_bytes_eq(&read_to_end(&mut raw), b"Bonjour");
    let mut http = connect(server.addr);
    send(&mut http, GET);
    let response = read_response(&mut http);
    assert!(response.contains("Content-Length: 7\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nBonjour"), "{response}");
}

#[test]
fn serve_answers_curl_with_a_valid_response() {
    assert!(have("curl"), "curl is required (.ci/run installs it)");
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let out = run(Command::new("curl").args(["-si", "--max-time", "5", &url]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nContent-Length: 13\r\n"), "{text}");
    assert!(
        text.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nDate: "), "{text}");
    assert!(text.ends_with("\r\n\r\nHello, world!"), "{text}");

    // HTTP/1.0: the connection closes after the response.
    let out = run(Command::new("curl").args(["-si", "-0", "--max-time", "5", &url]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert!(text.ends_with("Hello, world!"), "{text}");
}

#[test]
fn serve_keeps_curl_connections_alive_and_skips_post_bodies() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    // A POST with a body, then a GET on the same connection.
    let out = run(Command::new("curl").args([
        "-sv",
        "--max-time",
        "5",
        "-d",
        "name=value&x=1",
        &url,
        "--next",
        &url,
    ]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, world!Hello, world!"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Re-using existing connection") || log.contains("Reusing existing"),
        "{log}"
    );
    // A large body with Expect: 100-continue is consumed, not read as a request.
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, vec![b'x'; 2 << 20]).unwrap();
    let out = run(Command::new("curl").args([
        "-s",
        "--max-time",
        "5",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &format!("@{}", body.display()),
        &url,
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world!");
}

#[test]
fn serve_keeps_alive_across_100_requests() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    for _ in 0..100 {
        send(&mut stream, GET);
        let response = read_response(&mut stream);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(!response.contains("Connection: close"), "{response}");
        assert!(response.ends_with("Hello, world!"));
    }
    let (status, log) = server.terminate();
    assert!(status.success());
    assert!(
        log.contains("served 1 connection, 100 requests, 0 errors"),
        "{log}"
    );
}

#[test]
fn serve_http10_keep_alive_on_request() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    for _ in 0..3 {
        send(
            &mut stream,
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        );
        let response = read_response(&mut stream);
        assert!(
            response.contains("\r\nConnection: keep-alive\r\n"),
            "{response}"
        );
    }
    send(&mut stream, b"GET / HTTP/1.0\r\n\r\n");
    assert!(read_response(&mut stream).contains("Connection: close"));
    assert_bytes_eq(&read_to_end(&mut stream), b"");
}

#[test]
fn serve_answers_pipelined_requests_in_order_in_one_write() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    let mut batch = Vec::new();
    batch.extend_from_slice(GET);
    batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    batch.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    send(&mut stream, &batch);
    let all = String::from_utf8(read_to_end(&mut stream)).unwrap();
    let responses: Vec<&str> = all.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(responses.len(), 3, "{all}");
    assert!(responses[0].ends_with("\r\n\r\nHello, world!"), "{all}");
    // HEAD: same headers, no body.
    assert!(
        responses[1].contains("Content-Length: 13") && responses[1].ends_with("\r\n\r\n"),
        "{all}"
    );
    assert!(
        responses[2].contains("Connection: close") && responses[2].ends_with("Hello, world!"),
        "{all}"
    );
}

#[test]
fn serve_skips_a_chunked_body_before_the_next_request() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    send(
        &mut stream,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n",
    );
    assert!(read_response(&mut stream).ends_with("Hello, world!"));
    // The chunk data "GET /" was not taken for a request: the next one is.
    send(
        &mut stream,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab",
    );
    send(
        &mut stream,
        b"cdGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let rest = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert_eq!(rest.matches("HTTP/1.1 200 OK").count(), 2, "{rest}");
}

#[test]
fn serve_answers_malformed_requests_with_400_and_closes() {
    let server = Server::start(&["-q"]);
    for bad in [
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n".as_slice(),
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let mut stream = connect(server.addr);
        send(&mut stream, bad);
        let reply = String::from_utf8(read_to_end(&mut stream)).unwrap();
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
        assert!(reply.contains("Connection: close"), "{reply}");
    }
    // A bad second request on a kept connection is a 400, not a raw reply.
    let mut stream = connect(server.addr);
    send(&mut stream, GET);
    read_response(&mut stream);
    send(&mut stream, b"Hello, world\r\n\r\n");
    let reply = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
}

#[test]
fn serve_answers_64k_of_headers_with_431() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    let mut request = b"GET / HTTP/1.1\r\n".to_vec();
    while request.len() < 64 * 1024 {
        request.extend_from_slice(
            b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    request.extend_from_slice(b"\r\n");
    // The server may close before reading it all; a failed write is fine.
    let _ = stream.write_all(&request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{reply}"
    );
}

#[test]
fn serve_max_header_bytes_flag_sets_the_limit() {
    let server = Server::start(&["-q", "--max-header-bytes", "64"]);
    let mut stream = connect(server.addr);
    send(&mut stream, b"GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n");
    let reply = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
}

#[test]
fn serve_answers_other_http_versions_with_505() {
    let server = Server::start(&["-q"]);
    let mut stream = connect(server.addr);
    send(&mut stream, b"GET / HTTP/2.0\r\n\r\n");
    let reply = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"),
        "{reply}"
    );
}

#[test]
fn serve_answers_500_concurrent_clients() {
    let server = Server::start(&["-q"]);
    let mut streams: Vec<TcpStream> = (0..500).map(|_| connect(server.addr)).collect();
    for stream in &mut streams {
        send(
            stream,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
    }
    for stream in &mut streams {
        let reply = String::from_utf8(read_to_end(stream)).unwrap();
        assert!(reply.ends_with("\r\n\r\nHello, world!"), "{reply}");
    }
}

#[test]
fn serve_is_not_delayed_by_50_idle_connections() {
    let server = Server::start(&["-q"]);
    let mut idle: Vec<TcpStream> = (0..50).map(|_| connect(server.addr)).collect();
    // Half of them stop in the middle of a request head.
    for stream in idle.iter_mut().step_by(2) {
        send(stream, b"GET / HTTP/1.1\r\nHost:");
    }
    let started = Instant::now();
    let mut stream = connect(server.addr);
    send(&mut stream, GET);
    assert!(read_response(&mut stream).ends_with("Hello, world!"));
    // Generous: the point is "not held up behind the idle ones" (which
    // would be forever), not a speed figure.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn serve_holds_no_descriptor_after_2000_connections() {
    let server = Server::start(&["-q"]);
    let before = server.fd_count();
    for i in 0..2000 {
        let mut stream = connect(server.addr);
        match i % 4 {
            // A normal request.
            0 => {
                send(
                    &mut stream,
                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                read_to_end(&mut stream);
            }
            // Reset by the client (SO_LINGER 0) in the middle of a request.
            1 => {
                send(&mut stream, b"GET / HTTP/1.1\r\nHos");
                socket2::SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
            // Sends nothing at all and goes away.
            2 => {}
            // Keep-alive, then reset after a response.
            _ => {
                send(&mut stream, GET);
                read_response(&mut stream);
                socket2::SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(stream);
    }
    // Closing is asynchronous (lingering close waits for the peer): poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = server.fd_count();
    while now != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now = server.fd_count();
    }
    assert_eq!(
        now, before,
        "descriptors before and after 2,000 connections"
    );
}

#[test]
fn serve_finishes_requests_in_flight_on_sigterm() {
    let server = Server::start(&[]);
    let mut clients: Vec<TcpStream> = (0..30).map(|_| connect(server.addr)).collect();
    for client in &mut clients {
        send(client, b"GET / HTTP/1.1\r\nHost: test\r\n");
    }
    // Every connection has been accepted before the signal.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .stderr
        .text()
        .matches("Accept new connection")
        .count()
        < 30
    {
        assert!(
            Instant::now() < deadline,
            "not all 30 connections were accepted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal(Signal::SIGTERM);
    server.stderr.wait_for("shutting down");
    // New clients are refused once the listener is closed.
    let refused = (0..100).any(|_| {
        let r = TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).is_err();
        if !r {
            std::thread::sleep(Duration::from_millis(10));
        }
        r
    });
    assert!(refused, "the listener still accepts after SIGTERM");
    for client in &mut clients {
        send(client, b"\r\n");
        let reply = String::from_utf8(read_to_end(client)).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("Connection: close"), "{reply}");
        assert!(reply.ends_with("Hello, world!"), "{reply}");
    }
    let (status, log) = server.terminate_wait();
    assert!(status.success(), "{log}");
    // The refusal probe above may have been accepted in the instant before
    // the listener closed (on a loaded machine): it is then served too.
    let (connections, requests, errors) = summary(&log);
    assert!((30..=31).contains(&connections), "{log}");
    assert_eq!((requests, errors), (connections, 0), "{log}");
}

#[test]
fn serve_closes_idle_connections_at_once_on_sigterm() {
    let server = Server::start(&["-q", "--grace", "30"]);
    let mut idle = connect(server.addr);
    send(&mut idle, GET);
    read_response(&mut idle);
    let started = Instant::now();
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for an idle connection"
    );
    assert_bytes_eq(&read_to_end(&mut idle), b"");
}

#[test]
fn serve_exits_at_once_on_a_second_signal() {
    let server = Server::start(&["--grace", "60"]);
    let mut busy = connect(server.addr);
    send(&mut busy, b"GET / HTTP/1.1\r\n");
    // Signal only once the server has taken the connection: under load the
    // accept can trail the connect, and an unaccepted client is not busy.
    server.stderr.wait_for("Accept new connection");
    server.signal(Signal::SIGINT);
    server.stderr.wait_for("shutting down");
    let started = Instant::now();
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(log.contains("second signal"), "{log}");
}

#[test]
fn serve_quiet_and_verbose_control_per_connection_lines() {
    let quiet = Server::start(&["-q"]);
    let mut stream = connect(quiet.addr);
    send(
        &mut stream,
        b"GET /quiet HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    read_to_end(&mut stream);
    let (_, log) = quiet.terminate();
    assert!(!log.contains("Accept new connection"), "{log}");
    assert!(log.contains("served 1 connection,"), "{log}");

    let verbose = Server::start(&["-v"]);
    let mut stream = connect(verbose.addr);
    send(
        &mut stream,
        b"GET /verbose HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    read_to_end(&mut stream);
    verbose
        .stderr
        .wait_for("Accept new connection from 127.0.0.1:");
    // The request, escaped, as the tutorial prints it.
    verbose
        .stderr
        .wait_for("GET /verbose HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n");
}

#[test]
fn serve_listens_dual_stack_on_a_bare_port() {
    let server = Server::start_raw(&["serve", "-q", "--listen", ":0"]);
    assert!(server.addr.ip().is_unspecified(), "{}", server.addr);
    let port = server.addr.port();
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let mut stream = connect(addr.parse().unwrap());
        send(&mut stream, b"Hello, world");
        assert_bytes_eq(&read_to_end(&mut stream), b"Hello, world!");
    }
}

#[test]
fn serve_listens_on_every_listen_flag() {
    let server = Server::start(&["-q", "--listen", "[::1]:0"]);
    let line = server.stderr.wait_for("Serving HTTP on [::1]:");
    let v6: SocketAddr = line
        .split(" on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for addr in [server.addr, v6] {
        let mut stream = connect(addr);
        send(&mut stream, b"x\n");
        assert_bytes_eq(&read_to_end(&mut stream), b"Hello, world!");
    }
}

#[test]
fn serve_reports_an_address_in_use_in_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(sockit().args(["serve", "--listen", &addr]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "sockit: error: cannot listen on {addr}: address already in use"
        )),
        "{stderr}"
    );
}

#[test]
fn serve_reports_a_non_local_address_and_a_bad_endpoint() {
    let out = run(sockit().args(["serve", "--listen", "192.0.2.1:0"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot listen on 192.0.2.1:0"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = run(sockit().args(["serve", "--listen", "localhost"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("invalid endpoint 'localhost': missing port"),
        "{stderr}"
    );
}

#[test]
fn serve_gives_the_tutorial_client_what_the_reference_server_gives() {
    let reference = std::path::Path::new("../shared/reference");
    assert!(
        reference.is_dir(),
        "../shared/reference is missing beside the repo"
    );
    let server = Server::start(&["-q"]);
    let client = |port: u16| {
        run(Command::new("python3")
            .arg(reference.join("tutorial_client.py"))
            .args(["127.0.0.1", &port.to_string()]))
    };
    let ours = client(server.addr.port());
    assert!(ours.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        "Received b'Hello, world!'\n"
    );

    // The reference server on a port the kernel just handed out.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut python_server = crate::common::ChildGuard::spawn(
        Command::new("python3")
            .arg("-u")
            .arg(reference.join("tutorial_server.py"))
            .arg(port.to_string()),
    );
    python_server.wait_for_stdout("Serving HTTP on port");
    let theirs = client(port);
    assert_eq!(
        String::from_utf8_lossy(&theirs.stdout),
        String::from_utf8_lossy(&ours.stdout)
    );

    // And `sockit send` prints the same line as the tutorial's client.
    let send = run(sockit().args(["send", &server.addr.to_string()]));
    assert_eq!(send.stdout, ours.stdout);
}

#[test]
fn serve_listens_with_the_requested_backlog() {
    // `ss` shows a listening socket's backlog in its Send-Q column.
    let server = Server::start(&["-q", "--backlog", "77"]);
    let out = run(Command::new("ss").args(["-ltnH", &format!("sport = :{}", server.addr.port())]));
    let text = String::from_utf8(out.stdout).unwrap();
    let send_q: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(send_q, ["77"], "{text}");
}
