//! TLS over the stream transports, with rustls.
//!
//! - `conn.rs`: [`TlsConn`], a TLS stream as a [`Connection`](crate::conn::Connection),
//!   so every service and limit works on it unchanged
//! - [`client`]: [`ClientTls`], verification on by default
//! - [`server`]: [`ServerTls`] (certificate files or a self-signed
//!   development certificate, reloadable) and the handler that runs the
//!   handshake inside each connection's task
//!
//! The crypto provider is *ring*: it builds with a C compiler alone, where
//! aws-lc-rs needs cmake and a much longer build; both are maintained by the
//! rustls project and either passes the same protocol tests.

pub mod client;
mod conn;
pub mod server;

pub use client::{ClientTls, ClientTlsOptions};
pub use conn::TlsConn;
pub use server::{CertSource, ServerTls};

use std::sync::Arc;

/// The one crypto provider every TLS configuration of sockit uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
