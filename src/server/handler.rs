//! What the accept loop runs on each connection it accepts.
//!
//! The accept loop is written once, against [`Handler`]: every
//! [`Service`] is a handler (through the blanket impl below), which wraps
//! the socket in a [`Conn`] so the service only ever reaches it through the
//! connection limits; and so is the relay, which needs the raw socket for
//! `splice(2)` and applies its own idle timeout. The trait is crate-private:
//! outside the crate, [`Service`] is the way in, and it cannot bypass the
//! limits.

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::conn::{Conn, ConnLimits, ConnReport, Connection, PeerAddr};
use crate::service::Service;

/// What the accept loop knows of a connection besides its socket.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    /// Who is on the other end.
    pub(crate) peer: PeerAddr,
    /// Cancelled when the server starts shutting down.
    pub(crate) shutdown: CancellationToken,
    /// The bounds every connection is held to.
    pub(crate) limits: Arc<ConnLimits>,
}

/// Handles one accepted connection of type `Io`, from accept to close.
///
/// Implementations must close (drop) the stream on every path and return;
/// a panic is caught by the accept loop and closes only that connection.
pub(crate) trait Handler<Io>: Send + Sync + 'static {
    /// Handles one connection and reports what it did.
    fn handle(&self, io: Io, accepted: Accepted) -> impl Future<Output = ConnReport> + Send;
}

impl<S: Service, Io: Connection> Handler<Io> for S {
    fn handle(&self, io: Io, accepted: Accepted) -> impl Future<Output = ConnReport> + Send {
        self.serve(Conn::new(
            io,
            accepted.peer,
            accepted.shutdown,
            accepted.limits,
        ))
    }
}
