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

    /// A TLS certificate, key or CA file that cannot be used.
    #[error("cannot load the TLS {what} from {path}: {source}")]
    TlsFile {
        /// Which file: certificate, private key, CA certificate…
        what: &'static str,
        /// Its path.
        path: String,
        /// What is wrong with it.
        #[source]
        source: TlsFileError,
    },

    /// A TLS handshake that failed: the certificate is not trusted, has
    /// expired or is for another name, or the peer does not speak TLS.
    #[error("TLS handshake with {addr} failed: {}", tls_reason(.source))]
    TlsHandshake {
        /// The peer.
        addr: String,
        /// The error, with the [`rustls::Error`] inside when TLS said no.
        #[source]
        source: io::Error,
    },

    /// A TLS configuration rustls refuses.
    #[error("TLS configuration refused: {0}")]
    Tls(#[source] rustls::Error),

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

/// Why a TLS file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFileError {
    /// Unreadable, or not PEM.
    #[error(transparent)]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// PEM without a single certificate in it.
    #[error("no certificate in it")]
    NoCertificate,
    /// Read, but rustls refuses it (an unsupported key type, a malformed
    /// certificate).
    #[error(transparent)]
    Rejected(#[from] rustls::Error),
    /// The client CA set cannot verify anything.
    #[error(transparent)]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rcgen could not make a certificate for these names.
    #[error(transparent)]
    Generate(#[from] rcgen::Error),
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
/// A failed client handshake, in words that say what to try.
fn tls_reason(err: &io::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<E>()) else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the server closed the connection: does it speak TLS on this port?".into()
            }
            _ => describe(err),
        };
    };
    match tls {
        E::InvalidCertificate(C::UnknownIssuer) => {
            "the certificate is not signed by a trusted CA: pass --cacert FILE with its CA".into()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired".into()
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the certificate is not valid for this host name".into()
        }
        E::InvalidCertificate(C::BadEncoding) => "the certificate is malformed".into(),
        E::InvalidCertificate(other) => format!("bad certificate: {other:?}"),
        E::InvalidMessage(_) => {
            "not TLS: the server answered in clear text; is this a TLS port?".into()
        }
        other => other.to_string(),
    }
}

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
