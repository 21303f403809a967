//! `sockit ping`: ICMP echo, the tutorial's `SOCK_RAW` use.
//!
//! An unprivileged ICMP datagram socket is tried first (Linux allows it to
//! the groups in `net.ipv4.ping_group_range`), then a raw socket (root or
//! `CAP_NET_RAW`). Output follows ping(8) from iputils: one line per reply,
//! then the statistics.
//!
//! ```no_run
//! use sockit::ping::{ping, PingOptions};
//!
//! # async fn demo() -> sockit::Result<()> {
//! let opts = PingOptions { count: Some(3), ..PingOptions::default() };
//! let stats = ping("127.0.0.1", &opts, &mut std::io::stdout(), std::future::pending()).await?;
//! assert_eq!(stats.received, 3);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{SockAddr, Socket};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::endpoint::Family;
use crate::socket::{icmp_socket, IcmpKind};
use crate::{Error, Result};

pub mod icmp;
mod reactor;

/// Payload bytes per request, as ping(8). Default is 56 (64 with the ICMP
/// header).
pub const DEFAULT_SIZE: usize = 56;
/// The largest payload: 65,535 less the IPv4 and ICMP headers.
pub const MAX_SIZE: usize = 65_507;
/// Time between requests. Default is 1 second.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a reply may take. Default is 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Receive errors in a row after which ping gives up.
const MAX_RECV_ERRORS: u32 = 100;

/// Options for [`ping`].
#[derive(Debug, Clone)]
pub struct PingOptions {
    /// Requests to send; `None` sends until the stop future resolves.
    /// Default is `None`.
    pub count: Option<u64>,
    /// Time between requests. Default is 1 second.
    pub interval: Duration,
    /// How long to wait for each reply; later replies count as lost.
    /// Default is 10 seconds.
    pub timeout: Duration,
    /// Payload bytes per request. Default is 56.
    pub size: usize,
    /// Only resolve to this family (`-4`/`-6`). Default is any.
    pub family: Option<Family>,
    /// The socket kind; `None` tries datagram, then raw. Default is `None`.
    pub kind: Option<IcmpKind>,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            count: None,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            size: DEFAULT_SIZE,
            family: None,
            kind: None,
        }
    }
}

/// What a ping run measured, printed as ping(8)'s statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    /// The host as given.
    pub host: String,
    /// Requests sent.
    pub transmitted: u64,
    /// Replies received in time.
    pub received: u64,
    /// From the first request to the end.
    pub elapsed: Duration,
    /// Round-trip times of the replies, in order.
    pub rtts: Vec<Duration>,
}

impl Statistics {
    /// Lost requests as a percentage of those sent.
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        (self.transmitted - self.received) as f64 * 100.0 / self.transmitted as f64
    }
}

impl fmt::Display for Statistics {
    /// ping(8)'s summary: the counts line, and the rtt line when there
    /// were replies (mdev is the standard deviation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loss = (self.loss_percent() * 10_000.0).round() / 10_000.0;
        writeln!(f, "--- {} ping statistics ---", self.host)?;
        write!(
            f,
            "{} packets transmitted, {} received, {loss}% packet loss, time {}ms",
            self.transmitted,
            self.received,
            self.elapsed.as_millis()
        )?;
        if !self.rtts.is_empty() {
            let ms: Vec<f64> = self.rtts.iter().map(|d| d.as_secs_f64() * 1e3).collect();
            let n = ms.len() as f64;
            let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
            let max = ms.iter().copied().fold(0.0, f64::max);
            let avg = ms.iter().sum::<f64>() / n;
            let mdev = (ms.iter().map(|x| x * x).sum::<f64>() / n - avg * avg)
                .max(0.0)
                .sqrt();
            write!(
                f,
                "\nrtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
            )?;
        }
        Ok(())
    }
}

/// An open ICMP socket and how to read it.
#[derive(Debug)]
struct Pinger {
    socket: AsyncFd<Socket>,
    kind: IcmpKind,
    v6: bool,
}

/// Opens an ICMP socket for the family of `target`: `kind` if given,
/// otherwise datagram, then raw.
///
/// # Errors
///
/// [`Error::Unsupported`] with one line saying why neither kind is
/// permitted and how to allow the unprivileged one.
fn open(target: IpAddr, kind: Option<IcmpKind>) -> Result<Pinger> {
    let v6 = target.is_ipv6();
    let kinds: &[IcmpKind] = match kind {
        Some(IcmpKind::Datagram) => &[IcmpKind::Datagram],
        Some(IcmpKind::Raw) => &[IcmpKind::Raw],
        None => &[IcmpKind::Datagram, IcmpKind::Raw],
    };
    let mut errors = Vec::new();
    for &kind in kinds {
        match icmp_socket(v6, kind) {
            Ok(socket) => {
                let socket = reactor::register(socket).map_err(|e| {
                    Error::Unsupported(format!("cannot register the ICMP socket: {e}"))
                })?;
                return Ok(Pinger { socket, kind, v6 });
            }
            Err(e) => errors.push((kind, e)),
        }
    }
    Err(Error::Unsupported(not_permitted(&errors)))
}

