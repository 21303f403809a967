//! `sockit relay FROM TO`: pairs against real peers (socat, nc, curl,
//! `sockit serve`), half-close both ways, resets, limits, exec children,
//! descriptors.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    assert_bytes_eq, assert_same_data, connect, have, read_to_end, reset, run, send, sockit,
    stdin_file, temp_socket_path, test_bytes, Running, Server,
};

/// Starts `sockit relay ARGS…` and waits for its `Serving relay on …` line.
fn relay(args: &[&str]) -> Server {
    let mut all = vec!["relay"];
    all.extend_from_slice(args);
    Server::start_raw(&all)
}

/// A TCP echo server (`sockit serve --service echo`).
fn echo_server() -> Server {
    Server::start(&["--service", "echo"])
}

/// A one-connection upstream on a thread: accepts once and runs `serve` on
/// the stream. Returns its address and the thread's handle.
fn upstream<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, std::thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        serve(stream)
    });
    (addr, handle)
}

#[test]
fn relay_carries_curl_through_tcp_to_unix_to_sockit_serve() {
    if !have("curl") {
        eprintln!("skipped: curl is not installed (apt-get install curl)");
        return;
    }
    let (_dir, path) = temp_socket_path("hello.sock");
    let unix = format!("unix:{}", path.display());
    let _server = Server::start_raw(&["serve", "--listen", &unix]);
    let relay = relay(&["127.0.0.1:0", &unix]);
    let out = run(Command::new("curl").args([
        "-sS",
        "-i",
        "--max-time",
        "5",
        &format!("http://{}/", relay.addr),
    ]));
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nHello, world!"), "{text}");
}

#[test]
fn relay_delivers_the_reply_sent_after_the_clients_fin() {
    // The upstream answers only once it has read to the end of the
    // request: the client's FIN must reach it as a FIN, and the reply must
    // still flow back on the half-closed connection.
    let (addr, up) = upstream(|mut stream| {
        let mut request = Vec::new();
        stream.read_to_end(&mut request).unwrap();
        stream
            .write_all(format!("got {} bytes", request.len()).as_bytes())
            .unwrap();
    });
    let relay = relay(&["127.0.0.1:0", &addr.to_string()]);
    let mut client = connect(relay.addr);
    send(&mut client, &[7u8; 100_000]);
    client.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_end(&mut client), b"got 100000 bytes");
    up.join().unwrap();
}

#[test]
fn relay_keeps_carrying_the_client_after_the_upstream_half_closes() {
    // The reverse: the upstream speaks first and shuts down its sending
    // side, and still reads what the client sends afterwards.
    let (addr, up) = upstream(|mut stream| {
        stream.write_all(b"banner").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        rest
    });
    let relay = relay(&["127.0.0.1:0", &addr.to_string()]);
    let mut client = connect(relay.addr);
    let mut banner = Vec::new();
    client.read_to_end(&mut banner).unwrap();
    assert_bytes_eq(&banner, b"banner");
    send(&mut client, b"after the upstream's FIN");
    client.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&up.join().unwrap(), b"after the upstream's FIN");
}

