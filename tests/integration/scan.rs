//! `sockit scan`: exact states on loopback (listeners of our own, free
//! ports, nc as a second opinion), and full scans of all 65,535 ports in a
//! network namespace the test creates, with firewall rules dropping a set
//! of ports. Nothing here probes any address but loopback.

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{have, run, run_within, sockit, ChildGuard, Server};

/// `sockit scan ARGS…`, run to completion.
fn scan(args: &[&str]) -> Output {
    run(sockit().arg("scan").args(args))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Ports that were free a moment ago (bound to port 0, then closed).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `ADDR PROTO STATE` lines as a map from port to state.
#[track_caller]
fn states(text: &str, proto: &str) -> BTreeMap<u16, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "bad line {line:?}");
        assert_eq!(fields[1], proto, "{line}");
        let port: u16 = fields[0].rsplit(':').next().unwrap().parse().unwrap();
        assert!(
            map.insert(port, fields[2].to_owned()).is_none(),
            "port {port} reported twice"
        );
    }
    map
}

#[test]
fn scan_reports_listeners_open_and_free_ports_closed_and_nc_agrees() {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let server = Server::start(&[]);
    let mut open: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    open.push(server.addr.port());
    let closed = free_ports(4);
    let all: Vec<u16> = open.iter().chain(&closed).copied().collect();

    let out = scan(&["127.0.0.1", &list(&all), "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut expected: Vec<(u16, &str)> = open
        .iter()
        .map(|&p| (p, "open"))
        .chain(closed.iter().map(|&p| (p, "closed")))
        .collect();
    expected.sort();
    let lines: Vec<String> = expected
        .iter()
        .map(|(p, s)| format!("127.0.0.1:{p} tcp {s}"))
        .collect();
    assert_eq!(stdout(&out), lines.join("\n") + "\n");
    assert!(
        stderr(&out).contains("scanned 8 ports in "),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(": 4 open, 4 closed, 0 filtered"));

    // Without --all: the open ports only, as nc -zv names what it reached.
    let out = scan(&["127.0.0.1", &list(&all)]);
    let mut open_sorted = open.clone();
    open_sorted.sort();
    let lines: Vec<String> = open_sorted
        .iter()
        .map(|p| format!("127.0.0.1:{p} tcp open"))
        .collect();
    assert_eq!(stdout(&out), lines.join("\n") + "\n");

    // A second opinion from OpenBSD nc -z, port by port.
    if have("nc") {
        for (port, state) in &expected {
            let nc =
                run(Command::new("nc").args(["-z", "-w", "2", "127.0.0.1", &port.to_string()]));
            assert_eq!(nc.status.success(), *state == "open", "nc -z on {port}");
        }
    }
}

#[test]
fn scan_json_gives_one_object_per_port_with_state_and_rtt() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = free_ports(1)[0];
    let out = scan(&["127.0.0.1", &list(&[open, closed]), "--all", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let objects: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
    for object in &objects {
        let port = object["port"].as_u64().unwrap() as u16;
        assert_eq!(object["host"], "127.0.0.1");
        assert_eq!(object["protocol"], "tcp");
        assert_eq!(
            object["state"],
            if port == open { "open" } else { "closed" }
        );
        let rtt = object["rtt_ms"].as_f64().unwrap();
        assert!(rtt > 0.0 && rtt < 1000.0, "{object}");
    }
}

#[test]
fn a_cidr_block_and_a_second_host_are_scanned_each_address_in_order() {
    // 127.0.0.2 is loopback too: a listener there, none on 127.0.0.1.
    let listener = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = scan(&["127.0.0.0/30", "127.0.0.3", &port.to_string(), "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "127.0.0.1:{port} tcp closed\n127.0.0.2:{port} tcp open\n127.0.0.3:{port} tcp closed\n"
        )
    );
}

#[test]
fn scan_with_no_open_port_exits_1_and_prints_no_port() {
    let out = scan(&["127.0.0.1", &list(&free_ports(3))]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("0 open, 3 closed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn scan_of_ipv6_loopback_sees_an_ipv6_listener() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let out = scan(&["::1", &port.to_string(), "-6"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("[::1]:{port} tcp open\n"));
    let out = scan(&["::1", "80", "-4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("sockit: error: cannot resolve [::1]:0: no IPv4 address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn malformed_ports_and_hosts_are_usage_errors_on_one_line() {
    for (args, needle) in [
        (
            ["127.0.0.1", "80-"],
            "invalid ports '80-': the last port of a range is missing; expected PORT (80)",
        ),
        (
            ["127.0.0.1", "0"],
            "invalid ports '0': port 0 cannot be scanned",
        ),
        (
            ["127.0.0.1", "1-99999"],
            "port 99999 is out of range 1-65535",
        ),
        (["127.0.0.1/33", "80"], "invalid host '127.0.0.1/33'"),
    ] {
        let out = scan(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = stderr(&out);
        let first = text.lines().next().unwrap_or("");
        assert!(first.contains(needle), "{args:?}: {text}");
    }
}

#[test]
fn wait_until_open_exits_0_as_soon_as_the_server_listens() {
    let port = free_ports(1)[0];
    let mut waiter = ChildGuard::spawn(sockit().args([
        "scan",
        "127.0.0.1",
        &port.to_string(),
        "--wait-until-open",
        "20",
    ]));
    // The waiter is polling a closed port; now the server comes up.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let _server = Server::start_raw(&["serve", "--listen", &format!("127.0.0.1:{port}")]);
    let line = waiter.wait_for_stdout("tcp open");
    assert_eq!(line, format!("127.0.0.1:{port} tcp open"));
    let status = waiter
        .wait_exit(Duration::from_secs(5))
        .expect("the waiter exits");
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn wait_until_open_exits_1_when_the_time_runs_out() {
    let port = free_ports(1)[0].to_string();
    let started = Instant::now();
    let out = scan(&["127.0.0.1", &port, "--wait-until-open", "0.5"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!("sockit: error: waiting for 127.0.0.1:{port} to open timed out after 0.5s\n")
    );
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A UDP echo server in python3 (a peer that is not us): prints its port,
/// then answers every datagram with its bytes.
const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"#;

#[test]
fn udp_scan_tells_an_echo_server_open_a_free_port_closed_and_silence_open_filtered() {
    let mut echo = ChildGuard::spawn(Command::new("python3").args(["-c", UDP_ECHO]));
    let echo_port: u16 = echo.wait_for_stdout("").trim().parse().unwrap();
    // Bound but never read: the datagram is queued, nothing answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed: Vec<u16> = {
        let held: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        held.iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect()
    };
    let mut all = vec![echo_port, silent_port];
    all.extend(&closed);
    let out = scan(&[
        "-u",
        "127.0.0.1",
        &list(&all),
        "--all",
        "--retries",
        "3",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut expected = BTreeMap::new();
    expected.insert(echo_port, "open".to_owned());
    expected.insert(silent_port, "open|filtered".to_owned());
    for port in closed {
        expected.insert(port, "closed".to_owned());
    }
    assert_eq!(states(&stdout(&out), "udp"), expected);
    drop(silent);
}

// ---------------------------------------------------------------------
// Full scans in a network namespace of our own.
// ---------------------------------------------------------------------

/// Set in the environment of the test binary re-run inside the namespace.
const CHILD_ENV: &str = "SOCKIT_SCAN_NETNS_CHILD";
/// TCP ports with a listener inside the namespace, edges of the port
/// space and of the ephemeral range included.
const OPEN_TCP: [u16; 9] = [1, 22, 80, 443, 8080, 32768, 45000, 60999, 65535];
/// TCP ports whose SYNs an nft rule drops: each costs the scan its
/// timeouts, so they are few.
const FILTERED_TCP: [u16; 3] = [25, 3306, 50000];
/// The UDP range scanned, and its echo servers and dropped ports.
const UDP_RANGE: &str = "7000-7029";
const OPEN_UDP: [u16; 3] = [7000, 7013, 7029];
const FILTERED_UDP: [u16; 2] = [7001, 7020];
/// Full scans per run: alternately at the default descriptor limit and
/// under `prlimit --nofile=256:256`.
const ROUNDS: usize = 20;

/// Whether this machine lets us make a network namespace.
fn can_unshare_net() -> bool {
    have("unshare")
        && Command::new("unshare")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn full_scans_in_a_namespace_report_exactly_the_truth_every_time() {
    if !can_unshare_net() {
        eprintln!("skipped: unshare -n is not permitted here (needs root or CAP_SYS_ADMIN)");
        return;
    }
    // This test binary again, inside a new network namespace, running only
    // the ignored child test below.
    let exe = std::env::current_exe().unwrap();
    let out = run_within(
        Command::new("unshare")
            .arg("-n")
            .arg(exe)
            .args([
                "--exact",
                "scan::namespace_child_scans_and_checks",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1"),
        Duration::from_secs(120),
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "namespace child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run:\n{text}"
    );
}

/// Runs `cmd`, failing the test with its output when it fails.
#[track_caller]
fn must(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Drops TCP and UDP packets to the filtered ports on input, with nft, or
/// iptables where nft is missing.
fn drop_filtered_ports() {
    let join = |ports: &[u16]| list(ports);
    if have("nft") {
        must(Command::new("nft").args(["add", "table", "inet", "scantest"]));
        must(Command::new("nft").args([
            "add",
            "chain",
            "inet",
            "scantest",
            "input",
            "{ type filter hook input priority 0; }",
        ]));
        for (proto, ports) in [("tcp", &FILTERED_TCP[..]), ("udp", &FILTERED_UDP[..])] {
            must(Command::new("nft").args([
                "add",
                "rule",
                "inet",
                "scantest",
                "input",
                proto,
                "dport",
                &format!("{{ {} }}", join(ports).replace(',', ", ")),
                "drop",
            ]));
        }
    } else {
        for (proto, ports) in [("tcp", &FILTERED_TCP[..]), ("udp", &FILTERED_UDP[..])] {
            must(Command::new("iptables").args([
                "-A",
                "INPUT",
                "-p",
                proto,
                "-m",
                "multiport",
                "--dports",
                &join(ports),
                "-j",
                "DROP",
            ]));
        }
    }
}

#[test]
#[ignore = "runs inside a network namespace, started by full_scans_in_a_namespace_report_exactly_the_truth_every_time"]
fn namespace_child_scans_and_checks() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "run only by full_scans_in_a_namespace_report_exactly_the_truth_every_time"
    );
    must(Command::new("ip").args(["link", "set", "lo", "up"]));
    drop_filtered_ports();
    // Listeners that accept and drop every connection, so no backlog fills.
    for port in OPEN_TCP {
        for host in ["127.0.0.1", "::1"] {
            let listener = TcpListener::bind((host, port)).unwrap();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    drop(conn);
                }
            });
        }
    }
    for port in OPEN_UDP {
        let socket = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], peer);
            }
        });
    }
    let mut truth: BTreeMap<u16, String> = (1..=u16::MAX).map(|p| (p, "closed".into())).collect();
    for port in OPEN_TCP {
        truth.insert(port, "open".into());
    }
    for port in FILTERED_TCP {
        truth.insert(port, "filtered".into());
    }
    // The ss view of the namespace agrees with what the test set up.
    let ss = stdout(&must(Command::new("ss").args(["-Hltn"])));
    assert_eq!(ss.lines().count(), 2 * OPEN_TCP.len(), "{ss}");

    let bin = env!("CARGO_BIN_EXE_sockit");
    for round in 0..ROUNDS {
        let limited = round % 2 == 1;
        let mut cmd = if limited {
            let mut cmd = Command::new("prlimit");
            cmd.arg("--nofile=256:256").arg(bin);
            cmd
        } else {
            Command::new(bin)
        };
        cmd.args(["scan", "127.0.0.1", "-", "--all"]);
        let started = Instant::now();
        let out = run(&mut cmd);
        let took = started.elapsed();
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}: {}",
            stderr(&out)
        );
        let found = states(&stdout(&out), "tcp");
        if found != truth {
            let wrong: Vec<String> = truth
                .iter()
                .filter(|(p, s)| found.get(p) != Some(s))
                .map(|(p, s)| format!("{p}: expected {s}, got {:?}", found.get(p)))
                .take(20)
                .collect();
            panic!(
                "round {round} (nofile 256: {limited}) differs from the truth:\n{}",
                wrong.join("\n")
            );
        }
        let summary = stderr(&out);
        assert!(
            summary.contains("scanned 65535 ports")
                && summary.contains(": 9 open, 65523 closed, 3 filtered"),
            "round {round}: {summary}"
        );
        eprintln!("round {round}: nofile 256 {limited}, {took:?}");
    }

    // IPv6 once: the same truth on ::1 (the nft table is inet: both families).
    let out = run(Command::new(bin).args(["scan", "-6", "::1", "-", "--all"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(states(&stdout(&out), "tcp"), truth, "IPv6 full scan");

    let mut udp_truth: BTreeMap<u16, String> =
        (7000..=7029).map(|p| (p, "closed".into())).collect();
    for port in OPEN_UDP {
        udp_truth.insert(port, "open".into());
    }
    for port in FILTERED_UDP {
        udp_truth.insert(port, "open|filtered".into());
    }
    // DNS and NTP servers that answer only a well-formed request: the
    // probes of 53 and 123 carry one, so they are open; an empty datagram
    // would have left them open|filtered.
    for (port, well_formed) in [
        (
            53,
            (|q: &[u8]| q.len() >= 17 && q[4..6] == [0, 1]) as fn(&[u8]) -> bool,
        ),
        (123, |q: &[u8]| q.len() == 48 && q[0] & 0x07 == 3),
    ] {
        let socket = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                if well_formed(&buf[..n]) {
                    let _ = socket.send_to(&buf[..n], peer);
                }
            }
        });
    }
    let out =
        run(Command::new(bin).args(["scan", "-u", "127.0.0.1", "53,123", "--timeout", "0.3"]));
    assert_eq!(
        stdout(&out),
        "127.0.0.1:53 udp open\n127.0.0.1:123 udp open\n",
        "{}",
        stderr(&out)
    );

    let udp = [
        "-u",
        "127.0.0.1",
        UDP_RANGE,
        "--all",
        "--timeout",
        "0.3",
        "--retries",
        "3",
    ];
    for round in 0..3 {
        let out = run(Command::new(bin).arg("scan").args(udp));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(states(&stdout(&out), "udp"), udp_truth, "UDP round {round}");
    }
    // Every UDP probe holds its descriptor while it waits: asked for far
    // more probes in flight than 24 descriptors allow, the scan meets
    // EMFILE, sends those probes again later, and still reports the truth.
    let out = run(Command::new("prlimit")
        .arg("--nofile=24:24")
        .arg(bin)
        .arg("scan")
        .args(udp)
        .args(["--parallel", "1000"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        states(&stdout(&out), "udp"),
        udp_truth,
        "UDP under nofile 24"
    );
}
