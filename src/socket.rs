//! The one place a socket is opened: socket2 creates it and sets its
//! options, then it is handed to tokio.
//!
//! One function per kind of socket, named after the syscalls it makes:
//!
//! | transport | server side | client side |
//! |---|---|---|
//! | TCP | [`tcp_listener`] | [`tcp_connect`] |
//! | UDP | [`udp_bind`] | [`udp_connect`] |
//! | Unix stream | [`unix_listener`] | [`unix_connect`] |
//! | Unix datagram | [`unix_datagram_bind`] | [`unix_datagram_connect`] |
//! | Unix seqpacket | [`seqpacket_listener`] | [`seqpacket_connect`] |
//!
//! [`tcp_connect_start`] starts a connect without waiting, for `sockit scan`
//! ([`tcp_probe_socket`] and [`tcp_connect_again`] are its two steps).
//! [`unix_datagram_try_send_to`] replies to a Unix datagram sender, path or
//! abstract name. [`remove_stale_socket_file`] checks a socket file left by a dead server
//! before a Unix listener reuses its path, and [`tipc_rdm_socket`] tells
//! whether this kernel offers `SOCK_RDM` at all.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::endpoint::UnixAddr;
use crate::seqpacket::{SeqPacketListener, SeqPacketStream};

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
    /// Permissions for a Unix socket file (`--mode 0660`), set with
    /// `chmod(2)` after `bind(2)` and before `listen(2)`, so no client
    /// connects before they apply. `None` leaves what the umask gave.
    /// Ignored for IP sockets and abstract names. Default is `None`.
    pub mode: Option<u32>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: DEFAULT_BACKLOG,
            only_v6: None,
            mode: None,
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

/// Starts a TCP connect to `addr` and returns without waiting for it: the
/// tutorial's `connect_ex` on a non-blocking socket, for a port probe.
///
/// [`tcp_probe_socket`], then [`tcp_connect_again`] to `addr`.
///
/// # Errors
///
/// The OS error of the first step that failed: `EMFILE` and `ENOBUFS`
/// from `socket(2)`, `ENETUNREACH`, `EADDRNOTAVAIL` (no free local port),
/// `EPERM` (a local firewall rule), … from `connect(2)`.
pub fn tcp_connect_start(addr: SocketAddr) -> io::Result<Socket> {
    let socket = tcp_probe_socket(addr)?;
    tcp_connect_again(&socket, addr)?;
    Ok(socket)
}

/// Opens a TCP socket of `addr`'s family for port probes.
///
/// In order:
/// 1. `socket(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` in one call;
/// 2. `SO_LINGER` with a zero timeout, so closing the probe sends RST:
///    neither side keeps the connection in `TIME_WAIT`, and a scan of
///    every port does not use up the local ports.
///
/// The socket is not registered with tokio: most probes never need to
/// wait, and for those that do the caller converts it.
///
/// # Errors
///
/// The `socket(2)` or `setsockopt(2)` error (`EMFILE`, `ENOBUFS`, …).
pub fn tcp_probe_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_linger(Some(std::time::Duration::ZERO))?;
    Ok(socket)
}

/// `connect(2)` on a non-blocking TCP socket, with `EINPROGRESS` (the
/// usual answer: the SYN is sent) returned as `Ok`.
///
/// Called a second time on the same socket, it tells how the first
/// ended: `Ok` (or `EISCONN`) when connected, `EALREADY` while the
/// handshake is in progress, or the error the connect failed with. On
/// Linux, that failing call also resets the socket to unconnected
/// (`inet_stream_connect` → `tcp_disconnect`), so it can connect again,
/// to another port: a port scan then costs no `socket(2)` and `close(2)`
/// per closed port. (POSIX leaves a socket's state after a failed
/// connect unspecified; this is Linux behaviour, and sockit is Linux
/// software.)
///
/// # Errors
///
/// The `connect(2)` error.
pub fn tcp_connect_again(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    match socket.connect(&addr.into()) {
        Err(err) if err.raw_os_error() == Some(nix::libc::EINPROGRESS) => Ok(()),
        other => other,
    }
}

