//! The bridge over datagram sockets (UDP, Unix datagram): each chunk or
//! line of standard input is one datagram, each datagram received is
//! written to standard output as is.

use std::cell::Cell;
use std::future::Future;
use std::io;

use tokio::time::Instant;

use super::stdio::{Chunk, WriteError};
use super::{finish, run_both, BridgeOptions, Down, End, Failure, Stdio};
use crate::conn::PeerAddr;
use crate::{Error, Result};

/// A datagram socket a bridge can use: UDP or Unix datagram.
///
/// Written once against this trait, the bridge works for both; a new
/// datagram transport only has to implement these three calls.
pub trait Datagram: Send + Sync {
    /// Receives one datagram from the connected peer, corresponding to
    /// `recv(2)`.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;

    /// Sends one datagram to the connected peer, corresponding to
    /// `send(2)`.
    fn send(&self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;

    /// Receives the first datagram from anyone (`recvfrom(2)`), then
    /// `connect(2)`s to its sender, so the kernel drops datagrams from
    /// everyone else from then on.
    fn accept_first(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, PeerAddr)>> + Send;
}

impl Datagram for tokio::net::UdpSocket {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::net::UdpSocket::recv(self, buf).await
    }

    async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::UdpSocket::send(self, buf).await
    }

    async fn accept_first(&self, buf: &mut [u8]) -> io::Result<(usize, PeerAddr)> {
        let (n, from) = self.recv_from(buf).await?;
        self.connect(from).await?;
        Ok((n, PeerAddr::Inet(from)))
    }
}

impl Datagram for tokio::net::UnixDatagram {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::net::UnixDatagram::recv(self, buf).await
    }

    async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::UnixDatagram::send(self, buf).await
    }

    async fn accept_first(&self, buf: &mut [u8]) -> io::Result<(usize, PeerAddr)> {
        let (n, from) = self.recv_from(buf).await?;
        if let Some(path) = from.as_pathname() {
            self.connect(path)?;
            return Ok((n, PeerAddr::Unix(Some(path.display().to_string()))));
        }
        // tokio's `connect` takes a path only: an abstract name (a Linux
        // autobind name included) goes through socket2.
        let Some(name) = from.as_abstract_name() else {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the first datagram came from an unnamed socket (one that never bound an address), which cannot be answered",
            ));
        };
        socket2::SockRef::from(self).connect(&crate::socket::unix_abstract_sockaddr(name)?)?;
        Ok((
            n,
            PeerAddr::Unix(Some(format!("@{}", String::from_utf8_lossy(name)))),
        ))
    }
}

/// Waits for the first datagram, makes its sender the peer, and queues the
/// datagram for standard output: the start of `sockit listen` on a datagram
/// transport.
///
/// # Errors
///
/// [`Error::Io`] when receiving or connecting fails, [`Error::Stdio`] when
/// standard output fails.
pub async fn accept_first_datagram<D: Datagram>(
    socket: &D,
    stdio: &mut Stdio,
    local: &str,
) -> Result<PeerAddr> {
    let mut buf = stdio.output.buffer();
    let (n, peer) = socket
        .accept_first(&mut buf)
        .await
        .map_err(|source| Error::Io {
            what: "receiving on",
            addr: local.to_owned(),
            source,
        })?;
    match stdio.output.write(buf, n).await {
        Ok(()) | Err(WriteError::Closed) => Ok(peer),
        Err(WriteError::Io(source)) => Err(Error::Stdio {
            what: "write standard output",
            source,
        }),
    }
}

/// Bridges `stdio` and a connected datagram socket: each chunk of standard
/// input (each line with [`Framing::Lines`](super::Framing::Lines)) is sent
/// as one datagram, and each datagram received is written out.
///
/// Datagrams have no end of stream, so when input ends nothing is sent and
/// the bridge goes on receiving until [`BridgeOptions::idle_timeout`]
/// passes (or forever without one, as `nc -u`). A peer that has gone away
/// (`ECONNREFUSED`, from the ICMP "port unreachable" of its host) ends the
/// bridge cleanly once a datagram has come from it, and is an error before.
///
/// # Errors
///
/// [`Error::Io`] when sending or receiving fails, [`Error::Stdio`] when
/// standard input or output fails.
pub async fn bridge_datagram<D: Datagram>(
    socket: &D,
    stdio: &mut Stdio,
    opts: &BridgeOptions,
    peer: &str,
) -> Result<End> {
    let Stdio { input, output } = stdio;
    let last_move = Cell::new(Instant::now());
    let heard = Cell::new(false);
    let gone = |e: &io::Error| heard.get() && e.kind() == io::ErrorKind::ConnectionRefused;

    let up = async {
        loop {
            match input.next().await {
                Chunk::Data(buf, len) => {
                    let sent = socket.send(&buf[..len]).await;
                    input.recycle(buf);
                    match sent {
                        Ok(_) => last_move.set(Instant::now()),
                        Err(e) if gone(&e) => return Ok(()),
                        Err(e) => return Err(Failure::Send(e)),
                    }
                }
                Chunk::Eof => return Ok(()),
                Chunk::Err(e) => return Err(Failure::Stdin(e)),
            }
        }
    };
    let down = async {
        loop {
            let mut buf = output.buffer();
            let n = match socket.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) if gone(&e) => return Ok(Down::PeerEof),
                Err(e) => return Err(Failure::Receive(e)),
            };
            heard.set(true);
            last_move.set(Instant::now());
            match output.write(buf, n).await {
                Ok(()) => {}
                Err(WriteError::Closed) => return Ok(Down::OutputClosed),
                Err(WriteError::Io(e)) => return Err(Failure::Stdout(e)),
            }
        }
    };
    // A datagram peer that is gone cannot half-close: end at once.
    let opts = BridgeOptions {
        end_on_peer_eof: true,
        ..opts.clone()
    };
    let end = run_both(up, down, &opts, &last_move).await;
    finish(end, output, peer).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::Framing;
    use std::time::Duration;

    use crate::bridge::tests::Sink;

    #[tokio::test]
    async fn each_line_is_one_datagram_and_the_first_sender_is_the_peer() {
        let ours = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let theirs = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink::default();
        let mut stdio = Stdio::new(
            io::Cursor::new(b"one\ntwo\n".to_vec()),
            sink.clone(),
            Framing::Lines(1024),
            1024,
        );
        theirs
            .send_to(b"hello", ours.local_addr().unwrap())
            .await
            .unwrap();
        let peer = accept_first_datagram(&ours, &mut stdio, "test")
            .await
            .unwrap();
        assert_eq!(peer, PeerAddr::Inet(theirs.local_addr().unwrap()));
        // Connected now: the kernel drops datagrams from anyone else.
        stranger
            .send_to(b"ignored", ours.local_addr().unwrap())
            .await
            .unwrap();
        let opts = BridgeOptions {
            idle_timeout: Some(Duration::from_millis(300)),
            ..BridgeOptions::default()
        };
        let talk = async {
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            for _ in 0..2 {
                let n = theirs.recv(&mut buf).await.unwrap();
                got.push(buf[..n].to_vec());
            }
            theirs
                .send_to(b" world", ours.local_addr().unwrap())
                .await
                .unwrap();
            got
        };
        let (end, got) = tokio::join!(bridge_datagram(&ours, &mut stdio, &opts, "peer"), talk);
        assert_eq!(end.unwrap(), End::Idle);
        assert_eq!(got, [b"one\n".to_vec(), b"two\n".to_vec()]);
        assert_eq!(&*sink.0.lock().unwrap(), b"hello world");
    }
}
