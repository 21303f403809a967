//! Standard input and output bridged to a socket: the heart of `sockit
//! listen` and `sockit connect` (netcat).
//!
//! Stream transports (TCP, Unix stream, seqpacket) go through
//! [`bridge_stream`], datagram transports (UDP, Unix datagram) through
//! [`bridge_datagram`]. Both take a [`Stdio`], which reads standard input
//! and writes standard output on two threads, so the socket side is async
//! and neither terminal nor pipe is ever switched to non-blocking mode.
//!
//! # How a stream bridge ends
//!
//! netcat users expect half-close to work both ways:
//! 1. end of standard input → `shutdown(SHUT_WR)`: the peer sees end of
//!    stream, and sockit keeps printing what the peer sends;
//! 2. end of stream from the peer → nothing more is written to standard
//!    output, and sockit keeps sending standard input;
//! 3. the bridge ends once both have happened (OpenBSD `nc -N` behaves the
//!    same way for a listener, and `ncat` when its stdin ends);
//! 4. a send that fails because the peer has closed altogether (`EPIPE`,
//!    `ECONNRESET`) ends the sending side quietly, as in netcat: input left
//!    over has no reader. The receiving side still decides how the bridge
//!    ends: end of stream is a clean close, a reset before it an error.
//!
//! Three things end it earlier: [`BridgeOptions::end_on_peer_eof`] (the
//! CLI sets it when standard input is a terminal, where waiting for the
//! user to press Ctrl-D after the peer has gone would only puzzle them); a
//! closed standard output (`sockit connect … | head`), which ends quietly;
//! and [`BridgeOptions::idle_timeout`].

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::{Error, Result};

mod connect;
mod datagram;
mod listen;
mod stdio;

pub use connect::{connect, ConnectOptions};
pub use listen::Listening;

pub use datagram::{accept_first_datagram, bridge_datagram, Datagram};
pub use stdio::{Framing, Stdio, QUEUE_DEPTH};

use stdio::{Chunk, WriteError};

/// Bytes per `read(2)` of standard input and of a stream socket.
/// Default is 64 KiB, measured: over loopback on a 2-core EPYC VM, 64 KiB
/// chunks cost the least CPU per byte moved (1.60 s for 4 × 256 MiB,
/// against 1.76 s at 32 KiB, 2.16 s at 128 KiB and 1.96 s for OpenBSD
/// `nc`'s 16 KiB): fewer system calls than smaller chunks, while the data
/// is still in cache for the copy into the socket, unlike larger ones.
pub const DEFAULT_CHUNK: usize = 64 * 1024;

/// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers):
/// the chunk size for datagram transports, so one chunk fits one datagram.
pub const MAX_DATAGRAM: usize = 65_507;

/// How a bridge behaves. `Default` gives the defaults listed per field.
#[derive(Debug, Clone, Default)]
pub struct BridgeOptions {
    /// End as soon as the peer ends its stream, even if standard input has
    /// not ended. Default is `false` (half-close: keep sending).
    pub end_on_peer_eof: bool,
    /// End when no data has moved either way for this long. Default is
    /// `None` (wait forever). On datagram transports, which have no end of
    /// stream, this is what ends a bridge whose input has ended.
    pub idle_timeout: Option<Duration>,
}

/// How a bridge ended, when it ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both directions finished: input ended and the peer closed (or, with
    /// [`BridgeOptions::end_on_peer_eof`], the peer closed).
    Closed,
    /// Standard output was closed by its reader (`EPIPE`); sockit stops
    /// quietly, as ripgrep does under `| head`.
    OutputClosed,
    /// Nothing moved for [`BridgeOptions::idle_timeout`].
    Idle,
}

/// What went wrong on which side, before the peer's address is attached.
#[derive(Debug)]
enum Failure {
    Send(io::Error),
    Receive(io::Error),
    Stdin(io::Error),
    Stdout(io::Error),
}

impl Failure {
    fn into_error(self, peer: &str) -> Error {
        let io = |what, source| Error::Io {
            what,
            addr: peer.to_owned(),
            source,
        };
        match self {
            Failure::Send(e) => io("sending to", e),
            Failure::Receive(e) => io("receiving from", e),
            Failure::Stdin(source) => Error::Stdio {
                what: "read standard input",
                source,
            },
            Failure::Stdout(source) => Error::Stdio {
                what: "write standard output",
                source,
            },
        }
    }
}