/// Opens a UDP socket bound to `addr`, for a server.
///
/// In order:
/// 1. `socket(2)` with `SOCK_DGRAM | SOCK_CLOEXEC`;
/// 2. `IPV6_V6ONLY` as `opts.only_v6` says, for an IPv6 address;
/// 3. `bind(2)` to `addr` (port 0 picks a free port);
/// 4. `O_NONBLOCK`, and registration with the tokio reactor.
///
/// `SO_REUSEADDR` is left off: UDP has no `TIME_WAIT` to wait out, and on
/// Linux it would let a second server bind the same port and steal
/// datagrams. `opts.backlog` and `opts.mode` do not apply.
///
/// # Errors
///
/// The OS error of the first step that failed.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn udp_bind(addr: SocketAddr, opts: &ListenOptions) -> io::Result<tokio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let (SocketAddr::V6(_), Some(only_v6)) = (addr, opts.only_v6) {
        socket.set_only_v6(only_v6)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Opens a UDP socket connected to `addr`, for a client.
///
/// In order:
/// 1. `socket(2)` with `SOCK_DGRAM | SOCK_CLOEXEC`, of `addr`'s family;
/// 2. `bind(2)` to the wildcard address and port 0: the kernel picks the
///    source port the reply comes back to;
/// 3. `connect(2)` to `addr`: no packet is sent, but from then on the
///    socket only receives datagrams from `addr`, and an ICMP "port
///    unreachable" comes back as `ECONNREFUSED` on the next receive
///    instead of a silent timeout;
/// 4. `O_NONBLOCK`, and registration with the tokio reactor.
///
/// # Errors
///
/// The OS error of the first step that failed.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn udp_connect(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    socket.bind(&any.into())?;
    socket.connect(&addr.into())?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// The socket address of a Unix path or abstract name.
///
/// An abstract name is a `sun_path` that starts with a NUL byte (see
/// unix(7)); it is not NUL-terminated and its length is part of the name.
///
/// # Errors
///
/// `InvalidInput` when the path or name is longer than `sun_path` (108
/// bytes on Linux).
pub fn unix_sockaddr(addr: &UnixAddr) -> io::Result<SockAddr> {
    match addr {
        UnixAddr::Path(path) => SockAddr::unix(path),
        UnixAddr::Abstract(name) => unix_abstract_sockaddr(name.as_bytes()),
    }
}

/// The socket address of a Linux abstract name given as raw bytes (names
/// the kernel picks, or other programs bind, need not be UTF-8).
///
/// # Errors
///
/// `InvalidInput` when the name is longer than `sun_path` less one byte.
pub fn unix_abstract_sockaddr(name: &[u8]) -> io::Result<SockAddr> {
    let mut bytes = Vec::with_capacity(name.len() + 1);
    bytes.push(0);
    bytes.extend_from_slice(name);
    SockAddr::unix(PathBuf::from(OsString::from_vec(bytes)))
}

/// The [`UnixAddr`] a kernel socket address names, or `None` for an
/// unnamed socket (a client that never bound).
pub fn unix_addr_of(addr: &SockAddr) -> Option<UnixAddr> {
    if let Some(path) = addr.as_pathname() {
        return Some(UnixAddr::Path(path.to_owned()));
    }
    addr.as_abstract_namespace()
        .map(|name| UnixAddr::Abstract(String::from_utf8_lossy(name).into_owned()))
}

/// Which Unix socket type a function works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixType {
    /// `SOCK_STREAM`.
    Stream,
    /// `SOCK_DGRAM`.
    Datagram,
    /// `SOCK_SEQPACKET`.
    SeqPacket,
}

impl UnixType {
    fn socket_type(self) -> Type {
        match self {
            UnixType::Stream => Type::STREAM,
            UnixType::Datagram => Type::DGRAM,
            UnixType::SeqPacket => Type::SEQPACKET,
        }
    }
}

