//! Listeners the accept loop takes connections from.

use std::fmt;
use std::future::Future;
use std::io;

use crate::conn::{Connection, PeerAddr};

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
        let name = peer.as_pathname().map(|p| p.display().to_string());
        Ok((stream, PeerAddr::Unix(name)))
    }

    fn local_addr(&self) -> io::Result<LocalAddr> {
        let addr = tokio::net::UnixListener::local_addr(self)?;
        Ok(LocalAddr::Unix(addr.as_pathname().map_or_else(
            || "<unnamed>".to_owned(),
            |p| p.display().to_string(),
        )))
    }
}

/// The address a listener is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    /// A TCP address, with the real port.
    Tcp(std::net::SocketAddr),
    /// A Unix socket path or name.
    Unix(String),
}

impl LocalAddr {
    /// The TCP address, if this is one.
    pub fn as_tcp(&self) -> Option<std::net::SocketAddr> {
        match self {
            LocalAddr::Tcp(addr) => Some(*addr),
            LocalAddr::Unix(_) => None,
        }
    }
}

impl fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalAddr::Tcp(addr) => write!(f, "{addr}"),
            LocalAddr::Unix(path) => write!(f, "unix:{path}"),
        }
    }
}
