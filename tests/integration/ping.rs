//! `sockit ping` on loopback (127.0.0.1 and ::1 only), over both socket
//! kinds where this machine permits them.

use std::os::unix::process::CommandExt;
use std::process::Output;
use std::sync::Mutex;

use crate::common::{run, sockit};

const RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// Tests that read or change `net.ipv4.ping_group_range` take turns.
static SYSCTL: Mutex<()> = Mutex::new(());

/// Runs `sockit ping ARGS…` quickly: 3 requests 0.2 s apart.
fn ping(args: &[&str]) -> Output {
    run(sockit()
        .args(["ping", "-c", "3", "-i", "0.2", "-W", "2"])
        .args(args))
}

/// Whether this run was refused both socket kinds: then the test is
/// skipped, saying so.
fn refused(out: &Output, test: &str) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) && stderr.contains("cannot ping:") {
        eprintln!("skipped {test}: this kernel refuses both ICMP socket kinds: {stderr}");
        return true;
    }
    false
}

/// Checks ping(8)'s output for three replies from `ip`.
#[track_caller]
fn assert_three_replies(out: &Output, ip: &str, header: &str) {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("PING {ip} ({ip}) {header} bytes of data.")
    );
    for seq in 1..=3 {
        let prefix = format!("64 bytes from {ip}: icmp_seq={seq} ");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no reply line for seq {seq}:\n{stdout}"));
        assert!(line.ends_with(" ms") && line.contains("time="), "{line}");
    }
    assert!(lines.contains(&format!("--- {ip} ping statistics ---").as_str()));
    let counts = lines
        .iter()
        .find(|l| l.contains("packets transmitted"))
        .unwrap();
    assert!(
        counts.starts_with("3 packets transmitted, 3 received, 0% packet loss, time "),
        "{counts}"
    );
    let rtt = lines
        .iter()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .unwrap_or_else(|| panic!("no rtt line:\n{stdout}"));
    let values: Vec<f64> = rtt
        .trim_end_matches(" ms")
        .split('/')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 4, "{rtt}");
    assert!(values[0] <= values[1] && values[1] <= values[2], "{rtt}");
}

#[test]
fn ping_loopback_v4_prints_replies_and_statistics() {
    let out = ping(&["127.0.0.1"]);
    if refused(&out, "ping_loopback_v4") {
        return;
    }
    assert_three_replies(&out, "127.0.0.1", "56(84)");
}

#[test]
fn ping_loopback_v6_prints_replies_and_statistics() {
    let out = ping(&["::1"]);
    if refused(&out, "ping_loopback_v6") {
        return;
    }
    assert_three_replies(&out, "::1", "56(104)");
}

#[test]
fn ping_over_a_raw_socket_shows_the_ttl() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: raw sockets need root, and this test runs as a user");
        return;
    }
    let out = ping(&["--socket", "raw", "127.0.0.1"]);
    assert_three_replies(&out, "127.0.0.1", "56(84)");
    // A raw IPv4 socket receives the IP header, and with it the TTL.
    assert!(String::from_utf8_lossy(&out.stdout).contains(" ttl=64 "));
    let out = ping(&["--socket", "raw", "-s", "1000", "::1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1008 bytes from ::1: icmp_seq=3"),
        "{stdout}"
    );
}

/// Sets `net.ipv4.ping_group_range` and puts the old value back on drop.
struct RangeGuard(String);

impl RangeGuard {
    fn set(value: &str) -> Option<RangeGuard> {
        let old = std::fs::read_to_string(RANGE).ok()?;
        std::fs::write(RANGE, value).ok()?;
        Some(RangeGuard(old))
    }
}

impl Drop for RangeGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(RANGE, self.0.trim());
    }
}

/// Whether `gid` is inside the current ping_group_range.
fn range_allows(gid: u32) -> Option<bool> {
    let text = std::fs::read_to_string(RANGE).ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().ok());
    let (lo, hi) = (parts.next()??, parts.next()??);
    Some(lo <= gid && gid <= hi)
}

#[test]
fn ping_over_an_unprivileged_datagram_socket() {
    let _turn = SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
    let gid = nix::unistd::getegid().as_raw();
    let _guard = match range_allows(gid) {
        Some(true) => None,
        _ => match RangeGuard::set(&format!("{gid} {gid}")) {
            Some(guard) => Some(guard),
            None => {
                eprintln!(
                    "skipped: ping_group_range excludes group {gid} and cannot be changed here"
                );
                return;
            }
        },
    };
    for (ip, header) in [("127.0.0.1", "56(84)"), ("::1", "56(104)")] {
        let out = ping(&["--socket", "dgram", ip]);
        assert_three_replies(&out, ip, header);
    }
}

#[test]
fn ping_says_how_to_allow_it_when_both_kinds_are_refused() {
    let _turn = SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
    const NOBODY: u32 = 65534;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run the binary as nobody");
        return;
    }
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sockit"));
    if !others_can_run(binary) {
        eprintln!(
            "skipped: user nobody cannot reach {} (a directory on the way is not world-executable)",
            binary.display()
        );
        return;
    }
    let _guard = match range_allows(NOBODY) {
        Some(false) => None,
        _ => match RangeGuard::set("1 0") {
            Some(guard) => Some(guard),
            None => {
                eprintln!("skipped: ping_group_range allows nobody and cannot be changed here");
                return;
            }
        },
    };
    let out = run(sockit()
        .args(["ping", "-c", "1", "127.0.0.1"])
        .uid(NOBODY)
        .gid(NOBODY));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sockit: error: cannot ping: "),
        "{stderr}"
    );
    assert!(stderr.contains("net.ipv4.ping_group_range"), "{stderr}");
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert!(
        stderr.contains("sysctl -w net.ipv4.ping_group_range="),
        "{stderr}"
    );
}

/// Whether a user with no rights of owner or group could execute `path`:
/// every directory on the way and the file itself are world-executable.
fn others_can_run(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors().all(|p| {
        p.as_os_str().is_empty()
            || std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    })
}

#[test]
fn ping_rejects_an_oversized_payload_as_usage() {
    let out = run(sockit().args(["ping", "-s", "70000", "127.0.0.1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected 0 to 65507 bytes"));
}
