//! The tutorial's client: connect, send, read the reply, close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use crate::endpoint::{Endpoint, Family};
use crate::seqpacket::SeqPacketStream;
use crate::tls::{ClientTls, ClientTlsOptions};
use crate::{socket, Error, Result};

/// What `sockit send` sends when given no data, as the tutorial's client.
pub const DEFAULT_MESSAGE: &str = "Hello, world";

/// How long connecting and each read may take. Default is 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `sockit send` waits for each datagram reply: 2 seconds (a
/// datagram or its reply may simply be lost, so a retry beats a long wait).
pub const DEFAULT_DATAGRAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest datagram reply read whole: 64 KiB, more than any UDP payload.
pub const MAX_REPLY_DATAGRAM: usize = 64 * 1024;

/// Options for [`send`].
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Bounds connecting (each address) and each read, like the tutorial's
    /// `settimeout`; `None` waits forever. Default is 10 seconds.
    pub timeout: Option<Duration>,
    /// Stop reading after this many bytes; `None` reads to end of stream.
    /// Default is `None`.
    pub max_bytes: Option<usize>,
    /// Only connect to addresses of this family (`-4`/`-6`). Default is any.
    pub family: Option<Family>,
    /// For datagram endpoints: how many more times to send when no reply
    /// comes within `timeout`. Default is 0.
    pub retries: u32,
    /// For `tls://` endpoints: trust roots, client certificate, ALPN.
    /// Default (`None`) verifies against the system's roots.
    pub tls: Option<ClientTls>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            timeout: Some(DEFAULT_TIMEOUT),
            max_bytes: None,
            family: None,
            retries: 0,
            tls: None,
        }
    }
}

/// Sends `data` to `endpoint` and returns the reply.
///
/// For a stream endpoint (TCP, Unix stream):
/// 1. connect: for TCP, resolve the host and try each address in turn
///    (IPv6 and IPv4, in the resolver's order) until one connects;
/// 2. `sendall` the data, then `shutdown(SHUT_WR)` so the server sees the
///    end of the request;
/// 3. read until the server closes, or `max_bytes` have arrived.
///
/// For seqpacket: connect, send `data` as one message, `shutdown(SHUT_WR)`,
/// and return the one message that comes back.
///
/// For a datagram endpoint (UDP, Unix datagram):
/// 1. open a socket connected to the server (see
///    [`socket::udp_connect`], [`socket::unix_datagram_connect`]: a Unix
///    client binds a temporary address, removed afterwards, so the server
///    can reply);
/// 2. send `data` as one datagram and wait up to `opts.timeout` for one
///    datagram back;
/// 3. with no reply, send again, up to `opts.retries` more times.
///
/// # Errors
///
/// [`Error::Resolve`] when the name does not resolve, [`Error::Connect`]
/// with the last address's error when none connects (for UDP: when the
/// server's host answers that the port is closed), [`Error::Timeout`] when
/// connecting, a read or every datagram attempt takes longer than
/// `opts.timeout`, and [`Error::Io`] when sending or receiving fails.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> sockit::Result<()> {
/// let reply = sockit::client::send(
///     &"localhost:8888".parse()?,
///     b"Hello, world",
///     &sockit::client::SendOptions::default(),
/// ).await?;
/// assert_eq!(reply, b"Hello, world!");
/// # Ok(()) }
/// ```
pub async fn send(endpoint: &Endpoint, data: &[u8], opts: &SendOptions) -> Result<Vec<u8>> {
    let name = endpoint.to_string();
    let connect_err = |source| Error::Connect {
        addr: name.clone(),
        source,
    };
    match endpoint {
        Endpoint::Tcp(hp) => {
            let addrs = hp.resolve(opts.family).await?;
            let (stream, addr) = connect_first(&addrs, opts.timeout).await?;
            exchange(stream, &addr.to_string(), data, opts).await
        }
        Endpoint::Tls(hp) => {
            let tls = match &opts.tls {
                Some(tls) => tls.clone(),
                None => ClientTls::new(&ClientTlsOptions::default())?,
            };
            let addrs = hp.resolve(opts.family).await?;
            let (stream, addr) = connect_first(&addrs, opts.timeout).await?;
            let peer = addr.to_string();
            let stream = within(
                opts.timeout,
                "TLS handshake with",
                &peer,
                tls.connect(&hp.host.sni_name(), &peer, stream),
            )
            .await??;
            exchange(stream, &peer, data, opts).await
        }
        Endpoint::Unix(addr) => {
            let stream = connect_within(opts.timeout, &name, socket::unix_connect(addr)).await?;
            exchange(stream, &name, data, opts).await
        }
        Endpoint::SeqPacket(addr) => {
            let stream =
                connect_within(opts.timeout, &name, socket::seqpacket_connect(addr)).await?;
            exchange_message(stream, &name, data, opts).await
        }
        Endpoint::Udp(hp) => {
            let mut last = None;
            for addr in hp.resolve(opts.family).await? {
                let peer = addr.to_string();
                let socket = socket::udp_connect(addr).map_err(|source| Error::Connect {
                    addr: peer.clone(),
                    source,
                })?;
                match request_reply(&socket, &peer, data, opts).await {
                    // A closed port on this address: try the next one.
                    Err(err) if err.is_connection_refused() => last = Some(err),
                    other => return other,
                }
            }
            Err(last.unwrap_or_else(|| Error::Resolve {
                host: hp.to_string(),
                reason: "no addresses".into(),
            }))
        }
        Endpoint::UnixDgram(addr) => {
            let socket = socket::unix_datagram_connect(addr).map_err(connect_err)?;
            request_reply(&*socket, &name, data, opts).await
        }
    }
}

