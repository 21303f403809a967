//! Listeners the accept loop takes connections from.

use std::fmt;
use std::future::Future;
use std::io;

use crate::conn::{Connection, PeerAddr};
use crate::seqpacket::{SeqPacketListener, SeqPacketStream};
use crate::socket;

/// Something that accepts stream connections: a TCP or Unix listener.
///
/// The accept loop is written once against this trait (as axum's
/// `serve::Listener`), so every stream transport shares it.
pub trait Listener: Send + 'static {
    /// The connected stream `accept` returns.
    type Io: Connection;

    /// Accepts one connection, corresponding to `accept4(2)`.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, PeerAddr)>> + Send;

    /// The bound address, corresponding to `getsockname(2)`.
    ///
    /// # Errors
    ///
    /// The `getsockname` error.
    fn local_addr(&self) -> io::Result<LocalAddr>;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, PeerAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Responses are written whole, so Nagle's delay only adds latency.
        let _ = stream.set_nodelay(true);
        Ok((stream, PeerAddr::Inet(peer)))
    }

    fn local_addr(&self) -> io::Result<LocalAddr> {
        tokio::net::TcpListener::local_addr(self).map(LocalAddr::Tcp)
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, PeerAddr)> {
        let (stream, peer) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, PeerAddr::Unix(unix_name(&peer.into()))))
    }

    fn local_addr(&self) -> io::Result<LocalAddr> {
        let addr = tokio::net::UnixListener::local_addr(self)?;
        Ok(LocalAddr::Unix(unix_name(&addr.into()).unwrap_or_default()))
    }
}

/// Seqpacket connections go through the same accept loop; the services see
/// each message as one read and send each write as one message (see
/// [`crate::seqpacket`]).
impl Listener for SeqPacketListener {
    type Io = SeqPacketStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, PeerAddr)> {
        let (stream, peer) = SeqPacketListener::accept(self).await?;
        let name = socket::unix_addr_of(&peer).map(|a| a.to_string());
        Ok((stream, PeerAddr::Unix(name)))
    }

    fn local_addr(&self) -> io::Result<LocalAddr> {
        let addr = SeqPacketListener::local_addr(self)?;
        Ok(LocalAddr::SeqPacket(
            socket::unix_addr_of(&addr).map_or_else(String::new, |a| a.to_string()),
        ))
    }
}

/// A Unix address as sockit writes it (`/path` or `@name`), or `None` for
/// an unnamed socket.
pub(crate) fn unix_name(addr: &std::os::unix::net::SocketAddr) -> Option<String> {
    use std::os::linux::net::SocketAddrExt;
    if let Some(path) = addr.as_pathname() {
        return Some(path.display().to_string());
    }
    addr.as_abstract_name()
        .map(|name| format!("@{}", String::from_utf8_lossy(name)))
}

/// The address a server socket is bound to. `Display` writes it as an
/// endpoint that `sockit send` accepts (TCP without a scheme, as the
/// tutorial prints it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    /// A TCP address, with the real port.
    Tcp(std::net::SocketAddr),
    /// A Unix stream socket path or `@name`.
    Unix(String),
    /// A UDP address, with the real port.
    Udp(std::net::SocketAddr),
    /// A Unix datagram socket path or `@name`.
    UnixDgram(String),
    /// A Unix seqpacket socket path or `@name`.
    SeqPacket(String),
}

impl LocalAddr {
    /// The TCP address, if this is one.
    pub fn as_tcp(&self) -> Option<std::net::SocketAddr> {
        match self {
            LocalAddr::Tcp(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The IP address and port, for TCP and UDP.
    pub fn as_inet(&self) -> Option<std::net::SocketAddr> {
        match self {
            LocalAddr::Tcp(addr) | LocalAddr::Udp(addr) => Some(*addr),
            _ => None,
        }
    }
}

impl fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalAddr::Tcp(addr) => write!(f, "{addr}"),
            LocalAddr::Unix(path) => write!(f, "unix:{path}"),
            LocalAddr::Udp(addr) => write!(f, "udp://{addr}"),
            LocalAddr::UnixDgram(path) => write!(f, "unix-dgram:{path}"),
            LocalAddr::SeqPacket(path) => write!(f, "seqpacket:{path}"),
        }
    }
}
