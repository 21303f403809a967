//! bench: `sockit bench` against `sockit serve` and against misbehaving
//! targets, checked through its `--json` report.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{run, sockit, Server};

/// Runs `sockit bench ARGS… --json`, checks it succeeded, returns the report.
#[track_caller]
fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = run(sockit().arg("bench").args(args).arg("--json"));
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[track_caller]
fn assert_all_answered(report: &serde_json::Value, requests: u64) {
    assert_eq!(report["requests"], requests, "{report:#}");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    let latency = &report["latency"];
    for field in [
        "min_us", "mean_us", "p50_us", "p99_us", "p99_9_us", "max_us",
    ] {
        assert!(
            latency[field].as_f64().unwrap() > 0.0,
            "{field}: {report:#}"
        );
    }
    assert!(latency["p50_us"].as_f64() <= latency["max_us"].as_f64());
    assert!(report["requests_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["duration_secs"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_counts_every_keep_alive_request() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let report = bench_json(&[&url, "-n", "1000", "-c", "10", "-t", "2"]);
    assert_all_answered(&report, 1000);
    assert_eq!(report["mode"], "http");
    assert_eq!(report["model"], "closed");
    assert_eq!(report["connections"], 10);
    assert_eq!(report["threads"], 2);
    // Every reply is the hello response: same size each time.
    let read = report["bytes_read"].as_u64().unwrap();
    assert_eq!(read % 1000, 0, "{read} bytes for 1000 replies");
}

#[test]
fn bench_close_opens_a_connection_per_request() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let report = bench_json(&[&url, "-n", "1000", "-c", "10", "--close"]);
    assert_all_answered(&report, 1000);
    let written = report["bytes_written"].as_u64().unwrap();
    assert!(written > 1000 * "Connection: close".len() as u64);
}

#[test]
fn bench_pipelines_requests() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let report = bench_json(&[&url, "-n", "1000", "-c", "4", "--pipeline", "16"]);
    assert_all_answered(&report, 1000);
    assert_eq!(report["pipeline"], 16);
}

#[test]
fn bench_raw_reads_the_tutorial_reply_to_end_of_stream() {
    let server = Server::start(&["-q"]);
    let target = format!("tcp://{}", server.addr);
    let report = bench_json(&[&target, "-n", "1000", "-c", "10"]);
    assert_all_answered(&report, 1000);
    assert_eq!(report["mode"], "raw");
    assert_eq!(report["bytes_read"], 1000 * "Hello, world!".len() as u64);
    assert_eq!(report["bytes_written"], 1000 * "Hello, world".len() as u64);
}

#[test]
fn bench_open_loop_keeps_the_rate() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let report = bench_json(&[&url, "-n", "200", "-c", "4", "--rate", "400"]);
    assert_all_answered(&report, 200);
    assert_eq!(report["model"], "open");
    // 200 requests at 400/s: half a second, give or take the last reply.
    let secs = report["duration_secs"].as_f64().unwrap();
    assert!((0.45..1.5).contains(&secs), "{secs}s");
}

#[test]
fn bench_counts_timeouts_when_the_target_stops_answering() {
    // Answers the first 50 requests, then reads and never replies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let answered = Arc::clone(&answered);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut pending = Vec::new();
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        if answered.fetch_add(1, Ordering::SeqCst) < 50 {
                            let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if stream.write_all(reply).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    let url = format!("http://{addr}/");
    let report = bench_json(&[&url, "-d", "1.5", "-c", "2", "--timeout", "0.2"]);
    assert_eq!(report["requests"], 50, "{report:#}");
    let timeouts = report["errors"]["timeout"].as_u64().unwrap();
    assert!(timeouts >= 4, "{timeouts} timeouts: {report:#}");
    assert_eq!(report["errors"]["total"], timeouts, "{report:#}");
}

#[test]
fn bench_counts_refused_connections_and_still_reports() {
    // A port nothing listens on: bind, note it, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/");
    let report = bench_json(&[&url, "-n", "20", "-c", "2"]);
    assert_eq!(report["requests"], 0);
    assert_eq!(report["errors"]["connect"], 20, "{report:#}");
}

#[test]
fn bench_counts_non_2xx_statuses_by_code() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    // A method with a space breaks the request line: the server answers
    // an error status, and closes.
    let report = bench_json(&[&url, "-n", "10", "-c", "1", "-X", "BAD METHOD"]);
    assert_eq!(report["requests"], 10, "{report:#}");
    assert_eq!(report["errors"]["total"], 10, "{report:#}");
    let status = report["errors"]["status"].as_object().unwrap();
    assert_eq!(status.len(), 1, "{report:#}");
    let (code, count) = status.iter().next().unwrap();
    assert!(code.starts_with('4') || code.starts_with('5'), "{code}");
    assert_eq!(count, 10);
}

#[test]
fn bench_prints_a_text_report_and_a_histogram_file() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let dir = tempfile::tempdir().unwrap();
    let hist = dir.path().join("latency.hgrm");
    let out = run(sockit()
        .args(["bench", &url, "-n", "300", "-c", "5", "--latency-histogram"])
        .arg(&hist));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("requests     300 in"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
    assert!(text.contains("errors       0"), "{text}");
    // Nothing on stderr when it is not a terminal: no progress bar.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hgrm = std::fs::read_to_string(&hist).unwrap();
    assert!(hgrm.contains("Percentile"), "{hgrm}");
    assert!(hgrm.contains("Total count    =          300"), "{hgrm}");
}

#[test]
fn bench_rejects_flags_of_the_other_mode() {
    let out = run(sockit().args(["bench", "tcp://127.0.0.1:1", "-X", "POST"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("sockit: error: "), "{err}");
    assert!(err.contains("--payload"), "{err}");
    let out = run(sockit().args(["bench", "http://127.0.0.1:1/", "--close", "--pipeline", "4"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_prints_the_report_so_far_on_ctrl_c() {
    let server = Server::start(&[]);
    let url = format!("http://{}/", server.addr);
    let mut child = sockit()
        .args(["bench", &url, "-d", "60", "-c", "2", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The server logs each connection: once bench has connected, it is running.
    server.stderr.wait_for("Accept new connection");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = crate::common::wait_timeout(&mut child, crate::common::WAIT);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("bench did not stop on SIGINT");
    };
    assert!(status.success(), "{status}");
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["interrupted"], true, "{report:#}");
    assert!(
        report["duration_secs"].as_f64().unwrap() < 30.0,
        "{report:#}"
    );
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
}
