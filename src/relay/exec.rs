//! `exec:CMD`: a child process per connection, its standard input and
//! output being the relayed stream (socat's `EXEC`, ncat's `-e`).
//!
//! The child is started with `/bin/sh -c CMD`, standard error inherited
//! (its messages reach sockit's stderr), and the peer's address in its
//! environment:
//!
//! | variable | value |
//! |---|---|
//! | `SOCKIT_PEER_ADDR` | the peer as sockit prints it (`127.0.0.1:53422`, `unix:<unnamed>`) |
//! | `SOCAT_PEERADDR`, `SOCAT_PEERPORT` | the peer's IP (IPv4-mapped IPv6 as IPv4) and port, as socat names them (IP peers only) |
//!
//! It is reaped on every path: after a pair that ended cleanly (both
//! directions at end of stream), its pipes are closed and it gets
//! [`EXIT_WAIT`] to exit before it is killed (`SIGKILL`) and waited for;
//! after an idle timeout or a reset it is killed at once; if the task
//! itself is dropped (a panic, the end of the grace period), tokio's
//! `kill_on_drop` kills it and tokio reaps it. A child that exits while
//! the client is still connected stays a zombie until the pair ends: the
//! client may still be sending (half-close).

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::conn::PeerAddr;
use crate::{Error, Result};

/// How long a child may take to exit once its pipes are closed before it
/// is killed: 2 seconds.
pub const EXIT_WAIT: Duration = Duration::from_secs(2);

/// A running child, read through its standard output and written through
/// its standard input. Shutting down the write side closes its standard
/// input, so the child sees end of file: the half-close of a socket.
#[derive(Debug)]
pub struct ExecStream {
    child: Child,
    stdout: ChildStdout,
    /// `None` once shut down.
    stdin: Option<ChildStdin>,
}

impl ExecStream {
    /// Starts `/bin/sh -c command` for a client at `peer`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] naming the command when it cannot be started
    /// (no `/bin/sh`, out of processes or descriptors).
    pub fn spawn(command: &str, peer: &PeerAddr) -> Result<ExecStream> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .env("SOCKIT_PEER_ADDR", peer.to_string());
        if let PeerAddr::Inet(addr) = peer {
            // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
            cmd.env("SOCAT_PEERADDR", addr.ip().to_canonical().to_string())
                .env("SOCAT_PEERPORT", addr.port().to_string());
        }
        let failed =
            |err: io::Error| Error::Unsupported(format!("cannot run exec:{command}: {err}"));
        let mut child = cmd.spawn().map_err(failed)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(failed(io::Error::other("no pipes to the child")));
        };
        Ok(ExecStream {
            child,
            stdout,
            stdin: Some(stdin),
        })
    }

    /// Closes the pipes and reaps the child: waits up to [`EXIT_WAIT`] for
    /// it to exit (none with `kill_now`), then kills it and waits.
    pub async fn finish(self, kill_now: bool) {
        let ExecStream {
            mut child,
            stdout,
            stdin,
        } = self;
        drop((stdin, stdout));
        let wait = if kill_now { Duration::ZERO } else { EXIT_WAIT };
        match tokio::time::timeout(wait, child.wait()).await {
            Ok(Ok(status)) => tracing::debug!(%status, "exec child exited"),
            Ok(Err(err)) => tracing::debug!(%err, "waiting for the exec child failed"),
            Err(_) => {
                tracing::debug!(
                    "exec child still running {EXIT_WAIT:?} after its pipes closed: killing it"
                );
                let _ = child.kill().await;
            }
        }
    }
}

impl AsyncRead for ExecStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ExecStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Closes the child's standard input: it reads end of file.
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}
