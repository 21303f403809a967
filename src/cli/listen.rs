//! `sockit listen`, and the bridge flags it shares with `sockit connect`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tracing::info;

use sockit::bridge::{BridgeOptions, Framing, Listening, Stdio, MAX_DATAGRAM};
use sockit::endpoint::Endpoint;
use sockit::socket::DEFAULT_BACKLOG;
use sockit::Error;

use super::tls::ServerTlsArgs;
use super::values;

/// Arguments of `sockit listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Where to listen: PORT, HOST:PORT, [IPV6]:PORT, udp://…, unix:/path, unix-dgram:/path, seqpacket:/path.
    ///
    /// On datagram transports the first sender becomes the peer. A bare PORT is all interfaces (dual-stack [::], or 0.0.0.0 where IPv6
    /// is unavailable). Port 0 picks a free port; the "Listening on ..."
    /// line on stderr shows which.
    #[arg(value_name = "ADDR", value_parser = values::endpoint)]
    addr: Endpoint,

    /// Keep listening: after a peer is done, wait for the next one, forever.
    ///
    /// Peers are served one at a time; the next waits in the kernel's
    /// backlog meanwhile. Without -k the listening socket closes as soon as
    /// the first peer is accepted.
    #[arg(short, long)]
    keep_open: bool,

    #[command(flatten)]
    bridge: BridgeArgs,

    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// Flags `listen` and `connect` share.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// End after SECS with no data either way (and on datagram transports,
    /// where there is no end of stream, this is how a session ends).
    ///
    /// Without it, a stream session ends when both sides have finished, and
    /// a datagram session runs until interrupted.
    #[arg(short = 'w', long = "idle-timeout", value_name = "SECS", value_parser = values::duration)]
    idle_timeout: Option<Duration>,

    /// On datagram transports, send each line of input as one datagram
    /// (default: each read, which from a terminal is a line anyway).
    #[arg(long)]
    lines: bool,

    /// Bytes per read of stdin and of a stream socket.
    ///
    /// Bigger chunks mean fewer system calls; smaller ones stay in the CPU
    /// cache (64K measured best over loopback). Datagram transports read up
    /// to one datagram (65507 bytes) whatever this says.
    #[arg(long, value_name = "BYTES", default_value = "64K", value_parser = values::size)]
    buffer: usize,

    /// End as soon as the peer closes, even while input goes on.
    ///
    /// By default sockit keeps sending its input to a peer that has closed
    /// only its sending side (half-close), unless input is a terminal.
    #[arg(long)]
    end_on_peer_close: bool,
}

impl BridgeArgs {
    /// The library options, given whether stdin is a terminal: with a
    /// terminal, the session ends when the peer closes, rather than waiting
    /// for a Ctrl-D nobody would think to press.
    pub fn options(&self, stdin_is_terminal: bool) -> BridgeOptions {
        BridgeOptions {
            end_on_peer_eof: self.end_on_peer_close || stdin_is_terminal,
            idle_timeout: self.idle_timeout.filter(|t| !t.is_zero()),
        }
    }
}

/// The process's standard input and output, framed for `endpoint`.
pub fn stdio_for(endpoint: &Endpoint, args: &BridgeArgs) -> sockit::Result<Stdio> {
    let datagram = matches!(endpoint, Endpoint::Udp(_) | Endpoint::UnixDgram(_));
    let framing = match (datagram, args.lines) {
        (true, true) => Framing::Lines(MAX_DATAGRAM),
        (true, false) => Framing::Chunks(MAX_DATAGRAM),
        (false, _) => Framing::Chunks(args.buffer.max(1)),
    };
    let out_chunk = if datagram {
        MAX_DATAGRAM + 1
    } else {
        args.buffer.max(1)
    };
    Stdio::process(framing, out_chunk).map_err(|source| Error::Stdio {
        what: "use standard input and output",
        source,
    })
}

/// Binds, prints the readiness line, and bridges peers.
pub async fn run(args: ListenArgs) -> sockit::Result<ExitCode> {
    // Bytes as they are: no ALPN protocol to offer.
    let tls = args.tls.build(std::slice::from_ref(&args.addr), &[])?;
    let mut listening = Listening::bind(&args.addr, DEFAULT_BACKLOG).await?;
    if let Some(tls) = tls {
        listening = listening.tls(tls)?;
    }
    info!("Listening on {} ...", listening.local_addr());
    let mut stdio = stdio_for(&args.addr, &args.bridge)?;
    let opts = args.bridge.options(std::io::stdin().is_terminal());
    listening.run(&mut stdio, &opts, args.keep_open).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use sockit::bridge::DEFAULT_CHUNK;

    #[test]
    fn the_buffer_default_is_the_library_default() {
        let cli = Cli::try_parse_from(["sockit", "listen", "0"]).unwrap();
        let Command::Listen(args) = cli.command else {
            panic!("not listen");
        };
        assert_eq!(args.bridge.buffer, DEFAULT_CHUNK);
        assert!(!args.keep_open);
    }
}