/// Whether a send failed because the peer has closed the connection
/// (`EPIPE`, or `ECONNRESET` when its close reset it).
fn is_peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

/// What the socket → stdout direction finished with.
enum Down {
    PeerEof,
    OutputClosed,
}

/// Bridges `stdio` and a connected stream until both directions end (see
/// the [module docs](self) for the exact rules).
///
/// `peer` names the other end in error messages.
///
/// # Errors
///
/// [`Error::Io`] when sending or receiving fails (a reset connection while
/// the peer is still sending, for instance), [`Error::Stdio`] when reading
/// standard input or writing standard output fails with anything but a
/// broken pipe.
///
/// # Examples
///
/// ```no_run
/// use sockit::bridge::{bridge_stream, BridgeOptions, Framing, Stdio, DEFAULT_CHUNK};
///
/// # async fn demo() -> sockit::Result<()> {
/// let stream = tokio::net::TcpStream::connect("127.0.0.1:9000").await.map_err(|source| {
///     sockit::Error::Connect { addr: "127.0.0.1:9000".into(), source }
/// })?;
/// let mut stdio = Stdio::process(Framing::Chunks(DEFAULT_CHUNK), DEFAULT_CHUNK)
///     .expect("standard input and output are open");
/// bridge_stream(stream, &mut stdio, &BridgeOptions::default(), "127.0.0.1:9000").await?;
/// # Ok(()) }
/// ```
pub async fn bridge_stream<S>(
    stream: S,
    stdio: &mut Stdio,
    opts: &BridgeOptions,
    peer: &str,
) -> Result<End>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let Stdio { input, output } = stdio;
    let last_move = Cell::new(Instant::now());

    let up = async {
        loop {
            match input.next().await {
                Chunk::Data(buf, len) => {
                    let sent = wr.write_all(&buf[..len]).await;
                    input.recycle(buf);
                    sent.map_err(Failure::Send)?;
                    last_move.set(Instant::now());
                }
                Chunk::Eof => {
                    // Half-close: the peer sees the end of our data.
                    return match wr.shutdown().await {
                        Err(e) if !is_peer_gone(&e) => Err(Failure::Send(e)),
                        _ => Ok(()),
                    };
                }
                Chunk::Err(e) => return Err(Failure::Stdin(e)),
            }
        }
    };
    let down = async {
        loop {
            let mut buf = output.buffer();
            let n = rd.read(&mut buf).await.map_err(Failure::Receive)?;
            if n == 0 {
                return Ok(Down::PeerEof);
            }
            last_move.set(Instant::now());
            match output.write(buf, n).await {
                Ok(()) => {}
                Err(WriteError::Closed) => return Ok(Down::OutputClosed),
                Err(WriteError::Io(e)) => return Err(Failure::Stdout(e)),
            }
        }
    };
    let end = run_both(up, down, opts, &last_move).await;
    finish(end, output, peer).await
}

/// Drives both directions of a bridge in this task, by the rules in the
/// module docs.
async fn run_both(
    up: impl Future<Output = std::result::Result<(), Failure>>,
    down: impl Future<Output = std::result::Result<Down, Failure>>,
    opts: &BridgeOptions,
    last_move: &Cell<Instant>,
) -> std::result::Result<End, Failure> {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let idle = opts.idle_timeout;
    let far = Duration::from_secs(86_400 * 365);
    let sleep = tokio::time::sleep(idle.unwrap_or(far));
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            result = &mut up, if !up_done => match result {
                Ok(()) => up_done = true,
                // The peer has closed: what we still had to say has no
                // reader, which is how netcat ends too. The receiving side
                // then tells a clean close (end of stream) from a crash
                // (reset); whichever select polls first, the outcome is
                // the same.
                Err(Failure::Send(e)) if is_peer_gone(&e) => up_done = true,
                Err(failure) => return Err(failure),
            },
            result = &mut down, if !down_done => match result? {
                Down::PeerEof => {
                    down_done = true;
                    if opts.end_on_peer_eof {
                        return Ok(End::Closed);
                    }
                }
                Down::OutputClosed => return Ok(End::OutputClosed),
            },
            () = &mut sleep, if idle.is_some() => {
                let deadline = last_move.get() + idle.unwrap_or(far);
                if deadline <= Instant::now() {
                    return Ok(End::Idle);
                }
                sleep.as_mut().reset(deadline);
            }
        }
        if up_done && down_done {
            return Ok(End::Closed);
        }
    }
}