/// Creates and binds a Unix socket of type `ty`: `socket(2)` with
/// `SOCK_CLOEXEC`, `bind(2)`, then `chmod(2)` of the file to `mode`.
fn unix_bound(ty: UnixType, addr: &UnixAddr, mode: Option<u32>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, ty.socket_type(), None)?;
    socket.bind(&unix_sockaddr(addr)?)?;
    if let (UnixAddr::Path(path), Some(mode)) = (addr, mode) {
        if let Err(err) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            // The file is ours and useless without the asked-for mode.
            let _ = std::fs::remove_file(path);
            return Err(err);
        }
    }
    Ok(socket)
}

/// Opens a Unix stream listener on a path or an abstract name.
///
/// In order:
/// 1. `socket(2)` with `AF_UNIX`, `SOCK_STREAM | SOCK_CLOEXEC`;
/// 2. `bind(2)` to `addr`, which creates the socket file for a path (it
///    fails with `EADDRINUSE` if the file exists: see
///    [`remove_stale_socket_file`]);
/// 3. `chmod(2)` of the file to `opts.mode`, if given, before any client
///    can connect;
/// 4. `listen(2)` with `opts.backlog`;
/// 5. `O_NONBLOCK`, and registration with the tokio reactor.
///
/// The caller owns the socket file: nothing here removes it.
///
/// # Errors
///
/// The OS error of the first step that failed.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn unix_listener(
    addr: &UnixAddr,
    opts: &ListenOptions,
) -> io::Result<tokio::net::UnixListener> {
    let socket = unix_bound(UnixType::Stream, addr, opts.mode)?;
    socket.listen(i32::try_from(opts.backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(socket.into())
}

/// Connects a Unix stream socket to a path or an abstract name: `socket(2)`
/// with `SOCK_CLOEXEC | O_NONBLOCK`, then `connect(2)`.
///
/// # Errors
///
/// The OS error: `ENOENT` for a path that does not exist, `ECONNREFUSED`
/// when nobody listens there, `EAGAIN` when the listener's backlog is full
/// (as tokio's `UnixStream::connect`).
pub async fn unix_connect(addr: &UnixAddr) -> io::Result<tokio::net::UnixStream> {
    let std_addr = unix_std_addr(addr)?;
    tokio::net::UnixStream::connect_addr(&std_addr.into()).await
}

/// The standard library's form of a Unix address.
fn unix_std_addr(addr: &UnixAddr) -> io::Result<std::os::unix::net::SocketAddr> {
    match addr {
        UnixAddr::Path(path) => std::os::unix::net::SocketAddr::from_pathname(path),
        UnixAddr::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        }
    }
}

/// Opens a Unix datagram socket bound to a path or an abstract name, for a
/// server.
///
/// In order:
/// 1. `socket(2)` with `AF_UNIX`, `SOCK_DGRAM | SOCK_CLOEXEC`;
/// 2. `bind(2)` to `addr`, which creates the socket file for a path;
/// 3. `chmod(2)` of the file to `mode`, if given;
/// 4. `O_NONBLOCK`, and registration with the tokio reactor.
///
/// The caller owns the socket file: nothing here removes it.
///
/// # Errors
///
/// The OS error of the first step that failed.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn unix_datagram_bind(
    addr: &UnixAddr,
    mode: Option<u32>,
) -> io::Result<tokio::net::UnixDatagram> {
    let socket = unix_bound(UnixType::Datagram, addr, mode)?;
    socket.set_nonblocking(true)?;
    tokio::net::UnixDatagram::from_std(socket.into())
}

