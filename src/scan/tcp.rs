//! The TCP probe: a non-blocking connect, and what its socket says.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nix::libc;
use socket2::{SockRef, Socket};

use super::{classify, Outcome, PortState};
use crate::socket;

thread_local! {
    /// Sockets whose last probe was refused, reset by the failing
    /// `connect(2)` and ready to connect again ([`socket::tcp_connect_again`]):
    /// a scan of mostly closed ports then skips a `socket(2)` and a
    /// `close(2)` per port, about a third of the kernel's work per probe.
    static SPARE: RefCell<Vec<(bool, Socket)>> = const { RefCell::new(Vec::new()) };
}

/// Spare sockets kept per thread: few, since each holds a descriptor
/// outside the window's count (the window's reserve covers them).
const MAX_SPARE: usize = 4;

fn take_spare(addr: SocketAddr) -> Option<Socket> {
    let v6 = addr.is_ipv6();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        let index = spare.iter().position(|(is_v6, _)| *is_v6 == v6)?;
        Some(spare.swap_remove(index).1)
    })
}

/// Keeps `socket`, last used for `addr`, for the next probe.
fn give_back(socket: Socket, addr: SocketAddr) {
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < MAX_SPARE {
            spare.push((addr.is_ipv6(), socket));
        }
    });
}

/// How a probe stands right after its SYN went out.
#[derive(Debug)]
pub(crate) enum Start {
    /// The answer is already in: no waiting, no task, no reactor.
    Done(Outcome),
    /// Still connecting: [`Pending::finish`] waits for the answer.
    Pending(Pending),
}

/// A probe whose answer has not come yet.
#[derive(Debug)]
pub(crate) struct Pending {
    socket: Socket,
    start: Instant,
}

/// Starts a probe of `addr`.
///
/// 1. A spare socket of the right family, or a fresh one
///    ([`socket::tcp_probe_socket`]), sends the SYN
///    ([`socket::tcp_connect_again`]).
/// 2. A second `connect(2)` asks how it went: on loopback the SYN-ACK or
///    RST has usually been handled before the first call returned, and
///    such a probe is done at once. `ECONNREFUSED`: closed, and the
///    socket (reset by that call) is kept for the next probe; connected:
///    open ([`settled`] tells a self-connect apart).
/// 3. Otherwise (`EALREADY`) the probe is [`Start::Pending`].
pub(crate) fn start(addr: SocketAddr) -> Start {
    let start = Instant::now();
    let socket = match start_connect(addr) {
        Ok(socket) => socket,
        Err(err) => return Start::Done(classify(err, start.elapsed())),
    };
    match socket.connect(&addr.into()) {
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            give_back(socket, addr);
            Start::Done(Outcome::Answer {
                state: PortState::Closed,
                rtt: start.elapsed(),
            })
        }
        Err(err) if matches!(err.raw_os_error(), Some(libc::EALREADY | libc::EINPROGRESS)) => {
            Start::Pending(Pending { socket, start })
        }
        Err(err) if err.raw_os_error() != Some(libc::EISCONN) => {
            Start::Done(classify(err, start.elapsed()))
        }
        // Connected (`Ok`, or `EISCONN`).
        _ => match settled(SockRef::from(&socket), start) {
            Some(outcome) => Start::Done(outcome),
            None => Start::Pending(Pending { socket, start }),
        },
    }
}

