//! Per-server limits, with the defaults a user gets from `sockit serve`.

/// The largest request head (request line and headers) accepted before the
/// server answers 431. Default is 8 KiB, as nginx's `large_client_header_buffers`
/// line limit.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// Descriptors kept back from `--max-conns`'s default for listeners, logs
/// and the runtime.
const RESERVED_FDS: u64 = 64;

/// The bounds a server holds every connection to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head in bytes; more gets 431 and a close.
    /// Default is 8192 ([`DEFAULT_MAX_HEADER_BYTES`]).
    pub max_header_bytes: usize,
    /// Most connections served at once; at the limit the accept loop waits
    /// and the kernel's backlog holds new clients. Default is the descriptor
    /// limit (`RLIMIT_NOFILE`) less 64 ([`default_max_connections`]).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: default_max_connections(),
        }
    }
}

/// The soft `RLIMIT_NOFILE` less a reserve: one descriptor per connection,
/// and accepting past the limit would only fail with `EMFILE`.
pub fn default_max_connections() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX)
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
