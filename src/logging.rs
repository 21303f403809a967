//! Log output: `tracing` events as plain lines on stderr, written by a
//! background thread so a slow terminal never stalls a connection.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How much to log, from `-q` / `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Warnings, errors and status lines; no per-connection lines (`-q`).
    Quiet,
    /// Status lines and one line per connection (the default).
    #[default]
    Normal,
    /// Also each request, escaped and cut to 1 KiB (`-v`).
    Requests,
    /// Debug events (`-vv`).
    Debug,
    /// Everything (`-vvv`).
    Trace,
}

impl Verbosity {
    /// `EnvFilter` directives for this level. Per-connection lines use the
    /// target `sockit::conn` and requests `sockit::request`, so each can be
    /// switched on its own.
    pub fn directives(self) -> &'static str {
        match self {
            Verbosity::Quiet => "info,sockit::conn=off,sockit::request=off",
            Verbosity::Normal => "info,sockit::request=off",
            Verbosity::Requests => "info",
            Verbosity::Debug => "debug",
            Verbosity::Trace => "trace",
        }
    }
}

/// Keeps the log writer thread alive; dropping it flushes what is queued.
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber: plain lines on stderr at `verbosity`,
/// or as `RUST_LOG` says when it is set.
///
/// Lines go through a non-blocking writer: connection tasks format a line
/// and queue it; a thread writes it. When the queue is full (a terminal
/// that cannot keep up with 100,000 connections a second), lines are
/// dropped rather than slowing the server.
pub fn init(verbosity: Verbosity) -> LogGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("sockit-log")
        // Buffered: the writer thread flushes whenever its queue runs dry,
        // so a burst of lines costs one write(2), and a quiet server's lines
        // still appear at once.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|env| EnvFilter::try_new(env).ok())
        .unwrap_or_else(|| EnvFilter::new(verbosity.directives()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(PlainFormat)
        .try_init();
    LogGuard(guard)
}

/// `message key=value…`, with `warning:`/`error:` in front where it
/// matters, and span fields (the connection's peer) at debug and trace.
#[derive(Debug)]
struct PlainFormat;

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        match level {
            Level::ERROR => writer.write_str("error: ")?,
            Level::WARN => writer.write_str("warning: ")?,
            Level::INFO => {}
            Level::DEBUG => writer.write_str("debug: ")?,
            Level::TRACE => writer.write_str("trace: ")?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        if level >= Level::DEBUG {
            if let Some(scope) = ctx.event_scope() {
                for span in scope.from_root() {
                    let extensions = span.extensions();
                    if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                        if !fields.is_empty() {
                            write!(writer, " [{} {}]", span.name(), fields)?;
                        }
                    }
                }
            }
        }
        writeln!(writer)
    }
}

/// `n` and `noun`, in the plural unless `n` is 1, for summary lines
/// ("served 1 connection, 2 requests, 0 errors"). `noun` is the singular;
/// the plural adds an `s`, which holds for every noun the summaries use.
pub(crate) fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn counted_is_singular_only_for_one() {
        assert_eq!(counted(0u64, "error"), "0 errors");
        assert_eq!(counted(1u64, "connection"), "1 connection");
        assert_eq!(counted(2u64, "request"), "2 requests");
    }
}
