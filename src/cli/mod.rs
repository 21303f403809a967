//! The command line: clap types, and their conversion into library calls.
//! The library never sees clap.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sockit::logging::Verbosity;

mod bench;
mod connect;
mod listen;
mod ping;
mod relay;
mod scan;
mod send;
mod serve;
mod tls;
mod values;

/// Sockets from the shell: the tutorial's hello server and client, done right.
#[derive(Debug, Parser)]
#[command(
    name = "sockit",
    version,
    propagate_version = true,
    after_help = "Exit status: 0 success, 1 runtime failure, 2 usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print only warnings, errors and status lines (no per-connection lines).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Print more: -v each request, -vv debug events, -vvv everything.
    ///
    /// RUST_LOG, when set, overrides both -q and -v with tracing's filter syntax.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a server (the tutorial's hello server by default) on port 8888.
    Serve(serve::ServeArgs),
    /// Send a message and print the reply (the tutorial's client).
    Send(send::SendArgs),
    /// Wait for a peer and bridge stdin/stdout to it (netcat's -l).
    Listen(listen::ListenArgs),
    /// Connect and bridge stdin/stdout to the peer (netcat).
    Connect(connect::ConnectArgs),
    /// Relay every connection on FROM to TO (socat's job), zero-copy where the kernel can.
    Relay(relay::RelayArgs),
    /// Send ICMP echo requests and print the replies, as ping(8).
    Ping(ping::PingArgs),
    /// Load a server with requests and report throughput and latency percentiles.
    Bench(Box<bench::BenchArgs>),
    /// Scan ports: which are open, closed or filtered (the tutorial's connect_ex).
    Scan(scan::ScanArgs),
}

impl Cli {
    /// The log level the flags ask for.
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Requests,
            (false, 2) => Verbosity::Debug,
            (false, _) => Verbosity::Trace,
        }
    }
}

impl Command {
    /// Whether the command wants a multi-threaded runtime (servers do; a
    /// one-shot client does not).
    ///
    /// On a single core (or pinned to one with `taskset`), a server runs on
    /// the current-thread runtime: it has one worker either way, and its
    /// run queue is FIFO, while the multi-thread scheduler's 256-slot local
    /// queue overflows into a global queue polled every 61 tasks, which
    /// made p99 latency with 1,000 connections 5x nginx's (`bench/run`,
    /// c1000 scenario; current-thread halved it at the same req/s).
    pub fn wants_multi_thread(&self) -> bool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        matches!(self, Command::Serve(_) | Command::Relay(_)) && cores > 1
    }

    /// Runs the command to completion.
    pub async fn run(self) -> sockit::Result<ExitCode> {
        match self {
            Command::Serve(args) => serve::run(args).await,
            Command::Send(args) => send::run(args).await,
            Command::Listen(args) => listen::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Ping(args) => ping::run(args).await,
            Command::Relay(args) => relay::run(args).await,
            // Bench starts its own threads, each with its own runtime; this
            // (current-thread) runtime only waits for them.
            Command::Bench(args) => bench::run(*args).await,
            Command::Scan(args) => scan::run(args).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn quiet_and_verbose_conflict() {
        assert!(Cli::try_parse_from(["sockit", "-q", "-v", "serve"]).is_err());
        let cli = Cli::try_parse_from(["sockit", "serve", "-vv"]).unwrap();
        assert_eq!(cli.verbosity(), Verbosity::Debug);
    }
}
