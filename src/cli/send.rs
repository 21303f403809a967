//! `sockit send`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use sockit::client::{self, SendOptions, DEFAULT_MESSAGE};
use sockit::endpoint::{Endpoint, Family};
use sockit::escape::Escaped;
use sockit::Error;

use super::tls::ClientTlsArgs;
use super::values;

/// Arguments of `sockit send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Where to send: PORT, HOST:PORT, [IPV6]:PORT, udp://HOST:PORT, unix:/path,
    /// unix:@name, unix-dgram:/path or seqpacket:/path (a bare PORT means localhost).
    ///
    /// Streams: the data is sent, the write side shut, and the reply read
    /// until the server closes. Datagrams: the data goes as one datagram and
    /// one datagram is read back. Seqpacket: one message out, one back.
    #[arg(value_name = "ADDR", default_value = "localhost:8888", value_parser = parse_endpoint)]
    addr: Endpoint,

    /// What to send; - reads standard input to its end.
    #[arg(value_name = "DATA", default_value = DEFAULT_MESSAGE)]
    data: String,

    /// Write the reply's bytes to stdout unchanged, instead of "Received b'…'".
    #[arg(long)]
    raw: bool,

    /// Seconds that connecting and each read may take; 0 waits forever
    /// [default: 10, or 2 per attempt for datagrams].
    ///
    /// Like the tutorial's settimeout: a server that never answers gives an
    /// error instead of a hang. Datagrams can be lost, so they get a shorter
    /// wait, and --retries.
    #[arg(long, value_name = "SECS", value_parser = values::duration)]
    timeout: Option<Duration>,

    /// Datagrams only: send again this many times when no reply comes
    /// within --timeout.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,

    /// Stop reading after this many bytes of reply.
    #[arg(long, value_name = "BYTES", value_parser = values::size)]
    max_bytes: Option<usize>,

    /// Connect over IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Connect over IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    #[command(flatten)]
    tls: ClientTlsArgs,
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse()
        .map_err(|e: sockit::endpoint::ParseEndpointError| e.to_string())
}

/// Sends, then prints the reply to stdout.
pub async fn run(args: SendArgs) -> sockit::Result<ExitCode> {
    let data = if args.data == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| Error::Unsupported(format!("cannot read standard input: {e}")))?;
        data
    } else {
        args.data.into_bytes()
    };
    let opts = SendOptions {
        timeout: {
            let datagram = matches!(args.addr, Endpoint::Udp(_) | Endpoint::UnixDgram(_));
            let timeout = args.timeout.unwrap_or(if datagram {
                client::DEFAULT_DATAGRAM_TIMEOUT
            } else {
                client::DEFAULT_TIMEOUT
            });
            (!timeout.is_zero()).then_some(timeout)
        },
        retries: args.retries,
        max_bytes: args.max_bytes,
        family: match (args.ipv4, args.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        },
        tls: args.tls.build(&args.addr)?,
    };
    let reply = client::send(&args.addr, &data, &opts).await?;
    let mut stdout = std::io::stdout().lock();
    let written = if args.raw {
        stdout.write_all(&reply)
    } else {
        writeln!(stdout, "Received b'{}'", Escaped::new(&reply))
    };
    match written.and_then(|()| stdout.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not our failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Unsupported(format!(
            "cannot write to standard output: {e}"
        ))),
        _ => Ok(ExitCode::SUCCESS),
    }
}
