//! What the accept loop runs on each connection it accepts.
//!
//! The accept loop is written once, against [`Handler`]: every
//! [`Service`] is a handler (through the blanket impl below), and so is
//! anything else that wants the same loop, limits and graceful shutdown
//! without being a request–response service (`sockit relay`).

use std::future::Future;

use crate::conn::{ConnContext, ConnReport, Connection};
use crate::service::Service;

/// Handles one accepted connection of type `Io`, from accept to close.
///
/// Implementations must close (drop) the stream on every path and return;
/// a panic is caught by the accept loop and closes only that connection.
pub trait Handler<Io>: Send + Sync + 'static {
    /// Handles one connection and reports what it did.
    fn handle(&self, io: Io, ctx: ConnContext) -> impl Future<Output = ConnReport> + Send;
}

impl<S: Service, Io: Connection> Handler<Io> for S {
    fn handle(&self, io: Io, ctx: ConnContext) -> impl Future<Output = ConnReport> + Send {
        self.serve(io, ctx)
    }
}
