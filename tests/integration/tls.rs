//! TLS (issue 12) against real peers: curl and openssl s_client to
//! `serve --tls-cert`, mTLS, plain TCP to a TLS port, certificate reload.
//! Certificates are made at test time with rcgen in a temp dir.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

use crate::common::{connect, have, read_to_end, run, send, summary, Server};

/// A test CA and the PEM files it signs into one temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "sockit test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `NAME.pem` and `NAME.key`: a certificate for `names` with
    /// serial `serial`, signed by the CA; `client` makes a client
    /// certificate, `expired` one whose validity ended in 2020.
    fn issue(&self, name: &str, names: &[&str], serial: u8, client: bool, expired: bool) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.serial_number = Some(SerialNumber::from_slice(&[serial]));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        // Written whole then renamed, so a watcher never reads half a file.
        for (ext, text) in [("pem", cert.pem()), ("key", key.serialize_pem())] {
            let tmp = self.path(&format!("{name}.{ext}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.path(&format!("{name}.{ext}"))).unwrap();
        }
    }
}

fn start_tls(pki: &Pki, extra: &[&str]) -> Server {
    let cert = pki.path("server.pem");
    let key = pki.path("server.key");
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&refs)
}

fn curl(url: &str, ca: &Path, extra: &[&str]) -> std::process::Output {
    run(Command::new("curl")
        .args(["-sS", "-v", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url))
}

/// The serial `openssl s_client` sees on the server's certificate.
fn served_serial(server: &Server, ca: &Path) -> String {
    let script = format!(
        "openssl s_client -connect {} -servername localhost -CAfile {} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial",
        server.addr,
        ca.display()
    );
    let out = run(Command::new("sh").args(["-c", &script]));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn curl_with_cacert_gets_hello_over_tls_with_alpn_http11() {
    assert!(have("curl"), "curl is required (.ci/run installs it)");
    let pki = Pki::new();
    pki.issue("server", &["localhost", "127.0.0.1"], 1, false, false);
    let server = start_tls(&pki, &[]);
    let url = format!("https://localhost:{}/", server.addr.port());
    let out = curl(&url, &pki.ca(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world!");
    // RFC 7301: the server picks http/1.1 from curl's h2,http/1.1 offer.
    assert!(
        stderr.contains("ALPN: server accepted http/1.1"),
        "{stderr}"
    );
    let (_, text) = server.terminate();
    assert_eq!(summary(&text), (1, 1, 0), "{text}");
}

#[test]
fn openssl_s_client_verifies_the_chain_and_gets_tls13() {
    assert!(have("openssl"), "openssl is required (.ci/run installs it)");
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 7, false, false);
    let server = start_tls(&pki, &[]);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string()])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(pki.ca())
        .args(["-alpn", "http/1.1", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child.wait().unwrap();
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // RFC 8446: rustls's default is TLS 1.3 when both sides have it.
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("HTTP/1.1 200 OK"), "{out}");
}

#[test]
fn plain_tcp_to_a_tls_port_is_one_log_line_and_an_error_in_the_summary() {
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let server = start_tls(&pki, &[]);
    let mut stream = connect(server.addr);
    send(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // Closed (after a TLS alert at most), never an HTTP answer in clear.
    let reply = read_to_end(&mut stream);
    assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");
    let line = server.stderr.wait_for("TLS handshake with");
    assert!(line.contains("127.0.0.1:"), "{line}");
    assert!(line.contains("not TLS"), "{line}");
    // The server goes on serving TLS.
    if have("curl") {
        let url = format!("https://localhost:{}/", server.addr.port());
        assert!(curl(&url, &pki.ca(), &[]).status.success());
    }
    let (_, text) = server.terminate();
    let (connections, _, errors) = summary(&text);
    assert!(connections >= 1 && errors == 1, "{text}");
}

#[test]
fn a_silent_client_is_closed_at_the_header_timeout_during_the_handshake() {
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let server = start_tls(&pki, &["--header-timeout", "1"]);
    let mut stream = connect(server.addr);
    // Blocks until the server gives up on the handshake and closes.
    assert!(read_to_end(&mut stream).is_empty());
    let line = server.stderr.wait_for("TLS handshake with");
    assert!(line.contains("header timeout"), "{line}");
}

#[test]
fn mtls_accepts_the_right_client_certificate_and_refuses_none() {
    assert!(have("curl"), "curl is required (.ci/run installs it)");
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    pki.issue("client", &["client.test"], 2, true, false);
    let ca = pki.ca();
    let server = start_tls(&pki, &["--client-ca", ca.to_str().unwrap()]);
    let url = format!("https://localhost:{}/", server.addr.port());
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let with = curl(
        &url,
        &ca,
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with.stdout), "Hello, world!");
    // RFC 8446 §4.4.2.4: a server requiring a certificate aborts the
    // handshake when the client sends none.
    let without = curl(&url, &ca, &[]);
    assert!(!without.status.success());
    let line = server.stderr.wait_for("TLS handshake with");
    assert!(line.contains("bad certificate"), "{line}");
}

#[test]
fn sighup_swaps_the_certificate_and_keeps_open_connections() {
    assert!(have("openssl"), "openssl is required (.ci/run installs it)");
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 0x11, false, false);
    let server = start_tls(&pki, &[]);
    assert_eq!(served_serial(&server, &pki.ca()), "serial=11");

    // A keep-alive connection opened on the old certificate.
    let mut open = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string()])
        .args(["-servername", "localhost", "-quiet", "-CAfile"])
        .arg(pki.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = open.stdin.take().unwrap();
    let mut output = open.stdout.take().unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // Reads one response (the body has no newline: read to its last byte);
    // panics if the connection closes first.
    let mut read_response = || {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"Hello, world!") {
            assert_eq!(output.read(&mut byte).unwrap(), 1, "connection closed");
            seen.push(byte[0]);
        }
    };
    input.write_all(request).unwrap();
    input.flush().unwrap();
    read_response();

    pki.issue("server", &["localhost"], 0x22, false, false);
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server.stderr.wait_for("TLS certificate reloaded");
    assert_eq!(served_serial(&server, &pki.ca()), "serial=22");

    // The connection made before the reload still answers.
    input.write_all(request).unwrap();
    input.flush().unwrap();
    read_response();
    drop(input);
    let _ = open.kill();
    let _ = open.wait();

    // A pair that fails to load is logged and the old one kept.
    std::fs::write(pki.path("server.pem"), "not a certificate").unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let line = server.stderr.wait_for("kept the certificate in use");
    assert!(line.contains("server.pem"), "{line}");
    assert_eq!(served_serial(&server, &pki.ca()), "serial=22");
}

