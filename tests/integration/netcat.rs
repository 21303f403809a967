//! `sockit listen` and `sockit connect`: netcat, against each other, python3
//! and OpenBSD `nc`.
//!
//! The size of the big transfers is `SOCKIT_TEST_NETCAT_BYTES` (default 8
//! MiB); bench/netcat-throughput moves 1 GiB.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use crate::common::{
    assert_bytes_eq, assert_same_data, connect, free_port, have, run, sockit, stdin_file,
    test_bytes, wait_for_tcp_listener, ChildGuard, Running,
};

/// How many bytes the big transfers move.
fn transfer_size() -> usize {
    std::env::var("SOCKIT_TEST_NETCAT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8 << 20)
}

/// Starts `sockit listen 127.0.0.1:0 ARGS…` and returns it with its address.
fn listen(args: &[&str], stdin: Stdio) -> (Running, SocketAddr) {
    let mut cmd = sockit();
    cmd.args(["listen", "127.0.0.1:0"]).args(args);
    let listener = Running::spawn(&mut cmd, stdin);
    let addr = listener.addr_after("Listening on ");
    (listener, addr)
}

#[track_caller]
fn assert_clean_exit(who: &str, status: std::process::ExitStatus, stderr: &str) {
    assert!(status.success(), "{who} exited with {status}: {stderr}");
    assert!(!stderr.contains("error"), "{who}: {stderr}");
}

#[test]
fn connect_and_listen_carry_binary_data_both_ways() {
    let size = transfer_size();
    let up = test_bytes(size, 1);
    let down = test_bytes(size / 2 + 7, 2);
    let (_dir_l, listen_in) = stdin_file(&down);
    let (_dir_c, connect_in) = stdin_file(&up);
    let (listener, addr) = listen(&[], listen_in);
    let client = Running::spawn(sockit().args(["connect", &addr.to_string()]), connect_in);
    let (status, got_down, stderr) = client.finish();
    assert_clean_exit("connect", status, &stderr);
    let (status, got_up, stderr) = listener.finish();
    assert_clean_exit("listen", status, &stderr);
    assert!(stderr.contains("Connection from 127.0.0.1:"), "{stderr}");
    assert_same_data("connect → listen", &got_up, &up);
    assert_same_data("listen → connect", &got_down, &down);
}

/// The server reads to end of stream, then answers: only a client that
/// half-closes when its input ends, and keeps reading, gets the answer.
const COUNTING_SERVER: &str = r#"
import socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.settimeout(10)
total = 0
while True:
    chunk = conn.recv(65536)
    if not chunk:
        break
    total += len(chunk)
conn.sendall(b"got %d bytes\n" % total)
conn.close()
"#;

#[test]
fn connect_half_closes_when_stdin_ends() {
    let mut server = ChildGuard::spawn(Command::new("python3").args(["-c", COUNTING_SERVER]));
    let port = server.wait_for_stdout("").trim().to_owned();
    let (_dir, input) = stdin_file(b"hello\x00world");
    let client = Running::spawn(
        sockit().args(["connect", &format!("127.0.0.1:{port}")]),
        input,
    );
    let (status, out, stderr) = client.finish();
    assert_clean_exit("connect", status, &stderr);
    assert_bytes_eq(&out, b"got 11 bytes\n");
}

/// A client that sends, half-closes, says so on stdout, then reads to end.
const HALF_CLOSING_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"ping")
s.shutdown(socket.SHUT_WR)
print("half-closed", flush=True)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(repr(data), flush=True)
"#;

#[test]
fn listen_keeps_sending_after_the_peer_half_closes() {
    let (mut listener, addr) = listen(&[], Stdio::piped());
    let mut client = ChildGuard::spawn(Command::new("python3").args([
        "-c",
        HALF_CLOSING_CLIENT,
        &addr.port().to_string(),
    ]));
    client.wait_for_stdout("half-closed");
    listener.stdout.wait_for(b"ping");
    // The peer has ended its side; ours is still open and must get through.
    let mut stdin = listener.stdin.take().unwrap();
    stdin.write_all(b"pong after your eof").unwrap();
    drop(stdin);
    client.wait_for_stdout("b'pong after your eof'");
    let (status, out, stderr) = listener.finish();
    assert_clean_exit("listen", status, &stderr);
    assert_bytes_eq(&out, b"ping");
}

