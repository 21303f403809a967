//! Bytes shown to a person: printable ASCII as is, everything else escaped,
//! as Python's `repr` of `bytes` does (the tutorial prints `repr(data)`).

use std::fmt;

/// Displays bytes escaped, in Python's `b'…'` style but without the quotes,
/// cut after `limit` bytes with a note of how many were left out.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a> {
    bytes: &'a [u8],
    limit: usize,
}

impl<'a> Escaped<'a> {
    /// All of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Escaped {
            bytes,
            limit: usize::MAX,
        }
    }

    /// At most `limit` bytes of `bytes`.
    pub fn truncated(bytes: &'a [u8], limit: usize) -> Self {
        Escaped { bytes, limit }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(self.limit)];
        for &b in shown {
            match b {
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                b'\\' => f.write_str("\\\\")?,
                b'\'' => f.write_str("\\'")?,
                0x20..=0x7e => fmt::Write::write_char(f, b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        let cut = self.bytes.len() - shown.len();
        if cut > 0 {
            write!(f, "… ({cut} more bytes)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_python_repr() {
        assert_eq!(
            Escaped::new(b"Hello, world!\r\n\t\x00\xff'\\").to_string(),
            "Hello, world!\\r\\n\\t\\x00\\xff\\'\\\\"
        );
    }

    #[test]
    fn truncates_with_a_count() {
        assert_eq!(
            Escaped::truncated(b"abcdef", 2).to_string(),
            "ab… (4 more bytes)"
        );
        assert_eq!(Escaped::truncated(b"ab", 2).to_string(), "ab");
    }
}