#[test]
fn relay_passes_a_client_reset_on_as_a_reset() {
    let (arrived, wait_arrived) = std::sync::mpsc::channel();
    let (addr, up) = upstream(move |mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        arrived.send(()).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).map(|_| rest)
    });
    let relay = relay(&["127.0.0.1:0", &addr.to_string()]);
    let mut client = connect(relay.addr);
    send(&mut client, b"hello");
    // Reset only once the bytes are through, so the reset is all that is left.
    wait_arrived.recv_timeout(Duration::from_secs(5)).unwrap();
    reset(client);
    let err = up
        .join()
        .unwrap()
        .expect_err("the upstream saw a clean end, not a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn relay_passes_an_upstream_reset_on_as_a_reset() {
    let (addr, up) = upstream(|mut stream| {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        reset(stream);
    });
    let relay = relay(&["127.0.0.1:0", &addr.to_string()]);
    let mut client = connect(relay.addr);
    send(&mut client, b"hello");
    up.join().unwrap();
    let mut buf = Vec::new();
    let err = client
        .read_to_end(&mut buf)
        .expect_err("the client saw a clean end, not a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn relay_resets_the_client_when_to_refuses() {
    let closed = crate::common::free_port();
    let relay = relay(&["127.0.0.1:0", &format!("127.0.0.1:{closed}")]);
    // The reset can arrive before connect(2) has even reported success
    // (std's connect_timeout then reads it from SO_ERROR), or on the read.
    let err = TcpStream::connect_timeout(&relay.addr, Duration::from_secs(2))
        .and_then(|mut client| {
            client.set_read_timeout(Some(Duration::from_secs(5)))?;
            client.read_to_end(&mut Vec::new())
        })
        .expect_err("a refused TO looked like an empty answer");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    relay.stderr.wait_for("cannot connect to");
}

#[test]
fn relay_works_between_an_nc_client_and_a_socat_upstream() {
    if !have("nc") || !have("socat") {
        eprintln!("skipped: needs OpenBSD nc and socat (apt-get install netcat-openbsd socat)");
        return;
    }
    let port = crate::common::free_port();
    let _socat = Running::spawn(
        Command::new("socat").args([
            &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
            "EXEC:cat",
        ]),
        Stdio::null(),
    );
    crate::common::wait_for_tcp_listener(port);
    let relay = relay(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let data = test_bytes(4 << 20, 11);
    let (_dir, input) = stdin_file(&data);
    let nc = Running::spawn(
        Command::new("nc").args(["-N", "127.0.0.1", &relay.addr.port().to_string()]),
        input,
    );
    let (status, echoed, stderr) = nc.finish();
    assert!(status.success(), "nc: {stderr}");
    assert_same_data("nc → relay → socat EXEC:cat → relay → nc", &echoed, &data);
}

#[test]
fn relay_works_between_a_socat_client_and_an_nc_upstream() {
    if !have("nc") || !have("socat") {
        eprintln!("skipped: needs OpenBSD nc and socat (apt-get install netcat-openbsd socat)");
        return;
    }
    let port = crate::common::free_port();
    let down = test_bytes(1 << 20, 12);
    let (_dir_n, nc_in) = stdin_file(&down);
    let nc = Running::spawn(
        Command::new("nc").args(["-N", "-l", "127.0.0.1", &port.to_string()]),
        nc_in,
    );
    crate::common::wait_for_tcp_listener(port);
    let relay = relay(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let up = test_bytes(1 << 20, 13);
    let (_dir_s, socat_in) = stdin_file(&up);
    let socat = Running::spawn(
        Command::new("socat").args(["-", &format!("TCP:{}", relay.addr)]),
        socat_in,
    );
    let (status, got_down, stderr) = socat.finish();
    assert!(status.success(), "socat: {stderr}");
    let (status, got_up, stderr) = nc.finish();
    assert!(status.success(), "nc: {stderr}");
    assert_same_data("socat → relay → nc", &got_up, &up);
    assert_same_data("nc → relay → socat", &got_down, &down);
}

#[test]
fn relay_from_a_unix_socket_serves_nc_dash_u() {
    if !have("nc") {
        eprintln!("skipped: OpenBSD nc is not installed (apt-get install netcat-openbsd)");
        return;
    }
    let echo = echo_server();
    let (_dir, path) = temp_socket_path("relay.sock");
    let from = format!("unix:{}", path.display());
    let relay = relay(&[&from, &echo.addr.to_string()]);
    assert_eq!(relay.endpoint, from);
    let data = test_bytes(256 << 10, 14);
    let (_dir_in, input) = stdin_file(&data);
    let nc = Running::spawn(Command::new("nc").args(["-U", "-N"]).arg(&path), input);
    let (status, echoed, stderr) = nc.finish();
    assert!(status.success(), "nc -U: {stderr}");
    assert_same_data("nc -U → relay → echo", &echoed, &data);
}

#[test]
fn relay_closes_a_silent_pair_after_the_idle_timeout() {
    let echo = echo_server();
    let relay = relay(&[
        "-v",
        "--idle-timeout",
        "1",
        "127.0.0.1:0",
        &echo.addr.to_string(),
    ]);
    let mut client = connect(relay.addr);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    send(&mut client, b"ping");
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("a clean close");
    let waited = started.elapsed();
    assert!(rest.is_empty());
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "closed after {waited:?}, not after about 1 s"
    );
    relay.stderr.wait_for("idle timeout after");
}

#[test]
fn relay_holds_extra_clients_in_the_backlog_at_max_conns() {
    let echo = echo_server();
    let relay = relay(&["--max-conns", "1", "127.0.0.1:0", &echo.addr.to_string()]);
    let mut first = connect(relay.addr);
    send(&mut first, b"one");
    let mut buf = [0u8; 3];
    first.read_exact(&mut buf).unwrap();
    let mut second = connect(relay.addr);
    send(&mut second, b"two");
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // A signal to this test process (another test's child exiting) can
    // cut the wait short with EINTR: wait again.
    let err = loop {
        match second.read(&mut buf) {
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            other => break other.expect_err("a second pair ran beyond --max-conns 1"),
        }
    };
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    second.read_exact(&mut buf).unwrap();
    assert_bytes_eq(&buf, b"two");
}

#[test]
fn relay_logs_bytes_each_way_and_duration_with_v() {
    let echo = echo_server();
    let relay = relay(&["-v", "127.0.0.1:0", &echo.addr.to_string()]);
    let mut client = connect(relay.addr);
    send(&mut client, b"0123456789");
    client.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_end(&mut client), b"0123456789");
    let line = relay.stderr.wait_for("bytes down");
    assert!(line.contains("closed after"), "{line}");
    assert!(
        line.contains("10 bytes up, 10 bytes down (splice)"),
        "{line}"
    );
}

#[test]
fn relay_splices_tcp_to_unix_and_buffers_tcp_to_exec() {
    let (_dir, path) = temp_socket_path("echo.sock");
    let unix = format!("unix:{}", path.display());
    let _echo = Server::start_raw(&["serve", "--service", "echo", "--listen", &unix]);
    for (to, mode) in [(unix.as_str(), "(splice)"), ("exec:cat", "(buffered)")] {
        let relay = relay(&["-v", "127.0.0.1:0", to]);
        let mut client = connect(relay.addr);
        send(&mut client, b"abc");
        client.shutdown(Shutdown::Write).unwrap();
        assert_bytes_eq(&read_to_end(&mut client), b"abc");
        let line = relay.stderr.wait_for("bytes down");
        assert!(line.contains("3 bytes up, 3 bytes down"), "{line}");
        assert!(line.ends_with(mode), "{to}: {line}");
    }
}

#[test]
fn relay_leaves_the_descriptor_count_unchanged_after_many_connections() {
    let echo = echo_server();
    let relay = relay(&["-q", "127.0.0.1:0", &echo.addr.to_string()]);
    let before = relay.fd_count();
    for i in 0..300u32 {
        let mut client = connect(relay.addr);
        match i % 3 {
            // Clean: request, FIN, reply, close.
            0 => {
                send(&mut client, b"hello");
                client.shutdown(Shutdown::Write).unwrap();
                assert_bytes_eq(&read_to_end(&mut client), b"hello");
            }
            // Reset by the client mid-pair.
            1 => {
                send(&mut client, b"hello");
                reset(client);
            }
            // Closed without a byte.
            _ => drop(client),
        }
    }
    let after = relay.wait_fd_count(before);
    assert_eq!(
        after, before,
        "descriptors leaked: {before} before, {after} after"
    );
}

#[test]
fn relay_lets_a_pair_finish_after_sigterm_and_refuses_new_clients() {
    let echo = echo_server();
    let relay = relay(&["--grace", "5", "127.0.0.1:0", &echo.addr.to_string()]);
    let mut client = connect(relay.addr);
    send(&mut client, b"before");
    let mut buf = [0u8; 6];
    client.read_exact(&mut buf).unwrap();
    relay.signal(nix::sys::signal::Signal::SIGTERM);
    relay.stderr.wait_for("shutting down");
    // The listener is closed: the kernel refuses.
    let refused = TcpStream::connect_timeout(&relay.addr, Duration::from_secs(2));
    assert!(refused.is_err(), "a new client was accepted after SIGTERM");
    // The pair in flight goes on.
    send(&mut client, b"after");
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).unwrap();
    assert_bytes_eq(&buf, b"after");
    client.shutdown(Shutdown::Write).unwrap();
    read_to_end(&mut client);
    let (status, stderr) = relay.terminate_wait();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("relayed 1 connection, 11 bytes up, 11 bytes down"),
        "{stderr}"
    );
}

