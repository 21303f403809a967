//! Scan results as people and programs read them: one line per port.

use super::{PortResult, Summary};

/// `127.0.0.1:22 tcp open`, `[::1]:53 udp open|filtered`: the address,
/// the transport and the state, as `nc -zv` names the port it reached.
pub fn text_line(result: &PortResult) -> String {
    format!(
        "{} {} {}",
        result.addr,
        result.protocol.name(),
        result.state
    )
}

/// One JSON object per port, for `--json`:
/// `{"host":"127.0.0.1","port":22,"protocol":"tcp","state":"open","rtt_ms":0.041}`.
/// `rtt_ms` is `null` when nothing answered.
pub fn json_line(result: &PortResult) -> String {
    #[derive(serde::Serialize)]
    struct Line {
        host: std::net::IpAddr,
        port: u16,
        protocol: super::Protocol,
        state: super::PortState,
        rtt_ms: Option<f64>,
    }
    let line = Line {
        host: result.addr.ip(),
        port: result.addr.port(),
        protocol: result.protocol,
        state: result.state,
        rtt_ms: result
            .rtt
            .map(|rtt| (rtt.as_secs_f64() * 1e6).round() / 1e3),
    };
    // Serializing plain fields cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// The closing status line: `scanned 65535 ports in 0.41s: 3 open,
/// 65530 closed, 2 filtered`.
pub fn summary_line(summary: &Summary) -> String {
    let mut line = format!(
        "scanned {} port{} in {:.2}s: {} open, {} closed, {} filtered",
        summary.ports,
        if summary.ports == 1 { "" } else { "s" },
        summary.elapsed.as_secs_f64(),
        summary.open,
        summary.closed,
        summary.filtered,
    );
    if summary.open_filtered > 0 {
        line.push_str(&format!(", {} open|filtered", summary.open_filtered));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{PortState, Protocol};
    use std::time::Duration;

    #[test]
    fn lines_name_address_transport_state_and_rtt() {
        let open = PortResult {
            addr: "127.0.0.1:22".parse().unwrap(),
            protocol: Protocol::Tcp,
            state: PortState::Open,
            rtt: Some(Duration::from_micros(41)),
        };
        assert_eq!(text_line(&open), "127.0.0.1:22 tcp open");
        assert_eq!(
            json_line(&open),
            r#"{"host":"127.0.0.1","port":22,"protocol":"tcp","state":"open","rtt_ms":0.041}"#
        );
        let silent = PortResult {
            addr: "[::1]:53".parse().unwrap(),
            protocol: Protocol::Udp,
            state: PortState::OpenFiltered,
            rtt: None,
        };
        assert_eq!(text_line(&silent), "[::1]:53 udp open|filtered");
        assert!(json_line(&silent).ends_with(r#""state":"open|filtered","rtt_ms":null}"#));
    }
}