impl Pending {
    /// Waits for the answer as long as `wait` says when it is asked (so
    /// the wait uses the round-trip times measured up to that moment),
    /// counted from the SYN.
    ///
    /// 1. The socket is registered with tokio and awaited for writability
    ///    (the kernel's sign that the handshake ended, either way).
    /// 2. When the time is up the socket is asked once more, so a probe
    ///    whose task ran late (a busy machine) still sees an answer that
    ///    arrived in time: only a socket still in `SYN_SENT` is silence.
    ///
    /// Dropping the socket closes it with RST (`SO_LINGER` 0), which also
    /// stops the kernel's SYN retransmissions to a silent port.
    pub(crate) async fn finish(self, wait: impl FnOnce() -> Duration) -> Outcome {
        let Pending { socket, start } = self;
        let stream = match tokio::net::TcpStream::from_std(socket.into()) {
            Ok(stream) => stream,
            Err(err) => return classify(err, start.elapsed()),
        };
        let deadline = tokio::time::Instant::from_std(start + wait());
        loop {
            let ready = tokio::time::timeout_at(deadline, stream.writable()).await;
            if let Some(outcome) = settled(SockRef::from(&stream), start) {
                return outcome;
            }
            match ready {
                // Writable but still connecting: a stale readiness event.
                // Clear it and wait again.
                Ok(Ok(())) => {
                    let _ = stream.try_io(tokio::io::Interest::WRITABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                Ok(Err(err)) => return classify(err, start.elapsed()),
                Err(_elapsed) => return Outcome::Silence,
            }
        }
    }
}

/// Probes `addr` once: [`start`], then [`Pending::finish`] if needed.
#[cfg(test)]
pub(crate) async fn probe(addr: SocketAddr, wait: impl FnOnce() -> Duration) -> Outcome {
    match start(addr) {
        Start::Done(outcome) => outcome,
        Start::Pending(pending) => pending.finish(wait).await,
    }
}

/// Sends the SYN from a spare socket, or from a fresh one when there is
/// none or the spare will not connect (it is then dropped).
fn start_connect(addr: SocketAddr) -> io::Result<Socket> {
    if let Some(spare) = take_spare(addr) {
        if socket::tcp_connect_again(&spare, addr).is_ok() {
            return Ok(spare);
        }
    }
    socket::tcp_connect_start(addr)
}

/// What the socket says about its connect, or `None` while it is still
/// in progress.
///
/// - `SO_ERROR` set: the connect failed (`ECONNREFUSED`: closed; an ICMP
///   unreachable: filtered), see [`classify`];
/// - `getpeername(2)` succeeds: connected, so the port is open, unless
///   the local address is the peer's own. That is TCP's simultaneous
///   open of a socket with itself: connecting on loopback to a port
///   where nothing listens, from that same port as the kernel's chosen
///   source port. Nothing listens there: closed. (A listening port is
///   never handed out as a source port, so this never hides a listener.)
fn settled(socket: SockRef<'_>, start: Instant) -> Option<Outcome> {
    let rtt = start.elapsed();
    match socket.take_error() {
        Ok(Some(err)) => return Some(classify(err, rtt)),
        Ok(None) => {}
        Err(err) => return Some(classify(err, rtt)),
    }
    let peer = socket.peer_addr().ok()?;
    let state = match socket.local_addr() {
        Ok(local) if local == peer => PortState::Closed,
        _ => PortState::Open,
    };
    Some(Outcome::Answer { state, rtt })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn a_listening_port_is_open_and_a_free_one_closed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        match probe(addr, || WAIT).await {
            Outcome::Answer { state, .. } => assert_eq!(state, PortState::Open),
            other => panic!("{other:?}"),
        }
        drop(listener);
        match probe(addr, || WAIT).await {
            Outcome::Answer { state, .. } => assert_eq!(state, PortState::Closed),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_refused_socket_probes_the_next_ports_exactly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let free: Vec<SocketAddr> = (0..3)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
            })
            .collect();
        // closed, closed, open, closed, open, closed: the spare socket of each
        // refusal is the next probe's.
        for (addr, expected) in [
            (free[0], PortState::Closed),
            (free[1], PortState::Closed),
            (open, PortState::Open),
            (free[2], PortState::Closed),
            (open, PortState::Open),
            (free[0], PortState::Closed),
        ] {
            match probe(addr, || WAIT).await {
                Outcome::Answer { state, .. } => assert_eq!(state, expected, "{addr}"),
                other => panic!("{addr}: {other:?}"),
            }
        }
        assert!(SPARE.with(|s| s.borrow().len()) <= MAX_SPARE);
        assert_eq!(
            SPARE.with(|s| s.borrow().len()),
            1,
            "one socket reused throughout"
        );
    }

    #[test]
    fn a_socket_connected_to_itself_is_closed_not_open() {
        // Bind, then connect to our own address: TCP's simultaneous open
        // connects the socket to itself, as a probe whose kernel-chosen
        // source port equals the probed port does.
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let own = socket.local_addr().unwrap();
        socket.connect(&own).unwrap();
        assert_eq!(socket.peer_addr().unwrap().as_socket(), own.as_socket());
        match settled(SockRef::from(&socket), Instant::now()) {
            Some(Outcome::Answer { state, .. }) => assert_eq!(state, PortState::Closed),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_probe_of_an_open_port_leaves_no_time_wait_behind() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(matches!(
            probe(addr, || WAIT).await,
            Outcome::Answer {
                state: PortState::Open,
                ..
            }
        ));
        // The listener's side of a reset connection reads ECONNRESET, not EOF.
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 1];
        let err = std::io::Read::read(&mut conn, &mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    }
}
