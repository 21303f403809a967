//! Deciding when to stop: Ctrl-C (SIGINT) and SIGTERM.
//!
//! Shutdown has three steps, each visible in [`Server::run_with`]:
//! decide (a signal future resolves), tell (the server's
//! `CancellationToken` is cancelled: accept loops close their listeners,
//! idle connections close, busy ones finish their request), and wait (the
//! `TaskTracker` drains, bounded by the grace period).
//!
//! [`Server::run_with`]: crate::server::Server::run_with

use std::io;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Counts SIGINT and SIGTERM deliveries, so the first can start a graceful
/// shutdown and the second can cut it short.
#[derive(Debug, Clone)]
pub struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Installs the handlers. From then on the default action (exit) no
    /// longer applies to these signals.
    ///
    /// # Errors
    ///
    /// When a handler cannot be installed.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn install() -> io::Result<Signals> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, count) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = interrupt.recv() => {}
                    Some(()) = terminate.recv() => {}
                    else => break,
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(Signals { count })
    }

    /// Resolves once `n` signals have arrived in all.
    pub async fn nth(&self, n: u32) {
        let mut count = self.count.clone();
        // An error means the counting task is gone: no signal will come.
        if count.wait_for(|&seen| seen >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