/// Opens a Unix datagram socket connected to `peer`, for a client. A Unix
/// datagram server can only reply to a sender that has an address, so the
/// client binds one first.
///
/// In order:
/// 1. `socket(2)` with `AF_UNIX`, `SOCK_DGRAM | SOCK_CLOEXEC`;
/// 2. `bind(2)` to `local`: a fresh path in the temporary directory, or
///    (when that path would not fit in `sun_path`) an abstract name the
///    kernel picks (Linux autobind, see unix(7));
/// 3. `connect(2)` to `peer`: sends go there, and only its datagrams are
///    received;
/// 4. `O_NONBLOCK`, and registration with the tokio reactor.
///
/// The returned [`TempUnixDatagram`] removes the bound file when dropped.
///
/// # Errors
///
/// The OS error of the first step that failed: `ENOENT` or `ECONNREFUSED`
/// when nothing is bound at `peer`.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn unix_datagram_connect(peer: &UnixAddr) -> io::Result<TempUnixDatagram> {
    let socket = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
    let path = temp_socket_path();
    let file = match SockAddr::unix(&path) {
        Ok(local) => {
            socket.bind(&local)?;
            Some(path)
        }
        Err(_) => {
            // An address of the family alone (an empty path) asks the
            // kernel to autobind.
            socket.bind(&SockAddr::unix("")?)?;
            None
        }
    };
    // From here on the file exists: the guard removes it on every path.
    let guard = TempFile(file);
    socket.connect(&unix_sockaddr(peer)?)?;
    socket.set_nonblocking(true)?;
    Ok(TempUnixDatagram {
        socket: tokio::net::UnixDatagram::from_std(socket.into())?,
        _file: guard,
    })
}

/// Sends one datagram to `peer` without waiting, corresponding to
/// `sendto(2)`: the reply a Unix datagram server sends to whoever wrote to
/// it (`peer` as `recv_from` returned it).
///
/// tokio's `try_send_to` takes a path only; a sender bound to an abstract
/// name (including a Linux autobind name) is reached through socket2,
/// inside tokio's readiness tracking.
///
/// # Errors
///
/// `WouldBlock` when the peer's receive queue is full; `AddrNotAvailable`
/// for an unnamed sender (one that never bound an address: no reply can
/// reach it); `ECONNREFUSED` or `ENOENT` when the peer has gone away.
pub fn unix_datagram_try_send_to(
    socket: &tokio::net::UnixDatagram,
    buf: &[u8],
    peer: &tokio::net::unix::SocketAddr,
) -> io::Result<usize> {
    if let Some(path) = peer.as_pathname() {
        return socket.try_send_to(buf, path);
    }
    let Some(name) = peer.as_abstract_name() else {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "the sender is unnamed (it never bound an address), so no reply can reach it",
        ));
    };
    let target = unix_abstract_sockaddr(name)?;
    socket.try_io(tokio::io::Interest::WRITABLE, || {
        socket2::SockRef::from(socket).send_to(buf, &target)
    })
}

/// A fresh socket path in the temporary directory.
fn temp_socket_path() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "sockit-{}-{}-{nanos}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A Unix datagram client socket bound to a temporary address, removed
/// when this is dropped. Derefs to the tokio socket.
#[derive(Debug)]
pub struct TempUnixDatagram {
    socket: tokio::net::UnixDatagram,
    _file: TempFile,
}

impl std::ops::Deref for TempUnixDatagram {
    type Target = tokio::net::UnixDatagram;

    fn deref(&self) -> &Self::Target {
        &self.socket
    }
}

