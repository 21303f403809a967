//! Registering an ICMP socket with tokio's reactor: the one `unsafe` call
//! in sockit.
//!
//! tokio has no ICMP socket type, so the socket2 socket is wrapped in
//! [`AsyncFd`], whose registration is an `unsafe fn` since tokio 1.5x
//! (tokio-rs/tokio#8587): the caller must keep the descriptor open and
//! unshared for as long as it is registered.

#![allow(unsafe_code)]

use std::io;

use socket2::Socket;
use tokio::io::unix::AsyncFd;

/// Registers `socket` for readiness events, read and write.
///
/// # Errors
///
/// The `epoll_ctl(2)` error.
///
/// # Panics
///
/// Outside a tokio runtime.
pub(crate) fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `AsyncFd` takes ownership of `socket`, which owns its
    // descriptor: the descriptor stays open exactly as long as it is
    // registered (the `AsyncFd` deregisters before dropping it), and no
    // other owner can close or reuse it meanwhile.
    unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)
}