/// The stream exchange: `sendall`, half-close, read to the end.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: &str,
    data: &[u8],
    opts: &SendOptions,
) -> Result<Vec<u8>> {
    let io_err = |what, source| Error::Io {
        what,
        addr: peer.to_owned(),
        source,
    };
    stream
        .write_all(data)
        .await
        .map_err(|e| io_err("sending to", e))?;
    stream
        .shutdown()
        .await
        .map_err(|e| io_err("sending to", e))?;

    let limit = opts.max_bytes.unwrap_or(usize::MAX);
    let mut reply = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    while reply.len() < limit {
        let want = chunk.len().min(limit - reply.len());
        let n = within(
            opts.timeout,
            "reading from",
            peer,
            stream.read(&mut chunk[..want]),
        )
        .await?
        .map_err(|e| io_err("receiving from", e))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    Ok(reply)
}

/// The seqpacket exchange: one message out, half-close, one message back.
async fn exchange_message(
    mut stream: SeqPacketStream,
    peer: &str,
    data: &[u8],
    opts: &SendOptions,
) -> Result<Vec<u8>> {
    let io_err = |what, source| Error::Io {
        what,
        addr: peer.to_owned(),
        source,
    };
    stream
        .send(data)
        .await
        .map_err(|e| io_err("sending to", e))?;
    stream
        .shutdown()
        .await
        .map_err(|e| io_err("sending to", e))?;
    let mut reply = BytesMut::new();
    within(
        opts.timeout,
        "reading from",
        peer,
        stream.recv_message(&mut reply),
    )
    .await?
    .map_err(|e| io_err("receiving from", e))?;
    reply.truncate(opts.max_bytes.unwrap_or(usize::MAX));
    Ok(reply.to_vec())
}

/// A connected datagram socket: UDP or Unix.
trait Datagrams {
    fn send<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<usize>> + 'a;
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a;
}

impl Datagrams for tokio::net::UdpSocket {
    fn send<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        tokio::net::UdpSocket::send(self, buf)
    }
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        tokio::net::UdpSocket::recv(self, buf)
    }
}

impl Datagrams for tokio::net::UnixDatagram {
    fn send<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        tokio::net::UnixDatagram::send(self, buf)
    }
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        tokio::net::UnixDatagram::recv(self, buf)
    }
}

/// The datagram exchange: one datagram out, one back, with retries.
async fn request_reply<D: Datagrams>(
    socket: &D,
    peer: &str,
    data: &[u8],
    opts: &SendOptions,
) -> Result<Vec<u8>> {
    let refused_or = |what, source: io::Error| {
        if matches!(
            source.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
        ) {
            Error::Connect {
                addr: peer.to_owned(),
                source,
            }
        } else {
            Error::Io {
                what,
                addr: peer.to_owned(),
                source,
            }
        }
    };
    let mut reply = vec![0u8; MAX_REPLY_DATAGRAM];
    for attempt in 0..=opts.retries {
        if attempt > 0 {
            debug!(attempt, "no reply from {peer}; sending again");
        }
        socket
            .send(data)
            .await
            .map_err(|e| refused_or("sending to", e))?;
        let received = match opts.timeout {
            None => Ok(socket.recv(&mut reply).await),
            Some(limit) => tokio::time::timeout(limit, socket.recv(&mut reply)).await,
        };
        match received {
            Ok(Ok(n)) => {
                reply.truncate(n.min(opts.max_bytes.unwrap_or(usize::MAX)));
                return Ok(reply);
            }
            Ok(Err(e)) => return Err(refused_or("receiving from", e)),
            Err(_elapsed) => continue,
        }
    }
    Err(Error::Timeout {
        what: "waiting for a reply datagram from",
        addr: peer.to_owned(),
        secs: opts.timeout.map_or(0.0, |t| t.as_secs_f64()),
    })
}

/// Connects to the first of `addrs` that accepts, each within `timeout`.
///
/// # Errors
///
/// The last address's error when none connects.
pub(crate) async fn connect_first(
    addrs: &[SocketAddr],
    timeout: Option<Duration>,
) -> Result<(tokio::net::TcpStream, SocketAddr)> {
    let mut last_err = None;
    for &addr in addrs {
        let text = addr.to_string();
        match within(timeout, "connecting to", &text, socket::tcp_connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, addr)),
            Ok(Err(source)) => last_err = Some(Error::Connect { addr: text, source }),
            Err(timeout) => last_err = Some(timeout),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::Resolve {
        host: "(no address)".into(),
        reason: "no addresses to connect to".into(),
    }))
}

/// Runs a connect future within `timeout`, naming `addr` in either error.
///
/// # Errors
///
/// [`Error::Timeout`] when it takes too long, [`Error::Connect`] when it
/// fails.
pub(crate) async fn connect_within<T>(
    timeout: Option<Duration>,
    addr: &str,
    connect: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T> {
    within(timeout, "connecting to", addr, connect)
        .await?
        .map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })
}

/// Runs `fut` within `timeout`, if there is one.
pub(crate) async fn within<T>(
    timeout: Option<Duration>,
    what: &'static str,
    addr: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T> {
    match timeout {
        None => Ok(fut.await),
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| Error::Timeout {
                what,
                addr: addr.to_owned(),
                secs: limit.as_secs_f64(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_first_skips_refused_addresses() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = open.local_addr().unwrap();
        let (_, addr) = connect_first(&[closed, good], Some(Duration::from_secs(2)))
            .await
            .unwrap();
        assert_eq!(addr, good);
        let err = connect_first(&[closed], None).await.unwrap_err();
        assert!(err.is_connection_refused(), "{err}");
    }
}
