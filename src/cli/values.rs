//! clap value parsers shared by the subcommands.

use std::time::Duration;

/// An endpoint, through the library's one parser.
pub fn endpoint(text: &str) -> Result<sockit::Endpoint, String> {
    text.parse()
        .map_err(|e: sockit::endpoint::ParseEndpointError| e.to_string())
}

/// Seconds as a bare number (`5`, `0.5`) or with a unit (`500ms`, `2m`).
pub fn duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| {
            format!("'{text}' is not a duration: expected seconds ≥ 0, such as 5 or 0.5")
        });
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("'{text}' is not a duration ({e}): expected seconds, such as 5, 0.5 or 500ms")
    })
}

/// A byte count: `8192`, `8K`/`8KiB`, `1M`/`1MiB`, `1G`/`1GiB` (powers of 1024).
pub fn size(text: &str) -> Result<usize, String> {
    let err = || format!("'{text}' is not a size: expected bytes, such as 8192, 8K or 1MiB");
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: usize = number.parse().map_err(|_| err())?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(err()),
    };
    number.checked_mul(1 << shift).ok_or_else(err)
}

/// File permissions in octal: `660`, `0660`, `0o660` (at most `7777`).
pub fn mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "'{text}' is not a file mode: expected octal digits, such as 0660 or 600"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode("0660"), Ok(0o660));
        assert_eq!(mode("600"), Ok(0o600));
        assert_eq!(mode("0o755"), Ok(0o755));
        assert!(mode("0880").unwrap_err().contains("octal"));
        assert!(mode("").is_err());
        assert!(mode("-1").is_err());
        assert!(mode("17777").is_err());
        assert!(mode("rw-").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration("-1").unwrap_err().contains("not a duration"));
        assert!(duration("soon").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("8192"), Ok(8192));
        assert_eq!(size("8K"), Ok(8192));
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("1M"), Ok(1 << 20));
        assert!(size("").is_err());
        assert!(size("8X").is_err());
        assert!(size("K").is_err());
    }
}
