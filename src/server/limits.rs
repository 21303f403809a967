//! Per-server limits, with the defaults a user gets from `sockit serve`.
//!
//! Every bound a hostile or broken client could otherwise push past lives
//! here or in [`ConnLimits`], which every connection's handle applies on
//! each read and write, so each service holds its connections to the same
//! numbers:
//!
//! | limit | guards against | default |
//! |---|---|---|
//! | [`Limits::max_connections`] | descriptor exhaustion, unbounded tasks | `RLIMIT_NOFILE` less a reserve |
//! | [`ConnLimits::header_timeout`] | slowloris: a request head sent a byte at a time | 10 s |
//! | [`ConnLimits::idle_timeout`] | idle connections held forever | 60 s |
//! | [`ConnLimits::write_timeout`] | a client that stops reading | 30 s |
//! | [`ConnLimits::max_header_bytes`] | huge request heads | 8 KiB |
//! | [`ConnLimits::max_unwritten_bytes`] | pipelining without reading (backpressure) | 64 KiB |
//!
//! The timeouts are kept to within a second: a connection's timer is not
//! moved for every request of a busy keep-alive connection, so a timeout
//! may fire up to a second before its nominal time, never after.

pub use crate::conn::limits::{
    ConnLimits, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_UNWRITTEN_BYTES, DEFAULT_WRITE_TIMEOUT,
};

/// The most descriptors kept back from `--max-conns`'s default.
const MAX_RESERVED_FDS: u64 = 64;
/// The fewest: stdio (3), epoll and its waker (2), the signal pipe (2), a
/// listener or two, and a few for whatever else the process opens.
const MIN_RESERVED_FDS: u64 = 16;

/// The bounds a server holds its connections to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections served at once; at the limit the accept loop waits
    /// and the kernel's backlog holds new clients. Default is the descriptor
    /// limit (`RLIMIT_NOFILE`) less a reserve ([`default_max_connections`]).
    pub max_connections: usize,
    /// What each connection is held to, whichever service serves it.
    /// Default is [`ConnLimits::default`].
    pub per_connection: ConnLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: default_max_connections(),
            per_connection: ConnLimits::default(),
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
