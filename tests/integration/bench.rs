//! bench: `sockit bench` against `sockit serve` and against misbehaving
//! targets, checked through its `--json` report.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{run, run_within, sockit, Server};

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

/// A run in which no request succeeded: the JSON report is still printed,
/// and the exit status is 1 (issue 16: scripts must see the failure).
fn bench_json_all_failed(args: &[&str]) -> serde_json::Value {
    let out = run(sockit().arg("bench").args(args).arg("--json"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
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
    let report = bench_json_all_failed(&[&url, "-n", "20", "-c", "2"]);
    assert_eq!(report["requests"], 0);
    assert_eq!(report["errors"]["connect"], 20, "{report:#}");
}

#[test]
fn bench_counts_non_2xx_statuses_by_code() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    // A method with a space breaks the request line: the server answers
    // an error status, and closes.
    let report = bench_json_all_failed(&[&url, "-n", "10", "-c", "1", "-X", "BAD METHOD"]);
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
    // A clash found after parsing is a usage error too: status 2, as ncat(1) uses.
    assert_eq!(out.status.code(), Some(2));
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

/// An HTTP server in this test process that answers at most `per_second`
/// requests a second, whatever the connections: requests queue for one
/// server, each taking `1 / per_second` (timed against absolute slots, so
/// sleep overshoot does not lower the capacity). Below capacity replies are
/// immediate; above it, the queue and the latency grow without bound.
fn server_with_capacity(per_second: u32) -> std::net::SocketAddr {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Duration::from_secs(1) / per_second;
    let next_free = Arc::new(Mutex::new(Instant::now()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let next_free = Arc::clone(&next_free);
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
                        let done = {
                            let mut next = next_free.lock().unwrap();
                            let start = (*next).max(Instant::now());
                            *next = start + service;
                            *next
                        };
                        std::thread::sleep(done.saturating_duration_since(Instant::now()));
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(reply).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// The rows of a `--series` CSV file, as maps from column to value.
fn series_csv(path: &std::path::Path) -> Vec<std::collections::HashMap<String, f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "second",
            "sent",
            "completed",
            "errors",
            "rate",
            "p50_us",
            "p99_us",
            "max_us"
        ]
    );
    lines
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN)))
                .collect()
        })
        .collect()
}

#[test]
fn bench_ramp_shows_the_rate_profile_and_the_capacity_in_the_series() {
    // 200 → 1800 req/s over 4 s against a server that answers 1000/s.
    let addr = server_with_capacity(1000);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("series.csv");
    let url = format!("http://{addr}/");
    let out = run(sockit()
        .args([
            "bench",
            &url,
            "--rate",
            "200..1800/4s",
            "-c",
            "40",
            "-t",
            "1",
        ])
        .args(["--timeout", "5", "--json", "--series"])
        .arg(&csv));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stages"][0]["to"], 1800.0, "{report:#}");
    let rows = series_csv(&csv);
    assert_eq!(rows.len(), 4, "{rows:?}");
    // The schedule: second s had (400 s + 400) requests due; below
    // capacity, all were sent and answered in it.
    for (s, row) in rows.iter().enumerate() {
        assert!(
            (row["rate"] - (400.0 * s as f64 + 400.0)).abs() < 1.0,
            "{row:?}"
        );
    }
    for row in &rows[..2] {
        assert!(
            (row["sent"] - row["rate"]).abs() <= 0.02 * row["rate"],
            "{rows:?}"
        );
        assert!(
            (row["completed"] - row["rate"]).abs() <= 0.05 * row["rate"],
            "{rows:?}"
        );
    }
    // Past capacity, the server's 1000/s shows: the last second completes
    // about 1000 of the 1800 due, and its latency has grown (from the
    // intended send times: the backlog waits in the generator, since the
    // 40 connections have one request in flight each).
    let last = &rows[3];
    assert!((850.0..=1100.0).contains(&last["completed"]), "{rows:?}");
    // The excess over 1000/s from 2 s on, 400·(t − 2) req/s, has queued
    // 200 requests by 3 s and 800 by 4 s: 0.2 s to 0.8 s of waiting.
    assert!(last["p99_us"] > 200_000.0, "{rows:?}");
    assert!(last["p99_us"] > rows[1]["p99_us"], "{rows:?}");
    // The report says it fell behind, and why.
    let warnings = report["generator"]["warnings"].to_string();
    assert!(warnings.contains("fell"), "{report:#}");
    let completed: f64 = rows.iter().map(|r| r["completed"]).sum();
    assert_eq!(completed as u64, report["requests"].as_u64().unwrap());
}

/// Decodes a saved run's base64 HdrHistogram V2 field.
fn saved_histogram(run: &serde_json::Value) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(run["histogram"].as_str().unwrap())
        .unwrap();
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .unwrap()
}