/// Removes a file on drop.
#[derive(Debug)]
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Opens a Unix `SOCK_SEQPACKET` listener on a path or an abstract name.
///
/// In order:
/// 1. `socket(2)` with `AF_UNIX`, `SOCK_SEQPACKET | SOCK_CLOEXEC`;
/// 2. `bind(2)` to `addr`, which creates the socket file for a path;
/// 3. `chmod(2)` of the file to `opts.mode`, if given;
/// 4. `listen(2)` with `opts.backlog`;
/// 5. `O_NONBLOCK`, and registration with the tokio reactor (through
///    `AsyncFd`: tokio has no seqpacket type).
///
/// The caller owns the socket file: nothing here removes it.
///
/// # Errors
///
/// The OS error of the first step that failed.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn seqpacket_listener(addr: &UnixAddr, opts: &ListenOptions) -> io::Result<SeqPacketListener> {
    let socket = unix_bound(UnixType::SeqPacket, addr, opts.mode)?;
    socket.listen(i32::try_from(opts.backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    SeqPacketListener::new(socket)
}

/// Connects a Unix `SOCK_SEQPACKET` socket to a path or an abstract name.
///
/// In order:
/// 1. `socket(2)` with `AF_UNIX`, `SOCK_SEQPACKET | SOCK_CLOEXEC`;
/// 2. `O_NONBLOCK`;
/// 3. `connect(2)`, which for `AF_UNIX` completes at once (or fails with
///    `EAGAIN` when the listener's backlog is full);
/// 4. registration with the tokio reactor.
///
/// # Errors
///
/// The OS error: `ENOENT`, `ECONNREFUSED`, `EAGAIN`, …
///
/// # Panics
///
/// Outside a tokio runtime.
pub async fn seqpacket_connect(addr: &UnixAddr) -> io::Result<SeqPacketStream> {
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&unix_sockaddr(addr)?)?;
    let stream = SeqPacketStream::new(socket)?;
    stream.writable().await?;
    Ok(stream)
}

/// Removes the socket file at `path` if it is stale: left by a server that
/// is gone.
///
/// In order:
/// 1. `lstat(2)`: nothing there is fine (`Ok(false)`); anything that is not
///    a socket is refused with `AlreadyExists`, and never removed;
/// 2. `connect(2)` with a socket of type `ty`: `ECONNREFUSED` means nobody
///    is bound there any more, so the file is stale; a connection that
///    succeeds means a server is alive: `AddrInUse`;
/// 3. `unlink(2)` of the stale file, returning `Ok(true)`.
///
/// # Errors
///
/// `AlreadyExists` for a file that is not a socket, `AddrInUse` for a live
/// socket, or the OS error of a step.
pub fn remove_stale_socket_file(path: &Path, ty: UnixType) -> io::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; refusing to remove it",
        ));
    }
    let probe = Socket::new(Domain::UNIX, ty.socket_type(), None)?;
    probe.set_nonblocking(true)?;
    match probe.connect(&SockAddr::unix(path)?) {
        // A datagram "connect" only records the peer, so it succeeding also
        // means something is bound there.
        Ok(()) => Err(io::Error::from(io::ErrorKind::AddrInUse)),
        // A full backlog: a live listener too busy to take us.
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            Err(io::Error::from(io::ErrorKind::AddrInUse))
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)?;
            Ok(true)
        }
        // A socket of another type is bound there: alive, not ours to take.
        Err(err) if err.raw_os_error() == Some(nix::errno::Errno::EPROTOTYPE as i32) => {
            Err(io::Error::from(io::ErrorKind::AddrInUse))
        }
        Err(err) => Err(err),
    }
}

