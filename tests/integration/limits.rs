//! Every service on every stream transport is held to the connection
//! limits: the handle a service is given (`sockit::conn::Conn`) applies
//! them on every read and write, so no service can keep a `--max-conns`
//! slot past a timeout.
//!
//! For each service and each of TCP, Unix stream and seqpacket, with
//! `--max-conns 2`: two bad clients take both slots, and a third client
//! must still be accepted once the timeout frees a slot. The bad clients
//! are, in turn, idle (connect and send nothing: `--idle-timeout`, or for
//! hello `--header-timeout`) and, for the services that write, clients
//! that send but never read (`--write-timeout`).

use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::common::{temp_socket_path, Server};

/// Every timeout of the servers here; the clock may fire up to a second
/// early, never late.
const TIMEOUT_SECS: u64 = 1;
/// How long after the timeout a freed slot may take to be used again:
/// scheduling on a loaded 2-core machine, not the server's timers.
const SLACK: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Unix,
    SeqPacket,
}

const TRANSPORTS: [Transport; 3] = [Transport::Tcp, Transport::Unix, Transport::SeqPacket];

/// What a bad client does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// Sends nothing, reads nothing.
    Idle,
    /// Sends requests (or bytes) as fast as the server takes them and never
    /// reads a reply.
    NeverReads,
}

/// A server on `transport` with small limits, and how to reach it.
struct Target {
    server: Server,
    transport: Transport,
    addr: SockAddr,
    _dir: Option<tempfile::TempDir>,
}

fn start(service: &str, transport: Transport) -> Target {
    let secs = TIMEOUT_SECS.to_string();
    let (dir, endpoint, path) = match transport {
        Transport::Tcp => (None, "127.0.0.1:0".to_owned(), None),
        Transport::Unix | Transport::SeqPacket => {
            let (dir, path) = temp_socket_path("limits.sock");
            let scheme = if transport == Transport::Unix {
                "unix"
            } else {
                "seqpacket"
            };
            let endpoint = format!("{scheme}:{}", path.display());
            (Some(dir), endpoint, Some(path))
        }
    };
    let server = Server::start_raw(&[
        "serve",
        "--service",
        service,
        "-l",
        &endpoint,
        "--max-conns",
        "2",
        "--header-timeout",
        &secs,
        "--idle-timeout",
        &secs,
        "--write-timeout",
        &secs,
    ]);
    let addr = match &path {
        None => SockAddr::from(server.addr),
        Some(path) => SockAddr::unix(Path::new(path)).expect("unix address"),
    };
    Target {
        server,
        transport,
        addr,
        _dir: dir,
    }
}

impl Target {
    fn connect(&self) -> Socket {
        let (domain, ty) = match self.transport {
            Transport::Tcp => (Domain::IPV4, Type::STREAM),
            Transport::Unix => (Domain::UNIX, Type::STREAM),
            Transport::SeqPacket => (Domain::UNIX, Type::SEQPACKET),
        };
        let socket = Socket::new(domain, ty, None).expect("socket");
        if self.transport == Transport::Tcp {
            // A small window, so a client that never reads fills the
            // server's send buffer with little data.
            socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        }
        socket
            .connect_timeout(&self.addr, Duration::from_secs(2))
            .expect("connect");
        socket
    }
}

/// What a client that never reads sends, over and over: a request for
/// hello, bytes for the others.
fn request_for(service: &str) -> &'static [u8] {
    if service == "hello" {
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    } else {
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    }
}

/// Sends `request` until the server stops taking it for 300 ms (its
/// buffers and ours are full) or 16 MiB went out.
fn fill(socket: &Socket, request: &[u8]) {
    socket.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0usize;
    let mut stalled_since: Option<Instant> = None;
    while sent < 16 << 20 {
        match socket.send(request) {
            Ok(n) => {
                sent += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // The server already dropped us: fine, it freed the slot.
            Err(_) => return,
        }
    }
}

/// Two bad clients take both slots; a third must be accepted within the
/// timeout plus [`SLACK`], and the bad ones must have been closed.
fn check(service: &str, transport: Transport, bad: Misbehaviour) {
    let target = start(service, transport);
    let what = format!("{service} over {transport:?}, {bad:?} clients");
    let descriptors = target.server.fd_count();
    let bad_clients: Vec<Socket> = (0..2).map(|_| target.connect()).collect();
    if bad == Misbehaviour::NeverReads {
        for socket in &bad_clients {
            fill(socket, request_for(service));
        }
    }
    target
        .server
        .stderr
        .wait_for_count("Accept new connection", 2);
    let started = Instant::now();
    // The kernel queues this one in the backlog until a slot frees up.
    let _third = target.connect();
    target
        .server
        .stderr
        .wait_for_count("Accept new connection", 3);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(TIMEOUT_SECS) + SLACK,
        "{what}: the third client waited {waited:?} for a slot"
    );
    // Both bad clients were closed by the server: its descriptors are back
    // to where they were, plus the third client's at most. (Counting on the
    // server's side: a client that read to see the close would let a
    // blocked write go on.)
    let now = target.server.wait_fd_count(descriptors + 1);
    assert!(
        now <= descriptors + 1,
        "{what}: {now} descriptors, {descriptors} before the clients: a bad client was not closed"
    );
    drop(bad_clients);
}

/// Runs `check` for every transport at once (each has its own server), so
/// the waits overlap.
fn check_all(service: &'static str, kinds: &[Misbehaviour]) {
    let mut runs = Vec::new();
    for &transport in &TRANSPORTS {
        for &bad in kinds {
            runs.push(std::thread::spawn(move || check(service, transport, bad)));
        }
    }
    // Join every run before failing: a run still going when the test
    // process exits would never drop its server guard (a leaked server).
    let outcomes: Vec<_> = runs.into_iter().map(|run| run.join()).collect();
    for outcome in outcomes {
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn hello_closes_idle_and_non_reading_clients_on_every_transport() {
    check_all("hello", &[Misbehaviour::Idle, Misbehaviour::NeverReads]);
}

#[test]
fn echo_closes_idle_and_non_reading_clients_on_every_transport() {
    check_all("echo", &[Misbehaviour::Idle, Misbehaviour::NeverReads]);
}

#[test]
fn chargen_closes_idle_and_non_reading_clients_on_every_transport() {
    // chargen writes from the start, so an idle client is one that never
    // reads.
    check_all("chargen", &[Misbehaviour::Idle, Misbehaviour::NeverReads]);
}

#[test]
fn discard_closes_idle_clients_on_every_transport() {
    // discard writes nothing: only silence can hold it.
    check_all("discard", &[Misbehaviour::Idle]);
}

#[test]
fn daytime_closes_idle_clients_on_every_transport() {
    // daytime writes one line and closes; an idle client is held at most
    // by the lingering close (2 s).
    check_all("daytime", &[Misbehaviour::Idle]);
}
