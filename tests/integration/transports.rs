//! Every transport × every service, answered through `sockit send` and
//! through an independent peer (python3's `socket`, `nc -U`, `curl
//! --unix-socket`); Unix socket files (stale, live, not a socket, removed
//! at exit, `--mode`); abstract names; `-4`/`-6`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::{assert_bytes_eq, have, python, run, sockit, temp_socket_path, Server};

/// The services `sockit serve --service` offers.
const SERVICES: [&str; 5] = ["hello", "echo", "discard", "daytime", "chargen"];

/// The first characters of RFC 864's pattern.
const CHARGEN_START: &[u8] = b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A python3 peer: `KIND ADDR DATA` sends DATA once and writes the one
/// reply (datagram, message, or up to 4 KiB of stream) to stdout. A Unix
/// datagram peer binds its own temporary path so the server can answer.
const PEER: &str = r#"
import os, socket, sys, tempfile
kind, addr, data = sys.argv[1], sys.argv[2], sys.argv[3].encode()
def unix(a):
    return "\0" + a[1:] if a.startswith("@") else a
if kind == "udp":
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(data, (host, int(port)))
    out = s.recv(70000)
elif kind == "unix-dgram":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.settimeout(5)
    me = os.path.join(tempfile.mkdtemp(), "peer.sock")
    s.bind(me)
    s.sendto(data, unix(addr))
    out = s.recv(70000)
    os.unlink(me)
elif kind == "seqpacket":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(unix(addr))
    s.send(data)
    out = s.recv(70000)
elif kind == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(unix(addr))
    s.sendall(data)
    out = s.recv(4096)
sys.stdout.buffer.write(out)
"#;

/// A fresh abstract name, unique to this test run.
fn abstract_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "@sockit-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts `sockit serve -q --service SERVICE -l ENDPOINT EXTRA…`.
fn serve(service: &str, endpoint: &str, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--service", service, "-l", endpoint];
    if !extra.iter().any(|a| a.starts_with("-v")) {
        args.push("-q");
    }
    args.extend_from_slice(extra);
    Server::start_raw(&args)
}