#[test]
fn relay_exec_cat_echoes_each_connection() {
    let relay = relay(&["127.0.0.1:0", "exec:cat"]);
    let data = test_bytes(1 << 20, 15);
    for _ in 0..3 {
        let mut client = connect(relay.addr);
        let writer = {
            let mut client = client.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || {
                client.write_all(&data).unwrap();
                client.shutdown(Shutdown::Write).unwrap();
            })
        };
        let echoed = read_to_end(&mut client);
        writer.join().unwrap();
        assert_same_data("exec:cat", &echoed, &data);
    }
    assert_no_children(&relay);
}

#[test]
fn relay_exec_sh_c_sees_the_peer_address_in_its_environment() {
    let relay = relay(&[
        "127.0.0.1:0",
        r#"exec:sh -c 'read line; echo "$line from $SOCAT_PEERADDR:$SOCAT_PEERPORT ($SOCKIT_PEER_ADDR)"'"#,
    ]);
    let mut client = connect(relay.addr);
    let me = client.local_addr().unwrap();
    send(&mut client, b"hi\n");
    let reply = String::from_utf8(read_to_end(&mut client)).unwrap();
    assert_eq!(reply, format!("hi from {}:{} ({me})\n", me.ip(), me.port()));
    // The child has exited; it is reaped once the pair ends (the client
    // could still be sending: half-close).
    drop(client);
    assert_no_children(&relay);
}

