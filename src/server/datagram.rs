//! The one datagram loop: UDP and Unix datagram servers both run it.
//!
//! For each datagram: `recvfrom(2)`, ask the service for a reply, and
//! `sendto(2)` it to the sender. The loop keeps nothing per sender, so a
//! flood of distinct senders costs no memory; a reply that cannot be sent
//! at once (send buffer full) is dropped and counted, never queued; a
//! sender that has gone away (`ECONNREFUSED`, `ENOENT`) is logged at debug
//! and forgotten. Nothing but the server's shutdown ends the loop.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, trace, warn};

use crate::server::listener::{unix_name, LocalAddr};
use crate::server::Shared;
use crate::service::Service;
use crate::socket;

/// The longest datagram served: 64 KiB, which covers every UDP payload
/// (65,507 bytes over IPv4). A longer Unix datagram is dropped and counted
/// as an error rather than answered cut short.
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// A bound datagram socket the loop receives from and replies on.
pub(crate) trait DatagramSocket: Send + Sync + 'static {
    /// A sender's address.
    type Peer: fmt::Debug + Send;

    /// Receives one datagram, corresponding to `recvfrom(2)`.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, Self::Peer)>> + Send;

    /// Sends one datagram without waiting, corresponding to `sendto(2)`
    /// with `MSG_DONTWAIT`.
    fn try_send_to(&self, buf: &[u8], peer: &Self::Peer) -> io::Result<usize>;

    /// The bound address.
    fn local_addr(&self) -> io::Result<LocalAddr>;
}

impl DatagramSocket for tokio::net::UdpSocket {
    type Peer = std::net::SocketAddr;

    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, Self::Peer)>> + Send {
        tokio::net::UdpSocket::recv_from(self, buf)
    }

    fn try_send_to(&self, buf: &[u8], peer: &Self::Peer) -> io::Result<usize> {
        tokio::net::UdpSocket::try_send_to(self, buf, *peer)
    }

    fn local_addr(&self) -> io::Result<LocalAddr> {
        tokio::net::UdpSocket::local_addr(self).map(LocalAddr::Udp)
    }
}

impl DatagramSocket for tokio::net::UnixDatagram {
    type Peer = tokio::net::unix::SocketAddr;

    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, Self::Peer)>> + Send {
        tokio::net::UnixDatagram::recv_from(self, buf)
    }

    fn try_send_to(&self, buf: &[u8], peer: &Self::Peer) -> io::Result<usize> {
        socket::unix_datagram_try_send_to(self, buf, peer)
    }

    fn local_addr(&self) -> io::Result<LocalAddr> {
        let addr = tokio::net::UnixDatagram::local_addr(self)?;
        Ok(LocalAddr::UnixDgram(
            unix_name(&addr.into()).unwrap_or_default(),
        ))
    }
}

/// What one datagram loop did, added to the server's stats when it stops
/// (counted locally: the per-datagram path touches no shared cache line).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DatagramCounts {
    /// Datagrams handled (answered, or deliberately not: discard).
    pub(crate) handled: u64,
    /// Replies dropped because the send buffer was full.
    pub(crate) dropped: u64,
    /// Datagrams too long to serve, and replies that failed otherwise.
    pub(crate) errors: u64,
}

/// How long the loop pauses after an unexpected receive error, so a
/// persistent one cannot spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves datagrams from `socket` with `service` until the server's
/// shutdown token is cancelled, then drops the socket.
pub(crate) async fn datagram_loop<D: DatagramSocket, S: Service>(
    socket: D,
    service: Arc<S>,
    shared: Arc<Shared>,
) {
    let local = socket
        .local_addr()
        .map_or_else(|_| "datagram socket".to_owned(), |a| a.to_string());
    // One byte more than served: a datagram that fills it was longer.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut reply = Vec::new();
    let mut counts = DatagramCounts::default();
    let mut failing = false;
    loop {
        let received = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, peer) = match received {
            Ok(received) => {
                failing = false;
                received
            }
            Err(err) => {
                if is_transient(&err) {
                    // On Linux a UDP socket can report an earlier send's
                    // ICMP error here; it is that sender's problem.
                    debug!(%err, "recvfrom: skipped");
                    continue;
                }
                if !failing {
                    warn!("receiving on {local} failed: {err}; retrying");
                    failing = true;
                }
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(ERROR_PAUSE) => continue,
                }
            }
        };
        if len > MAX_DATAGRAM {
            debug!(?peer, "datagram longer than {MAX_DATAGRAM} bytes dropped");
            counts.errors += 1;
            continue;
        }
        trace!(?peer, len, "datagram");
        reply.clear();
        counts.handled += 1;
        if !service.reply_to_datagram(&buf[..len], &mut reply) {
            continue;
        }
        match socket.try_send_to(&reply, &peer) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                trace!(?peer, "send buffer full: reply dropped");
                counts.dropped += 1;
            }
            Err(err) if is_peer_gone(&err) => {
                debug!(?peer, %err, "the sender is gone; reply dropped");
            }
            Err(err) => {
                debug!(?peer, %err, "reply failed");
                counts.errors += 1;
            }
        }
        // Keep one big reply (chargen, a 64 KiB echo) from pinning memory.
        if reply.capacity() > 4 * 1024 {
            reply = Vec::new();
        }
    }
    shared.stats.datagrams_done(counts);
    debug!("datagram loop on {local} stopped");
}

/// Errors a receive can return that belong to one sender, not the socket.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || err.raw_os_error().is_some_and(|code| {
        use nix::errno::Errno;
        [Errno::EHOSTUNREACH, Errno::ENETUNREACH, Errno::EMSGSIZE]
            .iter()
            .any(|e| *e as i32 == code)
    })
}

/// Whether a reply failed because its sender is gone: a Unix datagram
/// client removed its file (`ENOENT`) or closed its socket
/// (`ECONNREFUSED`), or a UDP port is closed.
fn is_peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::PermissionDenied
    )
}