#[test]
fn connect_works_with_an_openbsd_nc_listener() {
    if !have("nc") {
        eprintln!("skipped: OpenBSD nc is not installed (apt-get install netcat-openbsd)");
        return;
    }
    let up = test_bytes(transfer_size() / 4, 3);
    let down = test_bytes(100_003, 4);
    let (_dir_l, nc_in) = stdin_file(&down);
    let (_dir_c, connect_in) = stdin_file(&up);
    let port = free_port();
    let nc = Running::spawn(
        Command::new("nc").args(["-N", "-l", "127.0.0.1", &port.to_string()]),
        nc_in,
    );
    wait_for_tcp_listener(port);
    let client = Running::spawn(
        sockit().args(["connect", &format!("127.0.0.1:{port}")]),
        connect_in,
    );
    let (status, got_down, stderr) = client.finish();
    assert_clean_exit("connect", status, &stderr);
    let (status, got_up, stderr) = nc.finish();
    assert!(status.success(), "nc: {stderr}");
    assert_same_data("connect → nc", &got_up, &up);
    assert_same_data("nc → connect", &got_down, &down);
}

#[test]
fn listen_works_with_an_openbsd_nc_client() {
    if !have("nc") {
        eprintln!("skipped: OpenBSD nc is not installed (apt-get install netcat-openbsd)");
        return;
    }
    let up = test_bytes(transfer_size() / 4, 5);
    let down = test_bytes(70_001, 6);
    let (_dir_l, listen_in) = stdin_file(&down);
    let (_dir_c, nc_in) = stdin_file(&up);
    let (listener, addr) = listen(&[], listen_in);
    let nc = Running::spawn(
        Command::new("nc").args(["-N", "127.0.0.1", &addr.port().to_string()]),
        nc_in,
    );
    let (status, got_down, stderr) = nc.finish();
    assert!(status.success(), "nc: {stderr}");
    let (status, got_up, stderr) = listener.finish();
    assert_clean_exit("listen", status, &stderr);
    assert_same_data("nc → listen", &got_up, &up);
    assert_same_data("listen → nc", &got_down, &down);
}

#[test]
fn listen_keep_open_serves_two_clients_in_turn() {
    let (listener, addr) = listen(&["-k"], Stdio::null());
    for (i, message) in [&b"first\n"[..], b"second\n"].into_iter().enumerate() {
        let mut stream = connect(addr);
        stream.write_all(message).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        // Our stdin is empty, so the listener half-closes at once: end of
        // stream, and nothing else.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let expected: &[u8] = if i == 0 {
            b"first\n"
        } else {
            b"first\nsecond\n"
        };
        listener.stdout.wait_for(expected);
    }
    listener
        .stderr
        .wait_for_count("Connection from 127.0.0.1:", 2);
    // Still listening for a third.
    drop(connect(addr));
}

#[test]
fn listen_without_k_refuses_a_second_client() {
    let (listener, addr) = listen(&[], Stdio::null());
    let mut first = connect(addr);
    listener.stderr.wait_for("Connection from");
    // The listening socket is closed once the first peer is accepted.
    assert!(std::net::TcpStream::connect(addr).is_err());
    first.write_all(b"only").unwrap();
    first.shutdown(Shutdown::Write).unwrap();
    let (status, out, stderr) = listener.finish();
    assert_clean_exit("listen", status, &stderr);
    assert_bytes_eq(&out, b"only");
}

