//! The library's error type: what failed, on what address, and the `io::Error`
//! underneath.

use std::io;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything sockit's library can fail with.
///
/// `Display` is one line meant for a user: it names the address and, where
/// the cause is clear, the next step to try.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string is not an endpoint.
    #[error(transparent)]
    Endpoint(#[from] crate::endpoint::ParseEndpointError),

    /// A host name did not resolve, or resolved to nothing usable.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host and port as written.
        host: String,
        /// Why it failed.
        reason: String,
    },

    /// Opening, binding or listening on a socket failed.
    #[error("cannot listen on {addr}: {}{}", describe(.source), bind_hint(.addr, .source))]
    Bind {
        /// The address we tried.
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Connecting failed (refused, unreachable, …).
    #[error("cannot connect to {addr}: {}{}", describe(.source), connect_hint(.source))]
    Connect {
        /// The address we tried last.
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// An operation took longer than its timeout.
    #[error("{what} {addr} timed out after {secs}s")]
    Timeout {
        /// What was going on (`connecting to`, `reading from`, …).
        what: &'static str,
        /// The peer's address.
        addr: String,
        /// The timeout, in seconds.
        secs: f64,
    },

    /// Sending to or receiving from a connected peer failed.
    #[error("{what} {addr} failed: {}", describe(.source))]
    Io {
        /// What was going on (`sending to`, `receiving from`, …).
        what: &'static str,
        /// The peer's address.
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Reading standard input or writing standard output failed.
    #[error("cannot {what}: {}", describe(.source))]
    Stdio {
        /// What was going on (`read standard input`, …).
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A `sockit bench` flag, file or saved run that is not valid.
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),

    /// Valid syntax that this transport or this machine cannot do.
    #[error("{0}")]
    Unsupported(String),

    /// The options given cannot work together (found after argument
    /// parsing). The binary exits 2 for it, as for any usage error.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether a bind failed because the address is already in use.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, Error::Bind { source, .. } if source.kind() == io::ErrorKind::AddrInUse)
    }

    /// Whether a connection was refused by the peer.
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, Error::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused)
    }
}

/// The OS message without Rust's ` (os error N)` suffix, lower-cased first letter.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(cut) => &text[..cut],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn bind_hint(addr: &str, err: &io::Error) -> &'static str {
    let unix = ["unix:", "unix-dgram:", "seqpacket:"]
        .iter()
        .any(|scheme| addr.starts_with(scheme));
    if unix {
        return match err.kind() {
            io::ErrorKind::AddrInUse => {
                ": a server is running there; stop it or choose another path or @name"
            }
            io::ErrorKind::PermissionDenied => ": no write permission on the directory",
            io::ErrorKind::NotFound => ": the directory does not exist",
            _ => "",
        };
    }
    match err.kind() {
        io::ErrorKind::AddrInUse => ": stop the other server or pass --listen :0 for a free port",
        io::ErrorKind::PermissionDenied => {
            ": ports below 1024 need root or CAP_NET_BIND_SERVICE; try a port above 1023"
        }
        io::ErrorKind::AddrNotAvailable => ": no local interface has this address",
        _ => "",
    }
}

fn connect_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ": is a server listening there?",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_name_the_address_and_the_next_step() {
        let err = Error::Bind {
            addr: "0.0.0.0:8888".into(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        assert!(err.is_addr_in_use());
        let text = err.to_string();
        assert!(
            text.starts_with("cannot listen on 0.0.0.0:8888: address in use"),
            "{text}"
        );
        assert!(text.contains("--listen :0"), "{text}");
    }

    #[test]
    fn os_error_suffix_is_dropped() {
        let err = Error::Connect {
            addr: "127.0.0.1:1".into(),
            source: io::Error::from_raw_os_error(111),
        };
        assert!(err.is_connection_refused());
        assert_eq!(
            err.to_string(),
            "cannot connect to 127.0.0.1:1: connection refused: is a server listening there?"
        );
    }
}
