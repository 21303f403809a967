//! Per-server limits, with the defaults a user gets from `sockit serve`.
//!
//! Every bound a hostile or broken client could otherwise push past lives
//! here, so each service holds its connections to the same numbers:
//!
//! | limit | guards against | default |
//! |---|---|---|
//! | [`Limits::max_connections`] | descriptor exhaustion, unbounded tasks | `RLIMIT_NOFILE` less a reserve |
//! | [`Limits::header_timeout`] | slowloris: a request head sent a byte at a time | 10 s |
//! | [`Limits::idle_timeout`] | idle keep-alive connections held forever | 60 s |
//! | [`Limits::write_timeout`] | a client that stops reading its responses | 30 s |
//! | [`Limits::max_header_bytes`] | huge request heads | 8 KiB |
//! | [`Limits::max_unwritten_bytes`] | pipelining without reading (backpressure) | 64 KiB |
//!
//! The timeouts are kept to within a second: a connection's timer is not
//! moved for every request of a busy keep-alive connection, so a timeout
//! may fire up to a second before its nominal time, never after.

use std::time::Duration;

/// The largest request head (request line and headers) accepted before the
/// server answers 431. Default is 8 KiB, as nginx's `large_client_header_buffers`
/// line limit.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// How long a request head may take to arrive. Default is 10 seconds.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a keep-alive connection may sit idle. Default is 60 seconds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a response may stay unwritable. Default is 30 seconds.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many response bytes one connection queues before it stops reading
/// and writes them. Default is 64 KiB.
pub const DEFAULT_MAX_UNWRITTEN_BYTES: usize = 64 * 1024;

/// The most descriptors kept back from `--max-conns`'s default.
const MAX_RESERVED_FDS: u64 = 64;
/// The fewest: stdio (3), epoll and its waker (2), the signal pipe (2), a
/// listener or two, and a few for whatever else the process opens.
const MIN_RESERVED_FDS: u64 = 16;

/// The bounds a server holds every connection to.
///
/// Services apply them through the shared read and write helpers, so every
/// service on every transport gets the same protection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head in bytes; more gets 431 and a close.
    /// Default is 8192 ([`DEFAULT_MAX_HEADER_BYTES`]).
    pub max_header_bytes: usize,
    /// Most connections served at once; at the limit the accept loop waits
    /// and the kernel's backlog holds new clients. Default is the descriptor
    /// limit (`RLIMIT_NOFILE`) less a reserve ([`default_max_connections`]).
    pub max_connections: usize,
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
    /// its queued responses) forever. Default is 30 seconds
    /// ([`DEFAULT_WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
    /// How many response bytes a connection queues before it writes them
    /// and reads no further until they are written. With
    /// [`Limits::max_header_bytes`] this caps a connection's buffers however
    /// many requests a client pipelines. Default is 64 KiB
    /// ([`DEFAULT_MAX_UNWRITTEN_BYTES`]).
    pub max_unwritten_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: default_max_connections(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_unwritten_bytes: DEFAULT_MAX_UNWRITTEN_BYTES,
        }
    }
}

/// The soft `RLIMIT_NOFILE` less a reserve: one descriptor per connection,
/// and accepting past the limit would only fail with `EMFILE`.
///
/// The reserve is an eighth of the limit, at least 16 and at most 64: 960
/// connections under the common limit of 1024, 48 under `ulimit -n 64`.
pub fn default_max_connections() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    connections_for_nofile(soft)
}

fn connections_for_nofile(nofile: u64) -> usize {
    let reserve = (nofile / 8).clamp(MIN_RESERVED_FDS, MAX_RESERVED_FDS);
    usize::try_from(nofile.saturating_sub(reserve).max(1)).unwrap_or(usize::MAX)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so a server can hold
/// as many connections as the system lets it. Returns the new soft limit.
///
/// # Errors
///
/// The `getrlimit`/`setrlimit` error.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_default_leaves_room_under_any_descriptor_limit() {
        assert_eq!(connections_for_nofile(64), 48);
        assert_eq!(connections_for_nofile(256), 224);
        assert_eq!(connections_for_nofile(1024), 960);
        assert_eq!(connections_for_nofile(1 << 20), (1 << 20) - 64);
        assert_eq!(connections_for_nofile(10), 1);
        assert_eq!(connections_for_nofile(0), 1);
    }
}
