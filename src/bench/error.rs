//! What `sockit bench` reports when its own input is wrong: a flag that does
//! not parse, a file it cannot read or write, a saved run that is not one.

use std::io;
use std::path::PathBuf;

/// An error of `sockit bench`'s input or output files.
///
/// `Display` is one line: the flag or file, what was wrong, and what was
/// expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A flag's value does not parse (`--rate`, `--stages`, `--slo`).
    #[error("invalid {flag} '{input}': {reason}; expected {expected}")]
    Parse {
        /// The flag, as written on the command line.
        flag: &'static str,
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
        /// What would be accepted, with an example.
        expected: &'static str,
    },

    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {}", .path.display(), describe(.source))]
    File {
        /// `read`, `write`, `create`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A file is not what the command needs (not a saved run, not a series).
    #[error("{}: {reason}", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, and what was expected.
        reason: String,
    },
}

impl BenchError {
    pub(crate) fn file(action: &'static str, path: &std::path::Path, source: io::Error) -> Self {
        BenchError::File {
            action,
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn format(path: &std::path::Path, reason: impl Into<String>) -> Self {
        BenchError::Format {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The OS message without Rust's ` (os error N)` suffix, lower-cased first
/// letter, as the crate's other errors show it.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text
        .find(" (os error")
        .map_or(&text[..], |cut| &text[..cut]);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