/// The one line explaining why no ICMP socket could be opened.
fn not_permitted(errors: &[(IcmpKind, io::Error)]) -> String {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    let gid = nix::unistd::getegid();
    let reasons: Vec<String> = errors
        .iter()
        .map(|(kind, err)| match (kind, err.kind()) {
            (IcmpKind::Datagram, io::ErrorKind::PermissionDenied) => format!(
                "unprivileged ICMP sockets are not allowed for group {gid} (net.ipv4.ping_group_range = {range})"
            ),
            (IcmpKind::Raw, io::ErrorKind::PermissionDenied) => {
                "raw sockets need root or CAP_NET_RAW".to_owned()
            }
            (IcmpKind::Datagram, _) => format!("cannot open an ICMP datagram socket: {err}"),
            (IcmpKind::Raw, _) => format!("cannot open a raw ICMP socket: {err}"),
        })
        .collect();
    let mut line = format!("cannot ping: {}", reasons.join("; "));
    if errors
        .iter()
        .any(|(k, e)| *k == IcmpKind::Datagram && e.kind() == io::ErrorKind::PermissionDenied)
    {
        line.push_str(&format!(
            "; allow it with: sysctl -w net.ipv4.ping_group_range=\"{gid} {gid}\" (or \"0 2147483647\" for everyone)"
        ));
    }
    line
}

/// Resolves `host` to one address of the wanted family.
async fn resolve(host: &str, family: Option<Family>) -> Result<IpAddr> {
    let unzoned = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match unzoned.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| Error::Resolve {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .map(|a| a.ip())
            .collect(),
    };
    addrs
        .into_iter()
        .find(|ip| match family {
            Some(Family::V4) => ip.is_ipv4(),
            Some(Family::V6) => ip.is_ipv6(),
            None => true,
        })
        .ok_or_else(|| Error::Resolve {
            host: host.to_owned(),
            reason: match family {
                Some(Family::V4) => "no IPv4 address".into(),
                Some(Family::V6) => "no IPv6 address".into(),
                None => "no address".into(),
            },
        })
}

