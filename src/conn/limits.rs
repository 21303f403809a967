//! The bounds every connection is held to, whichever service serves it.
//!
//! [`Conn`](super::Conn), the handle a service is given, applies them on
//! every read and write, so no service (built in or not) can skip them:
//!
//! | limit | guards against | default |
//! |---|---|---|
//! | [`ConnLimits::header_timeout`] | slowloris: a request head sent a byte at a time | 10 s |
//! | [`ConnLimits::idle_timeout`] | idle connections held forever (keep-alive, or a stream service's silent client) | 60 s |
//! | [`ConnLimits::write_timeout`] | a client that stops reading what it is sent | 30 s |
//! | [`ConnLimits::max_header_bytes`] | huge request heads | 8 KiB |
//! | [`ConnLimits::max_unwritten_bytes`] | pipelining without reading (backpressure) | 64 KiB |
//!
//! How many connections a server serves at once is the server's bound, in
//! `server::Limits`.
//!
//! The timeouts are kept to within a second: a connection's timer is not
//! moved for every request of a busy keep-alive connection, so a timeout
//! may fire up to a second before its nominal time, never after.

use std::time::Duration;

/// The largest request head (request line and headers) accepted before the
/// server answers 431 (or 414, when the request line alone does not fit).
/// Default is 8 KiB, as nginx's `large_client_header_buffers` line limit.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// How long a request head may take to arrive. Default is 10 seconds.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may sit idle. Default is 60 seconds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a write may make no progress. Default is 30 seconds.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many bytes one connection queues before it stops reading and writes
/// them. Default is 64 KiB.
pub const DEFAULT_MAX_UNWRITTEN_BYTES: usize = 64 * 1024;

/// The bounds every connection is held to; see the [module](self) table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// Largest request head in bytes; more gets 431 and a close.
    /// Default is 8192 ([`DEFAULT_MAX_HEADER_BYTES`]).
    pub max_header_bytes: usize,
    /// How long a request head may take to arrive, counted from the first
    /// read that left part of a head unanswered (on a new connection of a
    /// request–response service, from the accept). A client that has not
    /// completed its head by then is closed (slowloris). Default is 10
    /// seconds ([`DEFAULT_HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// How long a connection may wait between requests (or, for a stream
    /// service, between reads) before it is closed. It also bounds each read
    /// of a request body, as nginx's `client_body_timeout`. Default is 60
    /// seconds ([`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// How long a write may make no progress before the connection is
    /// dropped: a client that stops reading cannot hold a connection (and
    /// what is queued for it) forever. Default is 30 seconds
    /// ([`DEFAULT_WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
    /// How many bytes a connection queues ([`Conn::queue`](super::Conn::queue))
    /// before it writes them; nothing more is read until they are written.
    /// With [`ConnLimits::max_header_bytes`] this caps a connection's
    /// buffers however many requests a client pipelines. Default is 64 KiB
    /// ([`DEFAULT_MAX_UNWRITTEN_BYTES`]).
    pub max_unwritten_bytes: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_unwritten_bytes: DEFAULT_MAX_UNWRITTEN_BYTES,
        }
    }
}
