//! The PORTS argument of `sockit scan`: `80`, `1-1024`,
//! `22,80,8000-8100`, or `-` for every port.

use std::fmt;
use std::str::FromStr;

/// What a user may type as PORTS, for error messages.
pub const ACCEPTED_PORTS: &str =
    "expected PORT (80), FIRST-LAST (1-1024), a comma-separated list of those \
     (22,80,8000-8100), or - for 1-65535";

/// A set of ports to scan, in ascending order, each once.
///
/// `Display` writes the compact form (`22,80,8000-8100`), which parses
/// back to the same set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortList {
    ports: Vec<u16>,
}

/// Why a string is not a port list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ports '{input}': {reason}; {ACCEPTED_PORTS}")]
pub struct ParsePortsError {
    input: String,
    reason: String,
}

impl ParsePortsError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        ParsePortsError {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

impl PortList {
    /// Every port, 1 to 65535 (what `-` means). Port 0 cannot be
    /// connected to, so it is never scanned.
    pub fn all() -> PortList {
        PortList {
            ports: (1..=u16::MAX).collect(),
        }
    }

    /// The ports given, sorted, each once.
    ///
    /// # Errors
    ///
    /// When the list is empty or holds port 0.
    pub fn new(ports: impl IntoIterator<Item = u16>) -> Result<PortList, ParsePortsError> {
        let mut ports: Vec<u16> = ports.into_iter().collect();
        ports.sort_unstable();
        ports.dedup();
        match ports.first() {
            None => Err(ParsePortsError::new("", "no ports")),
            Some(0) => Err(ParsePortsError::new("0", "port 0 cannot be scanned")),
            Some(_) => Ok(PortList { ports }),
        }
    }

    /// How many ports there are (at least 1).
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Always false: a port list holds at least one port.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The ports, ascending.
    pub fn as_slice(&self) -> &[u16] {
        &self.ports
    }
}

impl FromStr for PortList {
    type Err = ParsePortsError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParsePortsError::new(input, reason);
        if input == "-" {
            return Ok(PortList::all());
        }
        if input.trim().is_empty() {
            return Err(err("no ports given".into()));
        }
        let mut ports = Vec::new();
        for item in input.split(',') {
            if item.is_empty() {
                return Err(err("an empty item between commas".into()));
            }
            match item.split_once('-') {
                Some((first, last)) => {
                    let first = port(input, first, "the first port of a range")?;
                    let last = port(input, last, "the last port of a range")?;
                    if first > last {
                        return Err(err(format!(
                            "range {item} runs backwards: write {last}-{first}"
                        )));
                    }
                    ports.extend(first..=last);
                }
                None => ports.push(port(input, item, "a port")?),
            }
        }
        PortList::new(ports).map_err(|e| err(e.reason))
    }
}

/// One port number, 1 to 65535.
fn port(input: &str, text: &str, what: &str) -> Result<u16, ParsePortsError> {
    if text.is_empty() {
        return Err(ParsePortsError::new(input, format!("{what} is missing")));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParsePortsError::new(
            input,
            format!("'{text}' is not a port number"),
        ));
    }
    match text.parse::<u16>() {
        Ok(0) => Err(ParsePortsError::new(input, "port 0 cannot be scanned")),
        Ok(port) => Ok(port),
        Err(_) => Err(ParsePortsError::new(
            input,
            format!("port {text} is out of range 1-65535"),
        )),
    }
}

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first_item = true;
        let mut i = 0;
        while i < self.ports.len() {
            let start = self.ports[i];
            let mut end = start;
            while i + 1 < self.ports.len() && self.ports[i + 1] == end.wrapping_add(1) {
                i += 1;
                end = self.ports[i];
            }
            if !first_item {
                f.write_str(",")?;
            }
            first_item = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(text: &str) -> Vec<u16> {
        text.parse::<PortList>()
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .ports
    }

    fn error(text: &str) -> String {
        match text.parse::<PortList>() {
            Ok(list) => panic!("{text} parsed as {list}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_accepted_form_parses() {
        assert_eq!(ports("80"), [80]);
        assert_eq!(ports("1-3"), [1, 2, 3]);
        assert_eq!(ports("22,80,8000-8002"), [22, 80, 8000, 8001, 8002]);
        assert_eq!(ports("65535"), [65535]);
        assert_eq!(ports("7-7"), [7]);
        let all = ports("-");
        assert_eq!(all.len(), 65535);
        assert_eq!((all[0], all[65534]), (1, 65535));
    }

    #[test]
    fn ports_are_sorted_and_each_scanned_once() {
        assert_eq!(ports("80,22,80,20-23"), [20, 21, 22, 23, 80]);
    }

    #[test]
    fn malformed_lists_name_the_problem_and_the_accepted_forms() {
        for (text, reason) in [
            ("", "no ports given"),
            ("0", "port 0 cannot be scanned"),
            ("0-10", "port 0 cannot be scanned"),
            ("65536", "port 65536 is out of range 1-65535"),
            ("http", "'http' is not a port number"),
            ("80,", "an empty item between commas"),
            (",80", "an empty item between commas"),
            ("1-", "the last port of a range is missing"),
            ("-80", "the first port of a range is missing"),
            ("100-80", "range 100-80 runs backwards: write 80-100"),
            ("1-2-3", "'2-3' is not a port number"),
            (" 80", "' 80' is not a port number"),
            ("+80", "'+80' is not a port number"),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("invalid ports '{text}': {reason}; expected")),
                "{text}: {message}"
            );
            assert!(message.ends_with("or - for 1-65535"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn display_writes_the_compact_form_that_parses_back() {
        for text in ["80", "22,80,8000-8100", "1-65535", "1,3,5-6,65535"] {
            let list: PortList = text.parse().unwrap();
            assert_eq!(list.to_string(), text);
            assert_eq!(list.to_string().parse::<PortList>().unwrap(), list);
        }
    }
}
