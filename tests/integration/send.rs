//! `sockit send`: the tutorial's client.

use std::io::Write;
use std::process::Stdio;

use crate::common::{assert_bytes_eq, run, sockit, Server};

#[test]
fn send_prints_the_hello_reply() {
    let server = Server::start(&["-q"]);
    let out = run(sockit().args(["send", &server.addr.to_string()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Received b'Hello, world!'\n"
    );
}

#[test]
fn send_to_a_closed_port_exits_1_with_one_line() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(sockit().args(["send", &format!("127.0.0.1:{port}")]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sockit: error: cannot connect to 127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn send_reads_data_from_stdin_and_writes_raw_bytes() {
    let server = Server::start(&["-q", "--reply", "bin\u{1}ary"]);
    let mut child = sockit()
        .args(["send", "--raw", &server.addr.to_string(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_bytes_eq(&out.stdout, b"bin\x01ary");
}

#[test]
fn send_escapes_the_reply_and_stops_at_max_bytes() {
    let server = Server::start(&["-q", "--reply", "tab\there\n'quoted'"]);
    let out = run(sockit().args(["send", &server.addr.to_string()]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Received b'tab\\there\\n\\'quoted\\''\n"
    );
    let out = run(sockit().args(["send", "--max-bytes", "3", &server.addr.to_string()]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Received b'tab'\n");
}

#[test]
fn send_times_out_on_a_server_that_never_answers() {
    // Accepts (the kernel does, via the backlog) but never replies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let out = run(sockit().args(["send", "--timeout", "0.3", &addr]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("reading from {addr} timed out after 0.3s")),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn send_reports_unresolvable_names_and_bad_endpoints() {
    let out = run(sockit().args(["send", "no-such-host.invalid:80"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("sockit: error: cannot resolve no-such-host.invalid:80"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = run(sockit().args(["send", "[::1:80"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid endpoint '[::1:80': missing ']'")
    );
}

#[test]
fn send_resolves_a_host_name() {
    // Where localhost is ::1 and 127.0.0.1, this also needs the fallback from
    // the first (refused) address; the fallback itself is unit-tested in
    // src/client.rs.
    let server = Server::start(&["-q"]);
    let out = run(sockit().args(["send", &format!("localhost:{}", server.addr.port())]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Received b'Hello, world!'\n"
    );
}