/// Pings `host` and writes ping(8)'s lines to `out`: a header, one line per
/// reply, and the statistics once `opts.count` requests are answered or
/// timed out, or when `stop` resolves (Ctrl-C).
///
/// # Errors
///
/// [`Error::Resolve`] for a host that does not resolve,
/// [`Error::Unsupported`] when no ICMP socket may be opened (the message
/// says how to allow one), [`Error::Io`] when sending fails, and
/// [`Error::Stdio`] when writing `out` fails.
pub async fn ping(
    host: &str,
    opts: &PingOptions,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> Result<Statistics> {
    if opts.size > MAX_SIZE {
        return Err(Error::Unsupported(format!(
            "a payload of {} bytes does not fit in one packet: the most is {MAX_SIZE}",
            opts.size
        )));
    }
    let target = resolve(host, opts.family).await?;
    let pinger = open(target, opts.kind)?;
    let write_err = |source| Error::Stdio {
        what: "write standard output",
        source,
    };
    let ip_header = if pinger.v6 { 40 } else { 20 };
    writeln!(
        out,
        "PING {host} ({target}) {}({}) bytes of data.",
        opts.size,
        opts.size + icmp::HEADER_LEN + ip_header
    )
    .and_then(|()| out.flush())
    .map_err(write_err)?;

    let stats = exchange(&pinger, target, host, opts, out, stop).await?;
    writeln!(out, "\n{stats}")
        .and_then(|()| out.flush())
        .map_err(write_err)?;
    Ok(stats)
}

/// Sends the requests and matches the replies.
async fn exchange(
    pinger: &Pinger,
    target: IpAddr,
    host: &str,
    opts: &PingOptions,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> Result<Statistics> {
    // A raw socket sees every echo reply on the machine: the identifier
    // tells ours apart. A datagram socket's identifier is the kernel's.
    let ident = (std::process::id() & 0xffff) as u16;
    let payload: Vec<u8> = (0..opts.size).map(|i| (i % 256) as u8).collect();
    let dest = SockAddr::from(SocketAddr::new(target, 0));
    let mut packet = Vec::with_capacity(opts.size + icmp::HEADER_LEN);
    let mut buf = vec![0u8; MAX_SIZE + 128];
    let mut outstanding: HashMap<u16, Instant> = HashMap::new();
    let mut stats = Statistics {
        host: host.to_owned(),
        transmitted: 0,
        received: 0,
        elapsed: Duration::ZERO,
        rtts: Vec::new(),
    };
    let started = Instant::now();
    let mut next_send = started;
    let mut last_sent = started;
    let mut recv_errors = 0u32;
    let more = |sent: u64| opts.count.map_or(true, |c| sent < c);
    tokio::pin!(stop);
    loop {
        if !more(stats.transmitted) {
            // Done sending: stop once every reply is in or timed out.
            outstanding.retain(|_, sent| sent.elapsed() < opts.timeout);
            if outstanding.is_empty() {
                break;
            }
        }
        tokio::select! {
            biased;
            () = &mut stop => break,
            () = tokio::time::sleep_until(next_send), if more(stats.transmitted) => {
                let seq = (stats.transmitted + 1) as u16;
                icmp::echo_request(pinger.v6, ident, seq, &payload, &mut packet);
                send(pinger, &packet, &dest).await.map_err(|source| Error::Io {
                    what: "sending to",
                    addr: target.to_string(),
                    source,
                })?;
                let now = Instant::now();
                outstanding.insert(seq, now);
                last_sent = now;
                stats.transmitted += 1;
                next_send += opts.interval;
            }
            () = tokio::time::sleep_until(last_sent + opts.timeout), if !more(stats.transmitted) => {}
            received = recv(pinger, &mut buf) => {
                let (n, from) = match received {
                    Ok(got) => {
                        recv_errors = 0;
                        got
                    }
                    // An ICMP error queued on the socket (unreachable, …)
                    // is reported once: that request is lost; keep
                    // listening. An error that keeps coming is no such
                    // report, and retrying it would spin.
                    Err(source) => {
                        recv_errors += 1;
                        if recv_errors > MAX_RECV_ERRORS {
                            return Err(Error::Io {
                                what: "receiving from",
                                addr: target.to_string(),
                                source,
                            });
                        }
                        continue;
                    }
                };
                if from != Some(target) {
                    continue;
                }
                let with_header = pinger.kind == IcmpKind::Raw && !pinger.v6;
                let Some(reply) = icmp::parse_echo_reply(pinger.v6, with_header, &buf[..n]) else {
                    continue;
                };
                if pinger.kind == IcmpKind::Raw && reply.ident != ident {
                    continue;
                }
                let Some(sent) = outstanding.remove(&reply.seq) else {
                    continue; // a duplicate, or one we gave up on
                };
                let rtt = sent.elapsed();
                if rtt > opts.timeout {
                    continue;
                }
                stats.received += 1;
                stats.rtts.push(rtt);
                let ttl = reply.ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
                writeln!(
                    out,
                    "{} bytes from {target}: icmp_seq={}{ttl} time={:.3} ms",
                    reply.len,
                    reply.seq,
                    rtt.as_secs_f64() * 1e3
                )
                .and_then(|()| out.flush())
                .map_err(|source| Error::Stdio { what: "write standard output", source })?;
            }
        }
    }
    stats.elapsed = last_sent.duration_since(started);
    Ok(stats)
}

/// `sendto(2)` through the reactor.
async fn send(pinger: &Pinger, packet: &[u8], dest: &SockAddr) -> io::Result<()> {
    loop {
        let mut ready = pinger.socket.writable().await?;
        match ready.try_io(|fd| fd.get_ref().send_to(packet, dest)) {
            Ok(result) => return result.map(drop),
            Err(_would_block) => continue,
        }
    }
}

/// `recvfrom(2)` through the reactor, with nix's safe wrapper (socket2's
/// takes uninitialized memory, which would need `unsafe` here).
async fn recv(pinger: &Pinger, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
    use nix::sys::socket::{recvfrom, SockaddrStorage};
    loop {
        let mut ready = pinger.socket.readable().await?;
        let result = ready.try_io(|fd| {
            recvfrom::<SockaddrStorage>(fd.get_ref().as_raw_fd(), buf).map_err(io::Error::from)
        });
        match result {
            Ok(Ok((n, from))) => {
                let ip = from.and_then(|a| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(IpAddr::V4(v4.ip()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                    }
                });
                return Ok((n, ip));
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_read_like_ping() {
        let stats = Statistics {
            host: "127.0.0.1".into(),
            transmitted: 3,
            received: 2,
            elapsed: Duration::from_millis(2003),
            rtts: vec![Duration::from_micros(100), Duration::from_micros(300)],
        };
        assert_eq!(
            stats.to_string(),
            "--- 127.0.0.1 ping statistics ---\n\
             3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms\n\
             rtt min/avg/max/mdev = 0.100/0.200/0.300/0.100 ms"
        );
        let none = Statistics {
            received: 0,
            rtts: Vec::new(),
            ..stats
        };
        assert!(none.to_string().ends_with("100% packet loss, time 2003ms"));
    }

    #[test]
    fn the_refusal_names_the_sysctl() {
        let line = not_permitted(&[
            (IcmpKind::Datagram, io::Error::from_raw_os_error(13)),
            (IcmpKind::Raw, io::Error::from_raw_os_error(1)),
        ]);
        assert!(!line.contains('\n'));
        assert!(line.contains("net.ipv4.ping_group_range"), "{line}");
        assert!(line.contains("CAP_NET_RAW"), "{line}");
        assert!(line.contains("sysctl -w"), "{line}");
    }
}
