//! The `sockit` command: parses arguments, sets up logging and the runtime,
//! runs the library, and turns the result into an exit status.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let log_guard = sockit::logging::init(cli.verbosity());
    let runtime = if cli.command.wants_multi_thread() {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let result = match runtime {
        Ok(runtime) => runtime.block_on(cli.command.run()),
        Err(err) => Err(sockit::Error::Unsupported(format!(
            "cannot start the async runtime: {err}"
        ))),
    };
    // Flush queued log lines before the error, so they come out in order.
    drop(log_guard);
    match result {
        Ok(code) => code,
        // ncat's convention: 2 for a usage error (clap exits 2 for those it
        // finds while parsing; these are the ones found after), 1 for a
        // runtime failure.
        Err(err @ sockit::Error::Usage(_)) => {
            eprintln!("sockit: error: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("sockit: error: {err}");
            ExitCode::FAILURE
        }
    }
}
