//! Services: what a server does with each connection. One trait, one file
//! per service; every transport runs every service through the same
//! accept loop.
//!
//! A service gets each connection as a [`Conn`], which holds every read and
//! write to the connection's [`ConnLimits`](crate::conn::ConnLimits):
//! header, idle and write timeouts and the write queue's cap, through one
//! timer per connection that is armed only when a wait really starts (never
//! when the socket is ready, as it is under load). There is no other way
//! to the socket, so no service can hold a connection past them.

use std::future::Future;

use crate::conn::{Conn, ConnReport, Connection};

pub mod chargen;
pub mod daytime;
pub mod discard;
pub mod echo;
pub mod hello;

pub use chargen::Chargen;
pub use daytime::Daytime;
pub use discard::Discard;
pub use echo::Echo;
pub use hello::Hello;

/// A handler for every transport: stream connections through
/// [`serve`](Service::serve), datagrams through
/// [`reply_to_datagram`](Service::reply_to_datagram).
///
/// How each transport reaches it:
///
/// | transport | method | what the service sees |
/// |---|---|---|
/// | TCP, Unix stream | `serve` | a byte stream |
/// | Unix seqpacket | `serve` | a [`Conn`] whose [`read_message`](Conn::read_message) returns one message and whose every write is one message (see [`crate::seqpacket`]), so answering each read with one write answers each message with one message |
/// | UDP, Unix datagram | `reply_to_datagram` | one datagram; the reply goes back to its sender |
///
/// A panic inside `serve` is caught by the server: the connection closes,
/// the panic is logged once with the peer, and the server keeps serving.
pub trait Service: Send + Sync + 'static {
    /// Serves one connection.
    ///
    /// Dropping `conn` closes the socket. When
    /// [`conn.is_shutting_down()`](Conn::is_shutting_down), finish the
    /// request in flight, then return; [`Conn::read`] returns
    /// [`Read::Shutdown`](crate::conn::Read::Shutdown) to an idle connection.
    fn serve<C: Connection>(&self, conn: Conn<C>) -> impl Future<Output = ConnReport> + Send;

    /// Answers one datagram: appends the reply to `reply` (which starts
    /// empty) and returns `true` to send it, or returns `false` to send
    /// nothing. An empty reply with `true` sends an empty datagram.
    ///
    /// This runs on the datagram loop itself, once per datagram: it must not
    /// block, and it keeps no state per sender.
    ///
    /// The default sends nothing, for a service written for streams only;
    /// every service sockit ships answers datagrams.
    fn reply_to_datagram(&self, datagram: &[u8], reply: &mut Vec<u8>) -> bool {
        let _ = (datagram, reply);
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::conn::mock::{self, MockConn};
    use crate::conn::{ConnLimits, PeerAddr};

    fn conn(io: MockConn, shutdown: &CancellationToken) -> Conn<MockConn> {
        Conn::new(
            io,
            PeerAddr::Unix(None),
            shutdown.clone(),
            Arc::new(ConnLimits::default()),
        )
    }

    fn serve_hello(io: MockConn, shutdown: &CancellationToken) -> JoinHandle<ConnReport> {
        let conn = conn(io, shutdown);
        tokio::spawn(async move { Hello::default().serve(conn).await })
    }

    /// Reads whatever arrives until the server closes; an error counts as a close.
    async fn read_all(client: &mut DuplexStream) -> Vec<u8> {
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got).await;
        got
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
        let (conn, mut client) = mock::pair(64 * 1024);
        let start = Instant::now();
        let server = serve_hello(conn, &CancellationToken::new());
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        // A byte a second: each one would reset a per-read timer, never this one.
        let mut dripped = 0;
        while !server.is_finished() && dripped < 100 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if client.write_all(b"X").await.is_err() {
                break;
            }
            dripped += 1;
        }
        let report = server.await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(10) && took < Duration::from_millis(11_500),
            "closed after {took:?}"
        );
        assert_eq!(report.requests, 0);
        assert!(read_all(&mut client).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_closed_at_the_header_timeout() {
        let (conn, mut client) = mock::pair(4096);
        let start = Instant::now();
        let report = serve_hello(conn, &CancellationToken::new()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(report, ConnReport::default());
        assert!(read_all(&mut client).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
        let (conn, mut client) = mock::pair(4096);
        let server = serve_hello(conn, &CancellationToken::new());
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = [0u8; 12];
        client.read_exact(&mut response).await.unwrap();
        assert_eq!(&response, b"HTTP/1.1 200");
        let answered = Instant::now();
        let report = server.await.unwrap();
        let idle = answered.elapsed();
        assert!(
            idle >= Duration::from_secs(60) && idle < Duration::from_secs(61),
            "{idle:?}"
        );
        assert_eq!(report.requests, 1);
        assert!(!report.error);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_body_is_held_to_the_idle_timeout_per_read() {
        let (conn, mut client) = mock::pair(4096);
        let server = serve_hello(conn, &CancellationToken::new());
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n")
            .await
            .unwrap();
        // 30 s in all, past the header timeout, but never 60 s between reads.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"b").await.unwrap();
        }
        let mut response = [0u8; 12];
        client.read_exact(&mut response).await.unwrap();
        assert_eq!(&response, b"HTTP/1.1 200");
        drop(client);
        assert_eq!(server.await.unwrap().requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_is_not_read_further_and_is_dropped_at_the_write_timeout() {
        let (conn, mut client) = mock::pair(4096);
        let start = Instant::now();
        let server = serve_hello(conn, &CancellationToken::new());
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut sent = 0usize;
        // 10,000 pipelined requests (270 KB); the server must stop taking them.
        for _ in 0..10_000 {
            let write = tokio::time::timeout(Duration::from_secs(1), client.write_all(request));
            match write.await {
                Ok(Ok(())) => sent += request.len(),
                _ => break,
            }
        }
        assert!(
            sent < 64 * 1024,
            "the server kept reading: {sent} bytes taken"
        );
        let report = server.await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(30) && took < Duration::from_secs(31),
            "{took:?}"
        );
        assert!(!report.error, "a stalled reader is the client's doing");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_idle_connections_and_finishes_partial_requests() {
        let (idle, _idle_client) = mock::pair(4096);
        let (busy, mut busy_client) = mock::pair(4096);
        let shutdown = CancellationToken::new();
        let idle_server = serve_hello(idle, &shutdown);
        let busy_server = serve_hello(busy, &shutdown);
        busy_client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        shutdown.cancel();
        let report = idle_server.await.unwrap();
        assert_eq!(report, ConnReport::default());
        assert!(!busy_server.is_finished());
        busy_client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        let response = String::from_utf8(read_all(&mut busy_client).await).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
        assert_eq!(busy_server.await.unwrap().requests, 1);
    }
}