#[test]
fn a_certificate_file_that_is_not_pem_is_one_line_and_exit_1() {
    let pki = Pki::new();
    std::fs::write(pki.path("server.pem"), "nothing here").unwrap();
    std::fs::write(pki.path("server.key"), "nothing here").unwrap();
    let out = run(crate::common::sockit().args([
        "serve",
        "-l",
        "127.0.0.1:0",
        "--tls-cert",
        pki.path("server.pem").to_str().unwrap(),
        "--tls-key",
        pki.path("server.key").to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.pem"), "{stderr}");
}

#[test]
fn self_signed_prints_its_fingerprint_and_serves() {
    let server = Server::start(&["--tls-self-signed"]);
    let line = server.stderr.wait_for("SHA-256 fingerprint");
    let fingerprint = line.rsplit(' ').next().unwrap();
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{line}");
    if have("openssl") {
        let script = format!(
            "openssl s_client -connect {} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            server.addr
        );
        let out = run(Command::new("sh").args(["-c", &script]));
        let seen = String::from_utf8_lossy(&out.stdout);
        assert!(seen.contains(fingerprint), "{seen} vs {line}");
    }
}

/// `openssl s_server -rev` (answers each line reversed) with `NAME.pem`;
/// returns it and its port once it prints `ACCEPT`.
fn s_server(pki: &Pki, name: &str, extra: &[&str]) -> (crate::common::ChildGuard, u16) {
    assert!(have("openssl"), "openssl is required (.ci/run installs it)");
    let mut child = crate::common::ChildGuard::spawn(
        Command::new("openssl")
            .args(["s_server", "-accept", "127.0.0.1:0", "-rev", "-cert"])
            .arg(pki.path(&format!("{name}.pem")))
            .arg("-key")
            .arg(pki.path(&format!("{name}.key")))
            .args(extra),
    );
    let line = child.wait_for_stdout("ACCEPT");
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    (child, port)
}

fn sockit_send(args: &[&str]) -> std::process::Output {
    run(crate::common::sockit().arg("send").args(args))
}

#[test]
fn send_tls_to_openssl_s_server_verifies_and_gets_the_reply() {
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let (_server, port) = s_server(&pki, "server", &[]);
    let ca = pki.ca();
    let out = sockit_send(&[
        &format!("tls://localhost:{port}"),
        "abc\n",
        "--raw",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cba\n");
}

#[test]
fn connect_tls_to_openssl_s_server_bridges_stdin() {
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let (_server, port) = s_server(&pki, "server", &[]);
    let mut child = crate::common::sockit()
        .args(["connect", &format!("tls://localhost:{port}"), "--cacert"])
        .arg(pki.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = crate::common::wait_timeout(&mut child, std::time::Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out, "olleh\n");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// One stderr line, exit 1, naming what went wrong.
fn assert_one_line_failure(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
}

#[test]
fn an_untrusted_certificate_fails_with_one_line() {
    // RFC 5280 §6: no path to a trust anchor (the system's roots do not
    // hold the test CA).
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let (_server, port) = s_server(&pki, "server", &[]);
    let out = sockit_send(&[&format!("tls://localhost:{port}"), "x"]);
    assert_one_line_failure(&out, "not signed by a trusted CA");
}

#[test]
fn an_expired_certificate_fails_with_one_line() {
    // RFC 5280 §4.1.2.5: notAfter in the past.
    let pki = Pki::new();
    pki.issue("old", &["localhost"], 1, false, true);
    let (_server, port) = s_server(&pki, "old", &[]);
    let ca = pki.ca();
    let out = sockit_send(&[
        &format!("tls://localhost:{port}"),
        "x",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert_one_line_failure(&out, "expired");
}

#[test]
fn a_certificate_for_another_name_fails_with_one_line() {
    // RFC 6125 §6: the reference identity (127.0.0.1) is not in the SAN.
    let pki = Pki::new();
    pki.issue("server", &["example.test"], 1, false, false);
    let (_server, port) = s_server(&pki, "server", &[]);
    let ca = pki.ca();
    let out = sockit_send(&[
        &format!("tls://127.0.0.1:{port}"),
        "x",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert_one_line_failure(&out, "not valid for this host name");
}

#[test]
fn tls_to_a_plain_tcp_server_fails_with_one_line() {
    let server = Server::start(&[]);
    let out = sockit_send(&[&format!("tls://127.0.0.1:{}", server.addr.port()), "x"]);
    assert_one_line_failure(&out, "TLS");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS port") || stderr.contains("speak TLS"),
        "{stderr}"
    );
}

#[test]
fn insecure_says_so_and_connects_to_an_untrusted_server() {
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let (_server, port) = s_server(&pki, "server", &[]);
    let out = sockit_send(&[
        &format!("tls://localhost:{port}"),
        "ab\n",
        "--raw",
        "--insecure",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ba\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT verified"));
}

#[test]
fn sockit_client_certificate_passes_sockit_client_ca() {
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    pki.issue("client", &["client.test"], 2, true, false);
    let ca = pki.ca();
    let server = start_tls(&pki, &["--client-ca", ca.to_str().unwrap()]);
    let target = format!("tls://localhost:{}", server.addr.port());
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let ca = ca.to_str().unwrap();
    let with = sockit_send(&[
        &target,
        request,
        "--raw",
        "--cacert",
        ca,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--alpn",
        "http/1.1",
    ]);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).starts_with("HTTP/1.1 200 OK"));
    let without = sockit_send(&[&target, request, "--raw", "--cacert", ca]);
    assert_eq!(without.status.code(), Some(1));
}

#[test]
fn relay_from_tls_decrypts_for_a_plain_upstream() {
    assert!(have("curl"), "curl is required (.ci/run installs it)");
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let upstream = Server::start(&[]);
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let relay = Server::start_raw(&[
        "relay",
        "127.0.0.1:0",
        &upstream.addr.to_string(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let url = format!("https://localhost:{}/", relay.addr.port());
    let out = curl(&url, &pki.ca(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world!");
}

/// Kills and reaps a child on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn listen_with_tls_bridges_a_tls_client() {
    use std::io::{BufRead, BufReader};
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 1, false, false);
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let mut listen = Reaped(
        crate::common::sockit()
            .args(["listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(listen.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("Listening on 127.0.0.1:"), "{line}");
    let port = line
        .trim()
        .trim_end_matches(" ...")
        .rsplit(':')
        .next()
        .unwrap();
    let ca = pki.ca();
    let out = sockit_send(&[
        &format!("tls://localhost:{port}"),
        "over tls",
        "--raw",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = String::new();
    listen
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "over tls");
}

#[test]
fn new_certificate_files_are_picked_up_without_a_signal() {
    assert!(have("openssl"), "openssl is required (.ci/run installs it)");
    let pki = Pki::new();
    pki.issue("server", &["localhost"], 0x31, false, false);
    let server = start_tls(&pki, &[]);
    assert_eq!(served_serial(&server, &pki.ca()), "serial=31");
    pki.issue("server", &["localhost"], 0x32, false, false);
    let line = server.stderr.wait_for("TLS certificate reloaded");
    assert!(line.contains("the files changed"), "{line}");
    assert_eq!(served_serial(&server, &pki.ca()), "serial=32");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_at_start() {
    let pki = Pki::new();
    pki.issue("a", &["localhost"], 1, false, false);
    pki.issue("b", &["localhost"], 2, false, false);
    let out = run(crate::common::sockit().args([
        "serve",
        "-l",
        "127.0.0.1:0",
        "--tls-cert",
        pki.path("a.pem").to_str().unwrap(),
        "--tls-key",
        pki.path("b.key").to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not match the certificate"),
        "{stderr}"
    );
}