#[test]
fn connect_to_a_closed_port_exits_1_with_one_line() {
    let out = run(sockit().args(["connect", &format!("127.0.0.1:{}", free_port())]));
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
fn listen_on_a_port_in_use_exits_1_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(sockit().args(["listen", &addr]));
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
fn connect_ends_quietly_when_stdout_is_closed() {
    // A server that sends until the client goes away.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let feeder = std::thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..4096 {
            if conn.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    let mut client = sockit()
        .args(["-q", "connect", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    let mut stdout = client.stdout.take().unwrap();
    stdout.read_exact(&mut head).unwrap();
    assert_bytes_eq(&head, b"xxxxxxxxxx");
    // `| head -c 10`: the reader goes away.
    drop(stdout);
    let status = crate::common::wait_timeout(&mut client, crate::common::WAIT)
        .expect("connect did not exit after its stdout closed");
    let mut stderr = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(
        feeder.join().unwrap(),
        "the server should see the client go"
    );
}

#[test]
fn connect_idle_timeout_ends_a_silent_session() {
    // Accepts (through the backlog) and never says anything.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    // stdin stays open (piped, never written): only the timeout can end it.
    let mut client = Running::spawn(
        sockit().args(["-q", "connect", "-w", "0.3", &addr]),
        Stdio::piped(),
    );
    let status = client.wait_with_stdin_open();
    assert!(status.success(), "{status}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(300)
            && elapsed < std::time::Duration::from_secs(5),
        "{elapsed:?}"
    );
}

/// Sends one datagram to the listener, prints what comes back.
const UDP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"ping\x00", ("127.0.0.1", int(sys.argv[1])))
data, _ = s.recvfrom(65536)
print(repr(data), flush=True)
"#;

#[test]
fn udp_listen_answers_its_first_sender() {
    let (_dir, input) = stdin_file(b"pong\n");
    let mut cmd = sockit();
    cmd.args(["listen", "-w", "0.5", "udp://127.0.0.1:0"]);
    let listener = Running::spawn(&mut cmd, input);
    let line = listener.stderr.wait_for("Listening on udp://");
    let port = line
        .rsplit(':')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let mut client = ChildGuard::spawn(Command::new("python3").args(["-c", UDP_CLIENT, &port]));
    client.wait_for_stdout("b'pong\\n'");
    let (status, out, stderr) = listener.finish();
    assert_clean_exit("listen", status, &stderr);
    assert_bytes_eq(&out, b"ping\x00");
    assert!(stderr.contains("Connection from 127.0.0.1:"), "{stderr}");
}

/// A UDP server that answers each datagram upper-cased, three times.
const UDP_UPPER_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(10)
print(s.getsockname()[1], flush=True)
got = []
for _ in range(3):
    data, peer = s.recvfrom(65536)
    got.append(data)
    s.sendto(data.upper(), peer)
print(repr(got), flush=True)
"#;

#[test]
fn udp_connect_sends_each_line_as_one_datagram() {
    let mut server = ChildGuard::spawn(Command::new("python3").args(["-c", UDP_UPPER_SERVER]));
    let port = server.wait_for_stdout("").trim().to_owned();
    let (_dir, input) = stdin_file(b"one\ntwo\nthree\n");
    let client = Running::spawn(
        sockit().args([
            "connect",
            "--lines",
            "-w",
            "0.5",
            &format!("udp://127.0.0.1:{port}"),
        ]),
        input,
    );
    server.wait_for_stdout("[b'one\\n', b'two\\n', b'three\\n']");
    let (status, out, stderr) = client.finish();
    assert_clean_exit("connect", status, &stderr);
    assert_bytes_eq(&out, b"ONE\nTWO\nTHREE\n");
}

#[test]
fn unix_listen_works_with_nc_dash_u_and_removes_its_file() {
    if !have("nc") {
        eprintln!("skipped: OpenBSD nc is not installed (apt-get install netcat-openbsd)");
        return;
    }
    let (_tmp, path) = crate::common::temp_socket_path("nc.sock");
    let (_dir_l, listen_in) = stdin_file(b"from sockit");
    let (_dir_c, nc_in) = stdin_file(b"from nc");
    let endpoint = format!("unix:{}", path.display());
    let listener = Running::spawn(sockit().args(["listen", &endpoint]), listen_in);
    listener.stderr.wait_for("Listening on unix:");
    let nc = Running::spawn(Command::new("nc").args(["-U", "-N"]).arg(&path), nc_in);
    let (status, got, stderr) = nc.finish();
    assert!(status.success(), "nc: {stderr}");
    let (status, out, stderr) = listener.finish();
    assert_clean_exit("listen", status, &stderr);
    assert_bytes_eq(&got, b"from sockit");
    assert_bytes_eq(&out, b"from nc");
    assert!(!path.exists(), "the socket file was left behind");
}

/// A seqpacket server answering each message upper-cased until the
/// client's end of stream; then a Unix datagram server doing the same for
/// one datagram.
const UNIX_UPPER_SERVERS: &str = r#"
import os, socket, sys
kind, path = sys.argv[1], sys.argv[2]
ty = socket.SOCK_SEQPACKET if kind == "seqpacket" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_UNIX, ty)
s.bind(path)
s.settimeout(10)
if kind == "seqpacket":
    s.listen(1)
    print("ready", flush=True)
    conn, _ = s.accept()
    while True:
        msg = conn.recv(65536)
        if not msg:
            break
        conn.send(msg.upper())
    conn.close()
else:
    print("ready", flush=True)
    data, peer = s.recvfrom(65536)
    s.sendto(data.upper(), peer)
os.unlink(path)
"#;

#[test]
fn seqpacket_and_unix_dgram_connect_work_with_python_peers() {
    for kind in ["seqpacket", "unix-dgram"] {
        let (_tmp, path) = crate::common::temp_socket_path("peer.sock");
        let mut server = ChildGuard::spawn(Command::new("python3").args([
            "-c",
            UNIX_UPPER_SERVERS,
            kind,
            path.to_str().unwrap(),
        ]));
        server.wait_for_stdout("ready");
        let (_dir, input) = stdin_file(b"hello\x00there");
        let client = Running::spawn(
            sockit().args([
                "connect",
                "-w",
                "0.5",
                &format!("{kind}:{}", path.display()),
            ]),
            input,
        );
        let (status, out, stderr) = client.finish();
        assert_clean_exit(kind, status, &stderr);
        assert_bytes_eq(&out, b"HELLO\x00THERE");
    }
}
