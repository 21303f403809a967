//! The one place a socket is opened: socket2 creates it and sets its
//! options, then it is handed to tokio.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// The `listen(2)` backlog the tutorial uses: how many finished handshakes
/// the kernel queues before `accept` takes them.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Options for a listening socket.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// The `listen(2)` backlog. Default is 1024 ([`DEFAULT_BACKLOG`]); the
    /// kernel caps it at `net.core.somaxconn`.
    pub backlog: u32,
    /// `IPV6_V6ONLY` for IPv6 sockets: `Some(false)` accepts IPv4 too
    /// (dual-stack), `Some(true)` only IPv6, `None` leaves the kernel default.
    /// Default is `None`.
    pub only_v6: Option<bool>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: DEFAULT_BACKLOG,
            only_v6: None,
        }
    }
}

/// Opens a TCP listener on `addr`.
///
/// In order:
/// 1. `socket(2)` with `SOCK_CLOEXEC`, so child processes do not inherit it;
/// 2. `SO_REUSEADDR`, so a restarted server binds at once even while old
///    connections sit in `TIME_WAIT`;
/// 3. `IPV6_V6ONLY` as `opts.only_v6` says, for an IPv6 address;
/// 4. `bind(2)` to `addr` (port 0 picks a free port);
/// 5. `listen(2)` with `opts.backlog`;
/// 6. `O_NONBLOCK`, and registration with the tokio reactor.
///
/// # Errors
///
/// The OS error of the first step that failed.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn tcp_listener(addr: SocketAddr, opts: &ListenOptions) -> io::Result<tokio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if let (SocketAddr::V6(_), Some(only_v6)) = (addr, opts.only_v6) {
        socket.set_only_v6(only_v6)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(opts.backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// Connects a TCP stream to `addr`, corresponding to `connect(2)` on a
/// fresh `SOCK_CLOEXEC` socket, with `TCP_NODELAY` set: sockit writes whole
/// messages, so Nagle's delay would only add latency.
///
/// # Errors
///
/// The OS error: refused, unreachable, …
pub async fn tcp_connect(addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

// ---------------------------------------------------------------------
// ICMP sockets, for `sockit ping` (added by the netcat/ping work).
// ---------------------------------------------------------------------

/// Which kind of ICMP socket to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    /// `SOCK_DGRAM` + `IPPROTO_ICMP`/`IPPROTO_ICMPV6`: Linux's unprivileged
    /// "ping socket", allowed for the groups in `net.ipv4.ping_group_range`.
    /// The kernel picks the echo identifier and only delivers replies to
    /// it.
    Datagram,
    /// `SOCK_RAW`: needs root or `CAP_NET_RAW`, and sees every ICMP message
    /// of the family (IPv4 with its IP header in front).
    Raw,
}

/// Opens an ICMP socket of `kind` for IPv6 (`v6`) or IPv4: `socket(2)` with
/// `SOCK_CLOEXEC`, then `O_NONBLOCK`, ready for [`tokio::io::unix::AsyncFd`].
///
/// # Errors
///
/// The `socket(2)` error: `EACCES` when the caller's group is outside
/// `net.ipv4.ping_group_range` (datagram) or lacks `CAP_NET_RAW` (raw
/// gives `EPERM`).
pub fn icmp_socket(v6: bool, kind: IcmpKind) -> io::Result<Socket> {
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let ty = match kind {
        IcmpKind::Datagram => Type::DGRAM,
        IcmpKind::Raw => Type::RAW,
    };
    let socket = Socket::new(domain, ty, Some(protocol))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listener_has_reuseaddr_and_the_requested_v6only() {
        // Check the default differs first, so the test cannot pass by accident.
        let plain = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        assert!(
            !plain.reuse_address().unwrap(),
            "initial value and argument are the same"
        );
        for only_v6 in [true, false] {
            let opts = ListenOptions {
                only_v6: Some(only_v6),
                ..ListenOptions::default()
            };
            // The wildcard: Linux forces IPV6_V6ONLY on for a specific IPv6 address.
            let listener = tcp_listener("[::]:0".parse().unwrap(), &opts).unwrap();
            let sock = socket2::SockRef::from(&listener);
            assert!(sock.reuse_address().unwrap());
            assert_eq!(sock.only_v6().unwrap(), only_v6);
            assert_ne!(listener.local_addr().unwrap().port(), 0);
        }
    }

    #[tokio::test]
    async fn listener_is_close_on_exec() {
        let listener =
            tcp_listener("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        use std::os::fd::AsRawFd;
        let flags = nix::fcntl::fcntl(listener.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(
            nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
        );
        assert!(socket2::SockRef::from(&listener).is_listener().unwrap());
    }

    #[test]
    fn icmp_socket_is_the_requested_type_when_permitted() {
        for (kind, ty) in [
            (IcmpKind::Datagram, Type::DGRAM),
            (IcmpKind::Raw, Type::RAW),
        ] {
            for v6 in [false, true] {
                // Which kinds are allowed depends on the machine; when one
                // opens, it must be what was asked for.
                if let Ok(socket) = icmp_socket(v6, kind) {
                    assert_eq!(socket.r#type().unwrap(), ty);
                    assert!(socket.nonblocking().unwrap());
                    assert_eq!(
                        socket.domain().unwrap(),
                        if v6 { Domain::IPV6 } else { Domain::IPV4 }
                    );
                }
            }
        }
    }
}
