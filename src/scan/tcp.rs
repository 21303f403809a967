//! The TCP probe: a non-blocking connect, and what its socket says.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::{classify, Outcome, PortState};
use crate::socket;

/// Probes `addr` once, waiting at most `timeout` for an answer.
///
/// 1. [`socket::tcp_connect_start`] sends the SYN.
/// 2. The socket is asked at once ([`settled`]): on loopback the SYN-ACK
///    or RST has usually been handled before `connect(2)` returned, and
///    such a probe never touches the reactor.
/// 3. Otherwise it is registered with tokio and awaited for writability
///    (the kernel's sign that the handshake ended, either way), up to
///    `timeout`.
/// 4. When the time is up the socket is asked once more, so a probe whose
///    task ran late (a busy machine) still sees an answer that arrived in
///    time: only a socket still in `SYN_SENT` is silence.
///
/// Dropping the socket closes it with RST (`SO_LINGER` 0), which also
/// stops the kernel's SYN retransmissions to a silent port.
pub(crate) async fn probe(addr: SocketAddr, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let socket = match socket::tcp_connect_start(addr) {
        Ok(socket) => socket,
        Err(err) => return classify(err, start.elapsed()),
    };
    if let Some(outcome) = settled(SockRef::from(&socket), start) {
        return outcome;
    }
    let stream = match tokio::net::TcpStream::from_std(socket.into()) {
        Ok(stream) => stream,
        Err(err) => return classify(err, start.elapsed()),
    };
    let deadline = tokio::time::Instant::from_std(start + timeout);
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
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
            }
            Ok(Err(err)) => return classify(err, start.elapsed()),
            Err(_elapsed) => return Outcome::Silence,
        }
    }
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
        match probe(addr, WAIT).await {
            Outcome::Answer { state, .. } => assert_eq!(state, PortState::Open),
            other => panic!("{other:?}"),
        }
        drop(listener);
        match probe(addr, WAIT).await {
            Outcome::Answer { state, .. } => assert_eq!(state, PortState::Closed),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_probe_of_an_open_port_leaves_no_time_wait_behind() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(matches!(
            probe(addr, WAIT).await,
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
