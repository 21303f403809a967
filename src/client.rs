//! The tutorial's client: connect, send, read the reply, close.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::endpoint::{Endpoint, Family};
use crate::{socket, Error, Result};

/// What `sockit send` sends when given no data, as the tutorial's client.
pub const DEFAULT_MESSAGE: &str = "Hello, world";

/// How long connecting and each read may take. Default is 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            timeout: Some(DEFAULT_TIMEOUT),
            max_bytes: None,
            family: None,
        }
    }
}

/// Sends `data` to `endpoint` and returns the reply.
///
/// For a stream endpoint:
/// 1. resolve the host and try each address in turn (IPv6 and IPv4, in the
///    resolver's order) until one connects;
/// 2. `sendall` the data, then `shutdown(SHUT_WR)` so the server sees the
///    end of the request;
/// 3. read until the server closes, or `max_bytes` have arrived.
///
/// # Errors
///
/// [`Error::Resolve`] when the name does not resolve, [`Error::Connect`]
/// with the last address's error when none connects, [`Error::Timeout`]
/// when connecting or a read takes longer than `opts.timeout`, and
/// [`Error::Io`] when sending or receiving fails.
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
    let hp = match endpoint {
        Endpoint::Tcp(hp) => hp,
        other => {
            return Err(Error::Unsupported(format!(
                "cannot send to {other}: the {} transport is not supported yet; use a TCP endpoint",
                other.transport()
            )))
        }
    };
    let addrs = hp.resolve(opts.family).await?;
    let (mut stream, addr) = connect_first(&addrs, opts.timeout).await?;
    let peer = addr.to_string();
    let io_err = |what, source| Error::Io {
        what,
        addr: peer.clone(),
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
            &peer,
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