/// Opens an `AF_TIPC` `SOCK_RDM` socket: the only reliable-datagram
/// (`SOCK_RDM`) socket Linux offers.
///
/// This is a probe: sockit has no TIPC transport yet, and this tells
/// whether one could work on this kernel.
///
/// # Errors
///
/// `EAFNOSUPPORT` when the kernel lacks TIPC (the `tipc` module is not
/// loaded or not built), or another OS error.
pub fn tipc_rdm_socket() -> io::Result<Socket> {
    Socket::new(
        Domain::from(nix::libc::AF_TIPC),
        Type::from(nix::libc::SOCK_RDM),
        None,
    )
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

    fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        (dir, path)
    }

    #[tokio::test]
    async fn unix_listener_applies_mode_before_clients_connect() {
        let (_dir, path) = temp_path("mode.sock");
        let opts = ListenOptions {
            mode: Some(0o600),
            ..ListenOptions::default()
        };
        let listener = unix_listener(&UnixAddr::Path(path.clone()), &opts).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The umask default (0o755 or 0o775 here) differs, so this checks chmod ran.
        let (_dir2, other) = temp_path("plain.sock");
        let _plain =
            unix_listener(&UnixAddr::Path(other.clone()), &ListenOptions::default()).unwrap();
        let plain = std::fs::metadata(&other).unwrap().permissions().mode() & 0o777;
        assert_ne!(plain, 0o600, "initial value and argument are the same");
        let _client = unix_connect(&UnixAddr::Path(path)).await.unwrap();
        let (_conn, _) = listener.accept().await.unwrap();
    }

    #[tokio::test]
    async fn abstract_names_connect_and_leave_no_file() {
        let name = format!("sockit-test-{}", std::process::id());
        let addr = UnixAddr::Abstract(name.clone());
        let listener = unix_listener(&addr, &ListenOptions::default()).unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(local.as_abstract_name(), Some(name.as_bytes()));
        let _client = unix_connect(&addr).await.unwrap();
        listener.accept().await.unwrap();
        assert!(!Path::new(&name).exists());
    }

    #[tokio::test]
    async fn stale_socket_files_are_removed_and_live_ones_kept() {
        let (_dir, path) = temp_path("stale.sock");
        let addr = UnixAddr::Path(path.clone());
        assert!(!remove_stale_socket_file(&path, UnixType::Stream).unwrap());
        let live = unix_listener(&addr, &ListenOptions::default()).unwrap();
        let err = remove_stale_socket_file(&path, UnixType::Stream).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(path.exists());
        drop(live); // the file stays behind, as after a crash
        assert!(path.exists());
        assert!(remove_stale_socket_file(&path, UnixType::Stream).unwrap());
        assert!(!path.exists());
        unix_listener(&addr, &ListenOptions::default()).unwrap();
    }

    #[test]
    fn a_regular_file_is_never_removed() {
        let (_dir, path) = temp_path("data.txt");
        std::fs::write(&path, b"precious").unwrap();
        let err = remove_stale_socket_file(&path, UnixType::Stream).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[tokio::test]
    async fn udp_round_trip_and_refused_port() {
        let server = udp_bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        let client = udp_connect(server.local_addr().unwrap()).unwrap();
        client.send(b"ping").await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from, client.local_addr().unwrap());
        // A connected UDP socket hears of the closed port as ECONNREFUSED.
        let port = server.local_addr().unwrap();
        drop(server);
        let lonely = udp_connect(port).unwrap();
        lonely.send(b"anyone?").await.unwrap();
        let err = tokio::time::timeout(std::time::Duration::from_secs(2), lonely.recv(&mut buf))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn unix_datagram_client_binds_a_temporary_file_and_removes_it() {
        let (_dir, path) = temp_path("dgram.sock");
        let addr = UnixAddr::Path(path);
        let server = unix_datagram_bind(&addr, None).unwrap();
        let client = unix_datagram_connect(&addr).unwrap();
        let local = client.local_addr().unwrap();
        let local_path = local.as_pathname().unwrap().to_owned();
        assert!(local_path.exists());
        client.send(b"hi").await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert_eq!(from.as_pathname(), Some(local_path.as_path()));
        drop(client);
        assert!(!local_path.exists(), "temporary socket file left behind");
    }

    #[tokio::test]
    async fn seqpacket_keeps_message_boundaries_over_a_listener() {
        let name = format!("sockit-seq-{}", std::process::id());
        let addr = UnixAddr::Abstract(name);
        let listener = seqpacket_listener(&addr, &ListenOptions::default()).unwrap();
        let client = seqpacket_connect(&addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.send(b"one").await.unwrap();
        client.send(b"two").await.unwrap();
        let mut buf = bytes::BytesMut::new();
        server.recv_message(&mut buf).await.unwrap();
        assert_eq!(&buf[..], b"one");
    }

    #[test]
    fn tipc_probe_fails_cleanly_or_opens_a_socket() {
        match tipc_rdm_socket() {
            Ok(socket) => assert_eq!(socket.r#type().unwrap(), Type::from(nix::libc::SOCK_RDM)),
            Err(err) => assert_eq!(
                err.raw_os_error(),
                Some(nix::errno::Errno::EAFNOSUPPORT as i32),
                "{err}"
            ),
        }
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
