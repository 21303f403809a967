//! Hostile clients, limits and faults (issue 6), against the real binary —
//! except the handler panic, which needs a buggy service and so runs a
//! library `Server` in-process.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    connect, raise_nofile, read_response, read_response_buffered, reset, send, summary, Server,
    GET, WAIT,
};

/// Sends one GET on a new connection and returns the response and how long
/// it took from connect to the last byte.
fn timed_get(addr: SocketAddr) -> (String, Duration) {
    let start = Instant::now();
    let mut stream = connect(addr);
    send(&mut stream, GET);
    let response = read_response(&mut stream);
    (response, start.elapsed())
}

/// Whether the server has closed `stream`: EOF or a reset within [`WAIT`].
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut byte = [0u8; 64];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slowloris_connections_do_not_delay_a_normal_client_and_are_cut_off() {
    raise_nofile(4096);
    let server = Server::start(&["-q", "--header-timeout", "2"]);
    let fds_before = server.fd_count();
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut stream = connect(server.addr);
        send(&mut stream, b"GET / HTTP/1.1\r\nX-Slow: ");
        slow.push(stream);
    }
    // One more byte on each, as a slowloris client keeps its heads alive.
    for stream in &mut slow {
        send(stream, b"a");
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let (response, took) = timed_get(server.addr);
        assert!(response.ends_with("Hello, world!"), "{response}");
        times.push(took);
    }
    times.sort();
    eprintln!("slowloris: 5 normal requests beside 1,000 slowloris connections took {times:?}");
    // The median, so one scheduling hiccup of a loaded CI machine (the
    // test binary runs tests in parallel) does not fail the run.
    assert!(
        times[2] < Duration::from_millis(200),
        "a normal client waited {:?} behind 1,000 slowloris connections",
        times[2]
    );
    // The header timeout is not reset by the trickle: every one is closed.
    for stream in &mut slow {
        assert!(
            closed_by_server(stream),
            "a slowloris connection outlived the header timeout"
        );
    }
    drop(slow);
    let fds_after = server.wait_fd_count(fds_before);
    assert!(
        fds_after <= fds_before,
        "{fds_before} descriptors before, {fds_after} after"
    );
}

#[test]
fn max_conns_keeps_excess_clients_in_the_backlog_and_answers_all_of_them() {
    let server = Server::start(&["-q", "--max-conns", "10"]);
    let fds_before = server.fd_count();
    // Ten keep-alive clients take every slot and hold it.
    let mut holders = Vec::new();
    for _ in 0..10 {
        let mut stream = connect(server.addr);
        send(&mut stream, GET);
        assert!(read_response(&mut stream).ends_with("Hello, world!"));
        holders.push(stream);
    }
    // Forty more connect (the kernel completes their handshakes) and ask.
    let mut waiting = Vec::new();
    for _ in 0..40 {
        let mut stream = connect(server.addr);
        send(&mut stream, GET);
        waiting.push(stream);
    }
    // None is taken while the slots are full: no accept-then-drop, and
    // the server holds no more than ten connections' descriptors.
    let mut probe = [0u8; 1];
    waiting[0]
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let early = waiting[0].read(&mut probe);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a client past --max-conns was answered at once: {early:?}"
    );
    assert!(
        server.fd_count() <= fds_before + 10,
        "{} descriptors for 10 connections (from {fds_before})",
        server.fd_count()
    );
    // As the holders leave, every waiting client is served, in turn: each
    // leaves once answered, freeing its slot for the next.
    drop(holders);
    for mut stream in waiting {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        assert!(read_response(&mut stream).ends_with("Hello, world!"));
    }
}

/// How much a server may grow while 4 clients pipeline without reading.
const PIPELINE_RSS_BOUND_KIB: u64 = 4 * 1024;