#[test]
fn relay_exec_reaps_a_child_that_ignores_its_closed_stdin() {
    // `sleep` never reads stdin, writes stdout nor exits on its own: once
    // the pair goes idle, the relay must kill and reap it.
    let relay = relay(&["--idle-timeout", "1", "127.0.0.1:0", "exec:exec sleep 60"]);
    let client = connect(relay.addr);
    relay_child_appears(&relay);
    drop(client);
    assert_no_children(&relay);
}

/// Waits until the relay has a child process.
#[track_caller]
fn relay_child_appears(relay: &Server) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while children(relay.pid()).is_empty() {
        assert!(Instant::now() < deadline, "no exec child appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to 10 s for the relay to have no child processes (running or
/// zombie) left.
#[track_caller]
fn assert_no_children(relay: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = children(relay.pid());
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "children left unreaped: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Child process ids of `pid`, from /proc (zombies included).
fn children(pid: u32) -> Vec<String> {
    let mut all = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                all.extend(text.split_whitespace().map(str::to_owned));
            }
        }
    }
    all
}

#[test]
fn relay_dash_joins_stdin_and_stdout_to_to() {
    let echo = echo_server();
    let data = test_bytes(512 << 10, 16);
    let (_dir, input) = stdin_file(&data);
    let child = Running::spawn(sockit().args(["relay", "-", &echo.addr.to_string()]), input);
    let (status, echoed, stderr) = child.finish();
    assert!(status.success(), "{stderr}");
    assert_same_data("relay - → echo", &echoed, &data);
}

