//! `sockit send`: the tutorial's client.

use crate::common::{run, sockit, Server};

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