#[test]
fn clients_that_pipeline_without_reading_hold_server_memory_fixed() {
    let server = Server::start(&["-q", "--write-timeout", "2"]);
    // Warm up: the runtime's threads and buffers exist before the baseline.
    for _ in 0..20 {
        timed_get(server.addr);
    }
    let rss_before = server.rss_kib();
    let batch: Vec<u8> = GET.repeat(1000);
    let mut clients = Vec::new();
    let mut sent_total = 0usize;
    for _ in 0..4 {
        let mut stream = connect(server.addr);
        stream
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut sent = 0usize;
        // Up to 64 MB each; backpressure must stop the writes long before.
        while sent < 64 << 20 {
            match stream.write(&batch) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        assert!(sent < 64 << 20, "the server read 64 MB without writing");
        sent_total += sent;
        clients.push(stream);
    }
    let rss_after = server.rss_kib();
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!(
        "pipelining: {} MB sent by 4 clients that never read; server RSS {rss_before} KiB -> {rss_after} KiB",
        sent_total >> 20
    );
    assert!(
        grew < PIPELINE_RSS_BOUND_KIB,
        "server RSS grew by {grew} KiB (bound {PIPELINE_RSS_BOUND_KIB} KiB)"
    );
    // The write timeout then drops them.
    for stream in &mut clients {
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let deadline = Instant::now() + WAIT;
        let dropped = loop {
            match stream.write(&batch) {
                Err(_) => break true,
                Ok(_) if Instant::now() > deadline => break false,
                Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        assert!(dropped, "a client that never reads was not dropped");
    }
    let (mut stream, _) = (connect(server.addr), ());
    send(&mut stream, GET);
    assert!(read_response(&mut stream).ends_with("Hello, world!"));
}

#[test]
fn an_rst_and_half_close_storm_leaves_the_descriptor_count_unchanged_and_the_log_quiet() {
    let server = Server::start(&[]);
    timed_get(server.addr);
    let fds_before = server.fd_count();
    for i in 0..1600 {
        let mut stream = connect(server.addr);
        match i % 4 {
            // Reset before sending anything.
            0 => {}
            // Reset mid-request.
            1 => send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: "),
            // Reset mid-response: many pipelined requests, read a few bytes.
            2 => {
                send(&mut stream, &GET.repeat(200));
                let mut some = [0u8; 10];
                let _ = stream.read(&mut some);
            }
            // Half-closed mid-request: the server closes too, without a reply.
            _ => {
                send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n");
                stream.shutdown(std::net::Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                stream.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty(), "{}", crate::common::escaped(&rest));
                continue;
            }
        }
        reset(stream);
    }
    let (response, _) = timed_get(server.addr);
    assert!(response.ends_with("Hello, world!"));
    let fds_after = server.wait_fd_count(fds_before);
    assert!(
        fds_after <= fds_before,
        "{fds_before} descriptors before, {fds_after} after"
    );
    let log = server.stderr.text();
    assert!(
        !log.contains("warning:") && !log.contains("error:"),
        "resets are routine, yet:\n{log}"
    );
}

#[test]
fn under_a_descriptor_limit_of_64_a_flood_neither_kills_nor_spins_the_server() {
    raise_nofile(2048);
    // The default --max-conns (sized to the limit) keeps the flood in the
    // backlog; --max-conns 1000 lets accept(2) hit EMFILE for real.
    for args in [&["--max-conns", "1000"][..], &[][..]] {
        let mut server = Server::start_with_nofile(64, args);
        let cpu_before = server.cpu_time();
        let start = Instant::now();
        let mut flood = Vec::new();
        for _ in 0..500 {
            // A full backlog may refuse or time out: that is fine.
            if let Ok(stream) = TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)) {
                flood.push(stream);
            }
        }
        // Hold the flood for two seconds: the server is at its limit all along.
        std::thread::sleep(Duration::from_secs(2).saturating_sub(start.elapsed()));
        let episode = start.elapsed();
        let cpu = server.cpu_time().saturating_sub(cpu_before);
        eprintln!(
            "ulimit 64 {args:?}: {} of 500 connections opened; server CPU {cpu:?} over {episode:?}",
            flood.len()
        );
        assert!(server.is_running(), "the server died");
        assert!(
            cpu < episode / 4,
            "the server used {cpu:?} of CPU in {episode:?}: it spins"
        );
        drop(flood);
        // Once the flood is gone, it serves normally.
        let deadline = Instant::now() + WAIT;
        let served = loop {
            if let Ok(mut stream) = TcpStream::connect_timeout(&server.addr, Duration::from_secs(2))
            {
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let _ = stream.write_all(GET);
                let mut reply = Vec::new();
                let _ = stream.take(4096).read_to_end(&mut reply);
                if reply.ends_with(b"Hello, world!") {
                    break true;
                }
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            served,
            "not serving after the flood:\n{}",
            server.stderr.text()
        );
        let log = server.stderr.text();
        let warnings = log.matches("warning:").count();
        assert!(
            warnings <= 1,
            "accept errors were logged {warnings} times:\n{log}"
        );
    }
}

#[test]
fn sigterm_under_load_answers_every_request_the_server_read() {
    const CLIENTS: usize = 100;
    let server = Server::start(&["-q", "--grace", "5"]);
    let answered = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for _ in 0..CLIENTS {
        let (addr, answered, started, stop, problems) = (
            server.addr,
            answered.clone(),
            started.clone(),
            stop.clone(),
            problems.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let stream = connect(addr);
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut first = true;
            // Bounded: at most 100,000 requests, or until the server closes.
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if writer.write_all(GET).is_err() {
                    return; // closed before reading this request: not counted anywhere
                }
                match read_response_buffered(&mut reader) {
                    Ok(Some(response)) => {
                        if !response.ends_with("Hello, world!") {
                            problems.lock().unwrap().push(response);
                            return;
                        }
                        answered.fetch_add(1, Ordering::Relaxed);
                        if first {
                            started.fetch_add(1, Ordering::Relaxed);
                            first = false;
                        }
                        if response.contains("Connection: close") {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                    Err(e) => {
                        problems.lock().unwrap().push(e.to_string());
                        return;
                    }
                }
            }
        }));
    }
    // Clients that vanish during shutdown: half a request, then a reset.
    let mut vanishing = Vec::new();
    for _ in 0..10 {
        let mut stream = connect(server.addr);
        send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n");
        vanishing.push(stream);
    }
    // Let the load run until every client is being served and it is well
    // under way.
    let deadline = Instant::now() + WAIT;
    while (started.load(Ordering::Relaxed) < CLIENTS as u64
        || answered.load(Ordering::Relaxed) < 2000)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(50));
    for stream in vanishing {
        reset(stream);
    }
    let (status, took, stderr) = server.wait_exit();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(status.success(), "exit {status:?}:\n{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?} to exit");
    let problems = problems.lock().unwrap();
    assert!(problems.is_empty(), "cut or wrong responses: {problems:?}");
    let (connections, requests, errors) = summary(&stderr);
    let answered = answered.load(Ordering::Relaxed);
    eprintln!("SIGTERM under load: {connections} connections, server read {requests} requests, clients got {answered} responses, {errors} errors");
    // The vanishing clients may or may not have been accepted before the signal.
    assert!(
        (CLIENTS as u64..=CLIENTS as u64 + 10).contains(&connections),
        "{connections} connections"
    );
    assert_eq!(
        requests, answered,
        "requests the server read vs full responses received"
    );
    assert_eq!(errors, 0, "{stderr}");
}