/// `sockit send --raw ARGS…`: the exit code, the reply bytes, and stderr.
fn send(args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let out = run(sockit().arg("send").arg("--raw").args(args));
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks one service's reply to DATA sent once, as any transport gives it.
#[track_caller]
fn check_reply(service: &str, datagram: bool, data: &[u8], reply: &[u8]) {
    match service {
        "hello" => assert_bytes_eq(reply, b"Hello, world!"),
        "echo" => assert_bytes_eq(reply, data),
        "discard" => assert_bytes_eq(reply, b""),
        "daytime" => {
            let text = String::from_utf8_lossy(reply);
            assert!(text.ends_with("-UTC\r\n"), "daytime reply {text:?}");
            assert!(
                text.contains(", 20"),
                "daytime reply without a year: {text:?}"
            );
        }
        "chargen" => {
            if datagram {
                assert!(reply.len() <= 512, "{} chars", reply.len());
            } else {
                assert!(!reply.is_empty());
            }
            let n = reply.len().min(CHARGEN_START.len());
            assert_bytes_eq(&reply[..n], &CHARGEN_START[..n]);
        }
        other => panic!("unknown service {other}"),
    }
}

/// Runs every service on endpoints made by `endpoint`, and checks the
/// reply through `sockit send` and through `peer`.
fn every_service(
    kind: &str,
    datagram: bool,
    endpoint: impl Fn(&str) -> (Option<tempfile::TempDir>, String),
    peer: impl Fn(&str, &Server, &[u8]) -> Option<Vec<u8>>,
) {
    for service in SERVICES {
        let (_dir, listen) = endpoint(service);
        let server = serve(service, &listen, &[]);
        let data = format!("Hello, world via {kind}");
        // Discard never answers a datagram: send times out, as it should.
        if datagram && service == "discard" {
            let (code, reply, stderr) = send(&["--timeout", "0.3", &server.endpoint, &data]);
            assert_eq!(code, Some(1), "{stderr}");
            assert!(stderr.contains("timed out after 0.3s"), "{stderr}");
            assert!(reply.is_empty());
            continue;
        }
        let mut args = vec![server.endpoint.as_str(), data.as_str()];
        if service == "chargen" && !datagram && kind != "seqpacket" {
            // An endless stream: read a little, then close.
            args.extend(["--max-bytes", "1000"]);
        }
        let (code, reply, stderr) = send(&args);
        assert_eq!(code, Some(0), "{kind} {service}: {stderr}");
        check_reply(service, datagram, data.as_bytes(), &reply);
        if kind == "seqpacket" && service == "chargen" {
            // One message: the whole 95-line cycle, never a part of it.
            assert_eq!(reply.len(), 95 * 74, "seqpacket chargen message");
        }
        if let Some(reply) = peer(service, &server, data.as_bytes()) {
            check_reply(service, datagram, data.as_bytes(), &reply);
        }
    }
}

/// The python3 peer, for `kind`.
fn python_peer(kind: &'static str) -> impl Fn(&str, &Server, &[u8]) -> Option<Vec<u8>> {
    move |service, server, data| {
        if service == "discard" {
            return None; // no reply to wait for
        }
        let addr = server
            .endpoint
            .split_once(':')
            .map(|(scheme, rest)| {
                if scheme == "udp" {
                    rest.trim_start_matches("//").to_owned()
                } else {
                    rest.to_owned()
                }
            })
            .unwrap();
        Some(python(
            PEER,
            &[kind, &addr, std::str::from_utf8(data).unwrap()],
        ))
    }
}

fn path_in_temp(name: &str) -> (Option<tempfile::TempDir>, String) {
    let (dir, path) = temp_socket_path(name);
    (Some(dir), path.display().to_string())
}

#[test]
fn tcp_runs_every_service() {
    every_service(
        "tcp",
        false,
        |_| (None, "127.0.0.1:0".to_owned()),
        |_, _, _| None,
    );
}

#[test]
fn udp_runs_every_service_for_send_and_python() {
    every_service(
        "udp",
        true,
        |_| (None, "udp://127.0.0.1:0".to_owned()),
        python_peer("udp"),
    );
}

#[test]
fn unix_datagram_runs_every_service_for_send_and_python() {
    every_service(
        "unix-dgram",
        true,
        |service| {
            let (dir, path) = path_in_temp(&format!("{service}.sock"));
            (dir, format!("unix-dgram:{path}"))
        },
        python_peer("unix-dgram"),
    );
}

#[test]
fn seqpacket_runs_every_service_for_send_and_python() {
    every_service(
        "seqpacket",
        false,
        |service| {
            let (dir, path) = path_in_temp(&format!("{service}.sock"));
            (dir, format!("seqpacket:{path}"))
        },
        python_peer("seqpacket"),
    );
}

#[test]
fn unix_stream_runs_every_service_for_send_and_nc() {
    let nc = have("nc");
    every_service(
        "unix",
        false,
        |service| {
            let (dir, path) = path_in_temp(&format!("{service}.sock"));
            (dir, format!("unix:{path}"))
        },
        |service, server, data| {
            let path = server.endpoint.strip_prefix("unix:").unwrap();
            if service == "chargen" || !nc {
                return Some(python(
                    PEER,
                    &["unix", path, std::str::from_utf8(data).unwrap()],
                ));
            }
            // OpenBSD nc: -N shuts the write side at the end of stdin.
            let out = run(Command::new("sh")
                .args(["-c", r#"printf %s "$1" | nc -N -U "$2""#, "sh"])
                .arg(std::str::from_utf8(data).unwrap())
                .arg(path));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(out.stdout)
        },
    );
}

#[test]
fn abstract_names_serve_every_transport_and_leave_no_file() {
    for (scheme, kind) in [
        ("unix", "unix"),
        ("unix-dgram", "unix-dgram"),
        ("seqpacket", "seqpacket"),
    ] {
        let name = abstract_name(scheme);
        let endpoint = format!("{scheme}:{name}");
        let server = serve("echo", &endpoint, &[]);
        assert_eq!(server.endpoint, endpoint);
        let (code, reply, stderr) = send(&[&endpoint, "abstract"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_bytes_eq(&reply, b"abstract");
        assert_bytes_eq(&python(PEER, &[kind, &name, "from python"]), b"from python");
        // The kernel lists it with its @ and there is no file of that name.
        let table = std::fs::read_to_string("/proc/net/unix").unwrap();
        assert!(table.contains(&name), "{name} not in /proc/net/unix");
        assert!(!std::path::Path::new(&name).exists());
    }
}

#[test]
fn hello_on_a_unix_socket_answers_curl_and_raw_clients() {
    let (_dir, path) = temp_socket_path("hello.sock");
    let endpoint = format!("unix:{}", path.display());
    let server = serve("hello", &endpoint, &[]);
    if have("curl") {
        let out = run(Command::new("curl")
            .args(["-sS", "--max-time", "5", "--unix-socket"])
            .arg(&path)
            .arg("http://localhost/"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(&out.stdout, b"Hello, world!");
        let name = abstract_name("hello");
        let _abstract = serve("hello", &format!("unix:{name}"), &[]);
        let out = run(Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "--abstract-unix-socket",
                &name[1..],
            ])
            .arg("http://localhost/"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(&out.stdout, b"Hello, world!");
    } else {
        eprintln!("skipping the curl half: curl is not installed");
    }
    let (code, reply, _) = send(&[&server.endpoint]);
    assert_eq!(code, Some(0));
    assert_bytes_eq(&reply, b"Hello, world!");
}

#[test]
fn echo_returns_a_65507_byte_udp_datagram_byte_for_byte() {
    let server = serve("echo", "udp://127.0.0.1:0", &[]);
    let reply = python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
data = bytes(i % 251 for i in range(65507))
s.sendto(data, ("127.0.0.1", int(sys.argv[1])))
got = s.recv(70000)
print(len(got), got == data)
"#,
        &[&server.addr.port().to_string()],
    );
    assert_eq!(String::from_utf8_lossy(&reply), "65507 True\n");
}

#[test]
fn seqpacket_answers_each_message_with_one_message() {
    let (_dir, path) = temp_socket_path("seq.sock");
    let _server = serve("echo", &format!("seqpacket:{}", path.display()), &[]);
    let out = python(
        r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(5)
s.connect(sys.argv[1])
sizes = [1, 7, 5000, 100000, 3]
for n in sizes:
    s.send(b"m" * n)
print([len(s.recv(200000)) for _ in sizes])
"#,
        &[path.to_str().unwrap()],
    );
    assert_eq!(String::from_utf8_lossy(&out), "[1, 7, 5000, 100000, 3]\n");
}

#[test]
fn a_vanished_unix_datagram_peer_never_stops_the_server() {
    let (_dir, path) = temp_socket_path("dgram.sock");
    let server = serve("echo", &format!("unix-dgram:{}", path.display()), &["-vv"]);
    // Senders that send and vanish at once (socket closed, file removed),
    // and one that never bound an address: no reply can reach them.
    python(
        r#"
import os, socket, sys, tempfile
for i in range(20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    me = os.path.join(tempfile.mkdtemp(), "gone.sock")
    s.bind(me)
    s.sendto(b"x" * 100, sys.argv[1])
    s.close()
    os.unlink(me)
u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
u.sendto(b"unnamed", sys.argv[1])
"#,
        &[path.to_str().unwrap()],
    );
    server.stderr.wait_for("unnamed");
    let (code, reply, stderr) = send(&[&server.endpoint, "still here?"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_bytes_eq(&reply, b"still here?");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
}

#[test]
fn datagram_servers_shut_down_on_sigterm_and_report_requests() {
    let server = serve("echo", "udp://127.0.0.1:0", &[]);
    for _ in 0..3 {
        let (code, _, stderr) = send(&[&server.endpoint, "x"]);
        assert_eq!(code, Some(0), "{stderr}");
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("3 requests"), "{log}");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    for scheme in ["unix", "unix-dgram", "seqpacket"] {
        let (_dir, path) = temp_socket_path("stale.sock");
        // A server that died without cleaning up leaves its file behind.
        python(
            r#"
import socket, sys
kinds = {"unix": socket.SOCK_STREAM, "unix-dgram": socket.SOCK_DGRAM, "seqpacket": socket.SOCK_SEQPACKET}
s = socket.socket(socket.AF_UNIX, kinds[sys.argv[1]])
s.bind(sys.argv[2])
"#,
            &[scheme, path.to_str().unwrap()],
        );
        assert!(path.exists());
        let endpoint = format!("{scheme}:{}", path.display());
        let mut args = vec!["serve", "--service", "echo", "-l", &endpoint];
        args.push("-v");
        let server = Server::start_raw(&args);
        assert!(
            server.stderr.text().contains("removed stale socket file"),
            "{}",
            server.stderr.text()
        );
        let (code, reply, stderr) = send(&[&endpoint, "reused"]);
        assert_eq!(code, Some(0), "{scheme}: {stderr}");
        assert_bytes_eq(&reply, b"reused");
    }
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let (_dir, path) = temp_socket_path("live.sock");
    let endpoint = format!("unix:{}", path.display());
    let first = serve("echo", &endpoint, &[]);
    let out = run(sockit().args(["serve", "-l", &endpoint]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a server is running there"), "{stderr}");
    let (code, reply, _) = send(&[&first.endpoint, "first is alive"]);
    assert_eq!(code, Some(0));
    assert_bytes_eq(&reply, b"first is alive");
}

#[test]
fn a_file_that_is_not_a_socket_is_never_removed() {
    let (_dir, path) = temp_socket_path("precious.txt");
    std::fs::write(&path, "keep me").unwrap();
    for scheme in ["unix", "unix-dgram", "seqpacket"] {
        let out = run(sockit().args(["serve", "-l", &format!("{scheme}:{}", path.display())]));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("sockit: error: cannot listen on"),
            "{stderr}"
        );
        assert!(
            stderr.contains("is not a socket; refusing to remove it"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }
}

#[test]
fn socket_files_are_removed_at_exit_and_take_the_mode() {
    for scheme in ["unix", "unix-dgram", "seqpacket"] {
        let (_dir, path) = temp_socket_path("mode.sock");
        let endpoint = format!("{scheme}:{}", path.display());
        let server = serve("echo", &endpoint, &["--mode", "0640"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "{scheme}: mode {mode:o}");
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
        assert!(!path.exists(), "{scheme}: socket file left after exit");
    }
}

#[test]
fn a_unix_datagram_client_removes_its_temporary_address() {
    let (_dir, path) = temp_socket_path("srv.sock");
    let server = serve("echo", &format!("unix-dgram:{}", path.display()), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out =
        run(sockit()
            .env("TMPDIR", tmp.path())
            .args(["send", "--raw", &server.endpoint, "ping"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_bytes_eq(&out.stdout, b"ping");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn send_to_a_closed_udp_port_is_refused_quickly() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, stderr) = send(&[&format!("udp://127.0.0.1:{port}"), "anyone?"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("connection refused"), "{stderr}");
}

#[test]
fn serve_4_and_6_restrict_the_family() {
    let v4 = serve("echo", "udp://:0", &["-4"]);
    assert!(v4.endpoint.starts_with("udp://0.0.0.0:"), "{}", v4.endpoint);
    let v6 = serve("hello", ":0", &["-6"]);
    assert!(v6.endpoint.starts_with("[::]:"), "{}", v6.endpoint);
    let out = run(sockit().args(["serve", "-4", "-l", "[::1]:0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an IPv4 address"));
}

#[test]
fn reply_only_applies_to_hello() {
    let out = run(sockit().args([
        "serve",
        "--service",
        "echo",
        "--reply",
        "x",
        "-l",
        "127.0.0.1:0",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--reply only applies to --service hello")
    );
}

#[test]
fn tipc_endpoints_fail_with_one_clear_reason() {
    for args in [
        vec!["send", "tipc:1000:1"],
        vec!["serve", "-l", "tipc:1000:1"],
    ] {
        let out = run(sockit().args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains("SOCK_RDM") && first.contains("TIPC"),
            "{stderr}"
        );
    }
}

#[test]
fn replies_that_would_block_are_dropped_and_counted() {
    let (_dir, path) = temp_socket_path("busy.sock");
    let server = serve("echo", &format!("unix-dgram:{}", path.display()), &[]);
    // A client that sends 300 datagrams and reads none: its receive queue
    // fills (net.unix.max_dgram_qlen), so the server's replies would block.
    python(
        r#"
import os, socket, sys, tempfile
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
me = os.path.join(tempfile.mkdtemp(), "slow.sock")
s.bind(me)
for i in range(300):
    s.sendto(b"x", sys.argv[1])
"#,
        &[path.to_str().unwrap()],
    );
    // The server is not stuck: it answers the next client at once.
    let (code, reply, stderr) = send(&[&server.endpoint, "next"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_bytes_eq(&reply, b"next");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("301 requests"), "{log}");
    assert!(
        log.contains("datagram replies dropped (send buffer full)"),
        "{log}"
    );
}

#[test]
fn many_distinct_udp_senders_do_not_grow_the_server() {
    let server = serve("echo", "udp://127.0.0.1:0", &[]);
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let flood = r#"
import socket, sys
port = int(sys.argv[1])
for i in range(1000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"y" * 512, ("127.0.0.1", port))
    s.close()
"#;
    let port = server.addr.port().to_string();
    python(flood, &[&port]);
    let before = rss();
    python(flood, &[&port]);
    python(flood, &[&port]);
    let after = rss();
    // 2,000 more distinct senders: no per-sender state, so RSS stays put
    // (allow 1 MiB of noise).
    assert!(
        after <= before + 1024,
        "RSS grew from {before} kB to {after} kB"
    );
    let (code, _, stderr) = send(&[&server.endpoint, "alive"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_streaming_chargen_client_does_not_hold_up_shutdown() {
    let server = serve("chargen", "127.0.0.1:0", &[]);
    let mut client = crate::common::connect(server.addr);
    let start = crate::common::read_exact(&mut client, 74);
    assert_bytes_eq(&start[..CHARGEN_START.len()], CHARGEN_START);
    let began = std::time::Instant::now();
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    // The grace period is 5 s: chargen stops at the signal instead.
    assert!(began.elapsed() < std::time::Duration::from_secs(3), "{log}");
    assert!(!log.contains("cut off"), "{log}");
}

#[test]
fn echo_over_tcp_returns_raw_bytes_then_closes() {
    let server = serve("echo", "127.0.0.1:0", &[]);
    let mut client = crate::common::connect(server.addr);
    let data: Vec<u8> = (0..=255u8).cycle().take(50_000).collect();
    crate::common::send(&mut client, &data);
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_bytes_eq(&crate::common::read_to_end(&mut client), &data);
}

#[test]
fn udp_over_ipv6_answers_send_and_python() {
    let server = serve("echo", "udp://[::1]:0", &[]);
    assert!(
        server.endpoint.starts_with("udp://[::1]:"),
        "{}",
        server.endpoint
    );
    let (code, reply, stderr) = send(&["-6", &server.endpoint, "over v6"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_bytes_eq(&reply, b"over v6");
    let out = python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"v6 peer", ("::1", int(sys.argv[1])))
sys.stdout.buffer.write(s.recv(100))
"#,
        &[&server.addr.port().to_string()],
    );
    assert_bytes_eq(&out, b"v6 peer");
}
