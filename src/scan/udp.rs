//! The UDP probe: a datagram on a connected socket, and what comes back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{classify, Outcome, PortState};
use crate::socket;

/// A DNS query (RFC 1035) for the root's NS records: any name server
/// answers it, even one that refuses recursion.
const DNS_QUERY: [u8; 17] = [
    0x50, 0x4b, // id
    0x00, 0x00, // a standard query, no recursion asked
    0x00, 0x01, // one question
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // no answer, authority, additional
    0x00, // the root name
    0x00, 0x02, // type NS
    0x00, 0x01, // class IN
];

/// An NTPv4 client request (RFC 5905): 48 bytes, the first `LI 0, VN 4,
/// mode 3`, the rest zero.
const NTP_REQUEST: [u8; 48] = {
    let mut packet = [0u8; 48];
    packet[0] = 0x23;
    packet
};

/// What a probe of `port` sends: a request the service there answers for
/// DNS (53) and NTP (123), an empty datagram elsewhere (an echo service
/// answers it; most others answer nothing, which is why silence is
/// `open|filtered`).
pub fn payload(port: u16) -> &'static [u8] {
    match port {
        53 => &DNS_QUERY,
        123 => &NTP_REQUEST,
        _ => &[],
    }
}

/// Probes `addr` once, waiting for an answer as long as `wait` says when
/// the probe has been sent.
///
/// 1. [`socket::udp_connect`]: a fresh socket, bound to an ephemeral port
///    and connected to `addr`, so the kernel hands it only `addr`'s
///    datagrams and reports an ICMP error for `addr` on it;
/// 2. send [`payload`];
/// 3. wait up to `timeout` for a datagram (open), `ECONNREFUSED` (ICMP
///    port unreachable: closed), another ICMP unreachable (filtered), or
///    nothing (silence; after the retries, `open|filtered`, never open).
pub(crate) async fn probe(addr: SocketAddr, wait: impl FnOnce() -> Duration) -> Outcome {
    let start = Instant::now();
    let socket = match socket::udp_connect(addr) {
        Ok(socket) => socket,
        Err(err) => return classify(err, start.elapsed()),
    };
    if let Err(err) = socket.send(payload(addr.port())).await {
        return classify(err, start.elapsed());
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(wait(), socket.recv(&mut buf)).await {
        Ok(Ok(_)) => Outcome::Answer {
            state: PortState::Open,
            rtt: start.elapsed(),
        },
        Ok(Err(err)) => classify(err, start.elapsed()),
        Err(_elapsed) => Outcome::Silence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn an_answering_port_is_open_and_a_free_one_closed() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
            server
        });
        assert!(matches!(
            probe(addr, || WAIT).await,
            Outcome::Answer {
                state: PortState::Open,
                ..
            }
        ));
        drop(echo.join().unwrap());
        assert!(matches!(
            probe(addr, || WAIT).await,
            Outcome::Answer {
                state: PortState::Closed,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_port_that_reads_and_never_answers_is_silence() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let outcome = probe(addr, || Duration::from_millis(100)).await;
        assert!(matches!(outcome, Outcome::Silence), "{outcome:?}");
        let mut buf = [0u8; 64];
        server.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(server.recv(&mut buf).unwrap(), 0, "the probe was empty");
    }

    #[test]
    fn well_known_ports_get_a_request_their_service_answers() {
        assert_eq!(payload(53).len(), 17);
        assert_eq!(payload(123)[0], 0x23);
        assert_eq!(payload(123).len(), 48);
        assert!(payload(7).is_empty());
    }
}
