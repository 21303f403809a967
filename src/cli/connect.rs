//! `sockit connect`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use sockit::bridge::{self, ConnectOptions};
use sockit::endpoint::{Endpoint, Family};

use super::listen::{stdio_for, BridgeArgs};
use super::tls::ClientTlsArgs;
use super::values;

/// Arguments of `sockit connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Where to connect: PORT, HOST:PORT, [IPV6]:PORT, udp://…, unix:/path, unix-dgram:/path, seqpacket:/path.
    ///
    /// A bare PORT means localhost. On datagram transports each read of
    /// stdin (each line with --lines) is one datagram.
    #[arg(value_name = "ADDR", value_parser = values::endpoint)]
    addr: Endpoint,

    /// Seconds connecting may take, per address; 0 waits as long as the OS does.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = values::duration)]
    timeout: Duration,

    /// Connect over IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Connect over IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    #[command(flatten)]
    bridge: BridgeArgs,

    #[command(flatten)]
    tls: ClientTlsArgs,
}

/// Connects and bridges standard input and output until both sides end.
pub async fn run(args: ConnectArgs) -> sockit::Result<ExitCode> {
    let mut stdio = stdio_for(&args.addr, &args.bridge)?;
    let opts = ConnectOptions {
        timeout: (!args.timeout.is_zero()).then_some(args.timeout),
        family: match (args.ipv4, args.ipv6) {
            (true, _) => Some(Family::V4),
            (_, true) => Some(Family::V6),
            _ => None,
        },
        bridge: args.bridge.options(std::io::stdin().is_terminal()),
        tls: args.tls.build(&args.addr)?,
    };
    bridge::connect(&args.addr, &mut stdio, &opts).await?;
    Ok(ExitCode::SUCCESS)
}