/// Flushes standard output and turns a failure into the library's error.
async fn finish(
    end: std::result::Result<End, Failure>,
    output: &mut stdio::Output,
    peer: &str,
) -> Result<End> {
    let end = end.map_err(|f| f.into_error(peer))?;
    if end == End::OutputClosed {
        return Ok(end);
    }
    match output.flush().await {
        Ok(()) => Ok(end),
        Err(WriteError::Closed) => Ok(End::OutputClosed),
        Err(WriteError::Io(source)) => Err(Error::Stdio {
            what: "write standard output",
            source,
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An in-memory stdout for bridge tests.
    #[derive(Clone, Default)]
    pub(crate) struct Sink(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A pipe as files: input that ends only when the writer is dropped.
    fn pipe() -> (std::fs::File, std::fs::File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (r.into(), w.into())
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[tokio::test]
    async fn stream_bridge_moves_both_ways_and_half_closes() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let sink = Sink::default();
        let sent = pattern(300_000);
        let mut stdio = Stdio::new(
            io::Cursor::new(sent.clone()),
            sink.clone(),
            Framing::Chunks(8192),
            8192,
        );
        let reply = pattern(200_000);
        let peer = {
            let reply = reply.clone();
            async move {
                let mut got = Vec::new();
                // Our input ends first: the peer reads to end of stream,
                // and only then sends its whole reply and closes.
                theirs.read_to_end(&mut got).await.unwrap();
                theirs.write_all(&reply).await.unwrap();
                theirs.shutdown().await.unwrap();
                got
            }
        };
        let opts = BridgeOptions::default();
        let (end, got) = tokio::join!(bridge_stream(ours, &mut stdio, &opts, "peer"), peer);
        assert_eq!(end.unwrap(), End::Closed);
        assert!(got == sent, "peer got {} bytes", got.len());
        assert!(*sink.0.lock().unwrap() == reply);
    }

    #[tokio::test]
    async fn stream_bridge_keeps_sending_after_the_peer_half_closes() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        // The input never ends until the peer has closed its side: a pipe
        // whose writer we hold.
        let (reader, mut writer) = pipe();
        let sink = Sink::default();
        let mut stdio = Stdio::new(reader, sink.clone(), Framing::Chunks(8192), 8192);
        let peer = async move {
            theirs.write_all(b"bye").await.unwrap();
            theirs.shutdown().await.unwrap();
            // Now keep reading what the bridge still sends.
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        };
        let feeder = std::thread::spawn({
            let sink = sink.clone();
            move || {
                use std::io::Write;
                // Wait until the peer's bytes came through, then send ours.
                while sink.0.lock().unwrap().len() < 3 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                writer.write_all(b"after your eof").unwrap();
            }
        });
        let opts = BridgeOptions::default();
        let (end, got) = tokio::join!(bridge_stream(ours, &mut stdio, &opts, "peer"), peer);
        feeder.join().unwrap();
        assert_eq!(end.unwrap(), End::Closed);
        assert_eq!(got, b"after your eof");
        assert_eq!(&*sink.0.lock().unwrap(), b"bye");
    }

    #[tokio::test]
    async fn a_peer_that_closes_early_ends_the_bridge_cleanly() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        // Far more input than the peer will read.
        let mut stdio = Stdio::new(
            io::Cursor::new(pattern(1 << 20)),
            Sink::default(),
            Framing::Chunks(4096),
            4096,
        );
        let peer = async move {
            let mut first = [0u8; 100];
            theirs.read_exact(&mut first).await.unwrap();
            drop(theirs);
        };
        let opts = BridgeOptions::default();
        let (end, ()) = tokio::join!(bridge_stream(ours, &mut stdio, &opts, "peer"), peer);
        assert_eq!(end.unwrap(), End::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_ends_a_silent_bridge() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let (reader, _writer) = pipe();
        let mut stdio = Stdio::new(reader, Sink::default(), Framing::Chunks(64), 64);
        let opts = BridgeOptions {
            idle_timeout: Some(Duration::from_secs(3)),
            ..BridgeOptions::default()
        };
        let started = Instant::now();
        let end = bridge_stream(ours, &mut stdio, &opts, "peer")
            .await
            .unwrap();
        assert_eq!(end, End::Idle);
        assert!(started.elapsed() >= Duration::from_secs(3));
    }
}