#[test]
fn relay_rejects_a_datagram_from_with_a_stream_to() {
    let out = run(sockit().args(["relay", "udp://127.0.0.1:0", "unix:/nonexistent"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("sockit: error: relay cannot join"),
        "{stderr}"
    );
}

/// A UDP upstream on a thread that answers each datagram with
/// `PAYLOAD via PORT` (PORT: the source port it came from), for `n`
/// datagrams. Returns its address and the source addresses it saw.
fn udp_upstream(n: usize) -> (SocketAddr, std::thread::JoinHandle<Vec<SocketAddr>>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let (len, from) = socket.recv_from(&mut buf).unwrap();
            let mut reply = buf[..len].to_vec();
            reply.extend_from_slice(format!(" via {}", from.port()).as_bytes());
            socket.send_to(&reply, from).unwrap();
            seen.push(from);
        }
        seen
    });
    (addr, handle)
}

/// A UDP client socket with a 5 s read timeout.
fn udp_client() -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

/// Sends `payload` to `to` and returns the reply as text.
#[track_caller]
fn udp_ask(socket: &std::net::UdpSocket, to: SocketAddr, payload: &str) -> String {
    socket.send_to(payload.as_bytes(), to).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = socket
        .recv_from(&mut buf)
        .expect("a reply through the relay");
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[test]
fn udp_relay_sends_each_clients_replies_back_to_it() {
    let (up, seen) = udp_upstream(4);
    let relay = relay(&["-v", "udp://127.0.0.1:0", &format!("udp://{up}")]);
    let (a, b) = (udp_client(), udp_client());
    let a1 = udp_ask(&a, relay.addr, "a1");
    let b1 = udp_ask(&b, relay.addr, "b1");
    let a2 = udp_ask(&a, relay.addr, "a2");
    let b2 = udp_ask(&b, relay.addr, "b2");
    let seen = seen.join().unwrap();
    // Each client has one upstream socket of its own, used for all its datagrams.
    assert_eq!(
        seen[0], seen[2],
        "client a's datagrams left from two sockets"
    );
    assert_eq!(
        seen[1], seen[3],
        "client b's datagrams left from two sockets"
    );
    assert_ne!(seen[0], seen[1], "two clients shared one upstream socket");
    assert_eq!(a1, format!("a1 via {}", seen[0].port()));
    assert_eq!(a2, format!("a2 via {}", seen[0].port()));
    assert_eq!(b1, format!("b1 via {}", seen[1].port()));
    assert_eq!(b2, format!("b2 via {}", seen[1].port()));
    let (status, stderr) = relay.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("2 UDP flows, 4 datagrams up, 4 down, 0 dropped"),
        "{stderr}"
    );
}

#[test]
fn udp_relay_reaps_a_flow_after_the_idle_timeout() {
    let (up, seen) = udp_upstream(2);
    let relay = relay(&[
        "-v",
        "--idle-timeout",
        "1",
        "udp://127.0.0.1:0",
        &format!("udp://{up}"),
    ]);
    let before = relay.fd_count();
    let client = udp_client();
    udp_ask(&client, relay.addr, "first");
    assert_eq!(
        relay.fd_count(),
        before + 1,
        "no upstream socket for the flow"
    );
    relay.stderr.wait_for("idle timeout after");
    assert_eq!(
        relay.wait_fd_count(before),
        before,
        "the reaped flow's socket is still open"
    );
    // The same client now gets a new flow: a new upstream socket.
    udp_ask(&client, relay.addr, "second");
    let seen = seen.join().unwrap();
    assert_ne!(seen[0], seen[1], "the stale flow was reused");
}