mod panic {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use bytes::BytesMut;
    use sockit::conn::{Conn, ConnReport, Connection};
    use sockit::server::Server;
    use sockit::service::Service;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A service with a bug: a request starting with `!` panics; any
    /// other gets the tutorial's reply.
    struct Buggy;

    impl Service for Buggy {
        async fn serve<C: Connection>(&self, mut conn: Conn<C>) -> ConnReport {
            let mut request = BytesMut::new();
            let _ = conn.read(&mut request).await;
            if request.starts_with(b"!") {
                panic!("bug triggered by {}", conn.peer());
            }
            let _ = conn.write_all(b"Hello, world!").await;
            ConnReport {
                requests: 1,
                error: false,
            }
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_panicking_handler_closes_its_connection_and_the_server_keeps_serving() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        // One thread, so the subscriber above sees the connection tasks.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (summary, peer) = runtime.block_on(async {
            let server = Server::builder()
                .listen("127.0.0.1:0".parse().unwrap())
                .bind(Buggy)
                .await
                .unwrap();
            let addr = server.local_addrs()[0].as_tcp().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let running = tokio::spawn(server.run(async {
                let _ = stopped.await;
            }));
            // The buggy request: the connection is closed, nothing written.
            let mut victim = tokio::net::TcpStream::connect(addr).await.unwrap();
            let peer = victim.local_addr().unwrap();
            victim.write_all(b"!boom").await.unwrap();
            let mut got = Vec::new();
            let read =
                tokio::time::timeout(crate::common::WAIT, victim.read_to_end(&mut got)).await;
            assert!(read.is_ok(), "the panicked connection was left open");
            assert!(got.is_empty());
            // Everyone else is still served.
            for _ in 0..3 {
                let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
                client.write_all(b"hi").await.unwrap();
                let mut response = Vec::new();
                client.read_to_end(&mut response).await.unwrap();
                assert!(response.ends_with(b"Hello, world!"));
            }
            let _ = stop.send(());
            (running.await.unwrap(), peer)
        });
        assert_eq!(summary.connections, 4);
        assert_eq!(summary.requests, 3);
        assert_eq!(summary.errors, 1);
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
        assert_eq!(lines.len(), 1, "the panic is logged once:\n{log}");
        assert!(lines[0].contains(&peer.to_string()), "{}", lines[0]);
        assert!(lines[0].contains("bug triggered by"), "{}", lines[0]);
        assert!(lines[0].contains("hardening.rs:"), "{}", lines[0]);
    }
}