#[test]
fn bench_merge_of_two_saved_runs_is_their_sum() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let dir = tempfile::tempdir().unwrap();
    let (a, b, ab) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("ab.json"),
    );
    for (file, n) in [(&a, "600"), (&b, "900")] {
        let out = run(sockit()
            .args(["bench", &url, "-n", n, "-c", "4", "-t", "1", "--save"])
            .arg(file));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(sockit()
        .args(["bench", "merge", "--json", "--save"])
        .args([&ab, &a, &b]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let saved = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let (ra, rb) = (saved(&a), saved(&b));
    // Counts are exact sums; so are the rates.
    assert_eq!(merged["requests"], 1500, "{merged:#}");
    assert_eq!(merged["runs"], 2);
    assert_eq!(merged["connections"], 8);
    for field in ["bytes_read", "bytes_written", "sent"] {
        let sum = ra[field].as_u64().unwrap() + rb[field].as_u64().unwrap();
        assert_eq!(merged[field], sum, "{field}");
    }
    let rps = ra["requests_per_sec"].as_f64().unwrap() + rb["requests_per_sec"].as_f64().unwrap();
    assert!((merged["requests_per_sec"].as_f64().unwrap() - rps).abs() < 1e-6 * rps);
    let per_second: u64 = merged["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, 1500);
    // Percentiles are those of both runs' samples together, within the
    // histogram's precision (3 significant digits).
    let mut both = saved_histogram(&ra);
    both.add(saved_histogram(&rb)).unwrap();
    assert_eq!(both.len(), 1500);
    for (field, q) in [
        ("p50_us", 0.5),
        ("p90_us", 0.9),
        ("p99_us", 0.99),
        ("max_us", 1.0),
    ] {
        let want = both.value_at_quantile(q) as f64 / 1000.0;
        let got = merged["latency"][field].as_f64().unwrap();
        assert!(
            (got - want).abs() <= want * 1e-3,
            "{field}: {got} vs {want}"
        );
    }
    // The merged run merges again: with itself, it doubles.
    let out = run(sockit().args(["bench", "merge", "--json"]).args([&ab, &ab]));
    let twice: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(twice["requests"], 3000);
    assert_eq!(twice["runs"], 4);
}

#[test]
fn bench_merge_refuses_files_that_are_not_saved_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"requests\": 3}").unwrap();
    let out = run(sockit().args(["bench", "merge"]).arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("sockit: error: "), "{err}");
    assert!(
        err.contains("not a run saved by sockit bench --save"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = run(sockit()
        .args(["bench", "merge"])
        .arg(dir.path().join("missing.json")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn bench_find_max_finds_a_servers_capacity_within_ten_percent() {
    // A server that answers 1000 requests a second: below, replies are
    // immediate; above, the queue grows by the excess: over a 1.5 s step,
    // past 100 ms from about 1070/s.
    let addr = server_with_capacity(1000);
    let url = format!("http://{addr}/");
    let started = std::time::Instant::now();
    let out = run_within(
        sockit()
            .args(["bench", &url, "--find-max", "--slo", "p99<100ms,errors<1%"])
            .args([
                "--rate", "400", "--step", "1.5", "-c", "50", "-t", "1", "--json",
            ])
            .args(["--timeout", "5"]),
        std::time::Duration::from_secs(40),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let max = found["max_rate"]
        .as_f64()
        .unwrap_or_else(|| panic!("{found:#}"));
    assert!((900.0..=1100.0).contains(&max), "found {max}: {found:#}");
    let steps = found["steps"].as_array().unwrap();
    // The coarse ramp doubled from 400 and stopped at the first confirmed
    // miss; the bisection took over; every step well past capacity missed.
    assert_eq!(steps[0]["rate"], 400.0);
    assert!(steps.iter().any(|s| s["phase"] == "bisect"), "{found:#}");
    assert!(steps.iter().any(|s| s["phase"] == "confirm"), "{found:#}");
    for step in steps {
        let rate = step["rate"].as_f64().unwrap();
        if rate >= 1150.0 {
            assert_eq!(step["met"], false, "{step:#}");
        }
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
}

#[test]
fn bench_plot_draws_latency_and_throughput_series_as_svg() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let dir = tempfile::tempdir().unwrap();
    let (csv, svg) = (dir.path().join("run.csv"), dir.path().join("run.svg"));
    let out = run(sockit()
        .args([
            "bench",
            &url,
            "--rate",
            "100..500/3s",
            "-c",
            "4",
            "-t",
            "1",
            "--series",
        ])
        .arg(&csv));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(sockit()
        .args(["bench", "plot"])
        .arg(&csv)
        .arg("-o")
        .arg(&svg));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("not XML ({e})"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // A line per series: three rows, so three points each.
    let lines: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .count()
                == 3
        })
        .collect();
    assert_eq!(lines.len(), 6, "p50, p99, max, completed, errors, rate");
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for label in [
        "p50",
        "p99",
        "max",
        "completed",
        "errors",
        "rate (scheduled)",
        "ms",
        "req/s",
    ] {
        assert!(labels.contains(&label), "no {label:?} in {labels:?}");
    }
    // The scheduled rate line climbs: 150, 300, 450 due in the three seconds.
    let rate_line = lines.last().unwrap().attribute("points").unwrap();
    let ys: Vec<f64> = rate_line
        .split_whitespace()
        .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        ys[0] > ys[1] && ys[1] > ys[2],
        "SVG y grows downwards: {ys:?}"
    );
}

#[test]
fn bench_plot_refuses_a_file_that_is_not_a_series() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.txt");
    std::fs::write(&bad, "hello\n").unwrap();
    let out = run(sockit()
        .args(["bench", "plot"])
        .arg(&bad)
        .args(["-o", "/dev/null"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a series row nor a saved run"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bench_rejects_malformed_rates_stages_and_slos_in_one_line() {
    for args in [
        &["--rate", "100..x/5s"][..],
        &["--stages", "1000/10s,,"],
        &["--rate", "5", "--stages", "1/1s"],
        &["--find-max", "--slo", "p99>10ms"],
        &["--find-max"],
        &["--slo", "p99<1ms"],
    ] {
        let out = run(sockit().args(["bench", "http://127.0.0.1:1/"]).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    let out = run(sockit().args([
        "bench",
        "http://127.0.0.1:1/",
        "--series",
        "x.txt",
        "-n",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".csv"), "{err}");
}

#[test]
fn bench_stages_ramp_hold_and_ramp_down_in_the_series() {
    let server = Server::start(&["-q"]);
    let url = format!("http://{}/", server.addr);
    let dir = tempfile::tempdir().unwrap();
    let series = dir.path().join("stages.jsonl");
    let out = run(sockit()
        .args([
            "bench",
            &url,
            "--stages",
            "400/1s,400..400/1s,0/1s",
            "-c",
            "8",
        ])
        .args(["-t", "1", "--json", "--series"])
        .arg(&series));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stages"].as_array().unwrap().len(), 3, "{report:#}");
    // 200 + 400 + 200 requests due, and sent, in the three seconds.
    assert_eq!(report["generator"]["due"], 800, "{report:#}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&series)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sent: Vec<u64> = rows.iter().map(|r| r["sent"].as_u64().unwrap()).collect();
    assert_eq!(sent.len(), 3, "{rows:?}");
    for (got, want) in sent.iter().zip([200, 400, 200]) {
        assert!(got.abs_diff(want) <= 8, "{sent:?}");
    }
    assert_eq!(report["sent"], sent.iter().sum::<u64>());
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
}