#[test]
fn udp_relay_holds_at_most_max_flows_sockets() {
    let (up, _seen) = udp_upstream(6);
    let relay = relay(&[
        "--max-flows",
        "2",
        "udp://127.0.0.1:0",
        &format!("udp://{up}"),
    ]);
    let before = relay.fd_count();
    let clients: Vec<_> = (0..6).map(|_| udp_client()).collect();
    for (i, client) in clients.iter().enumerate() {
        let reply = udp_ask(client, relay.addr, &format!("c{i}"));
        assert!(reply.starts_with(&format!("c{i} via ")), "{reply}");
        // An evicted flow's socket closes once its reply task has been
        // dropped, a moment after the eviction.
        let deadline = Instant::now() + Duration::from_secs(5);
        while relay.fd_count() > before + 2 {
            assert!(
                Instant::now() < deadline,
                "more than 2 flows open: {} descriptors, {before} before",
                relay.fd_count()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// HAProxy in the foreground, in TCP mode, reading a PROXY header on a
/// loopback bind (`accept-proxy`) and forwarding to `backend`; it logs
/// `client=IP:PORT` (the address from the header) on stderr per session.
fn haproxy(backend: SocketAddr) -> (Running, u16, tempfile::TempDir) {
    let port = crate::common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n  log stderr format raw local0\n\
             defaults\n  mode tcp\n  log global\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n\
             frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n  log-format \"client=%ci:%cp\"\n  default_backend be\n\
             backend be\n  server s1 {backend}\n"
        ),
    )
    .unwrap();
    let running = Running::spawn(
        Command::new("haproxy").arg("-db").arg("-f").arg(&config),
        Stdio::null(),
    );
    crate::common::wait_for_tcp_listener(port);
    (running, port, dir)
}

fn haproxy_reads_the_client_address_sent_with(version: &str) {
    if !have("haproxy") {
        eprintln!("skipped: HAProxy is not installed (apt-get install haproxy)");
        return;
    }
    let echo = echo_server();
    let (haproxy, port, _dir) = haproxy(echo.addr);
    let relay = relay(&[
        "--send-proxy",
        version,
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut client = connect(relay.addr);
    let me = client.local_addr().unwrap();
    send(&mut client, b"ping");
    client.shutdown(Shutdown::Write).unwrap();
    // The header was taken off the stream: the echo server saw only "ping".
    assert_bytes_eq(&read_to_end(&mut client), b"ping");
    haproxy.stderr.wait_for(&format!("client={me}"));
}

#[test]
fn haproxy_reads_the_client_address_from_send_proxy_v2() {
    haproxy_reads_the_client_address_sent_with("v2");
}

#[test]
fn haproxy_reads_the_client_address_from_send_proxy_v1() {
    haproxy_reads_the_client_address_sent_with("v1");
}

#[test]
fn send_proxy_to_an_exec_target_is_refused() {
    let out = run(sockit().args(["relay", "--send-proxy", "v2", "127.0.0.1:0", "exec:cat"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--send-proxy needs a stream TO"),
        "{stderr}"
    );
}

#[test]
fn relay_from_seqpacket_keeps_each_message_whole() {
    let echo = echo_server();
    let name = format!("seqpacket:@sockit-relay-test-{}", std::process::id());
    let relay = relay(&[&name, &echo.addr.to_string()]);
    let out = run(sockit().args(["send", &relay.endpoint, "one message"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_bytes_eq(&out.stdout, b"Received b'one message'\n");
}

#[test]
fn relay_works_over_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let echo = Server::start_raw(&["serve", "--service", "echo", "--listen", "[::1]:0"]);
    let relay = relay(&["-6", "[::1]:0", &echo.endpoint]);
    assert!(relay.addr.is_ipv6(), "{}", relay.endpoint);
    let mut client = connect(relay.addr);
    send(&mut client, b"over v6");
    client.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_end(&mut client), b"over v6");
}
