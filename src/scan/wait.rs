//! `--wait-until-open`: probe until the ports accept, for scripts that
//! wait for their server.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Event, Jobs, PortList, PortResult, PortState, ScanOptions};
use crate::Result;

/// How long a port that is not open yet waits before its next probe:
/// 100 ms, so a server is seen within a tenth of a second of its
/// `listen(2)`, at ten probes a second per port.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Probes every port of `ports` on every address of `targets` until each
/// is open or `within` has passed, calling `on_open` as each opens.
/// Returns the addresses still not open (empty: all opened in time).
///
/// 1. A round probes each port not yet open once (no retries), waiting at
///    most `opts.timeout` or what is left of `within`, whichever is less;
/// 2. open ports are reported and dropped from the next round;
/// 3. after [`POLL_INTERVAL`] (or less, to end on time) the next round
///    starts, until none is left or the time is up. One round always
///    runs, even with `within` zero.
///
/// # Errors
///
/// As [`super::scan`].
pub async fn wait_until_open(
    targets: &[SocketAddr],
    ports: &PortList,
    opts: &ScanOptions,
    within: Duration,
    mut on_open: impl FnMut(&PortResult),
) -> Result<Vec<SocketAddr>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut left: Vec<SocketAddr> = targets
        .iter()
        .flat_map(|target| {
            ports.as_slice().iter().map(move |&port| {
                let mut addr = *target;
                addr.set_port(port);
                addr
            })
        })
        .collect();
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let round = ScanOptions {
            timeout: opts.timeout.min(remaining).max(Duration::from_millis(1)),
            retries: 0,
            ..opts.clone()
        };
        let mut opened = Vec::new();
        super::run(Jobs::List(&left), &round, |event| {
            if let Event::Port(result) = event {
                if result.state == PortState::Open {
                    on_open(result);
                    opened.push(result.addr);
                }
            }
        })
        .await?;
        left.retain(|addr| !opened.contains(addr));
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_empty() || remaining.is_zero() {
            return Ok(left);
        }
        tokio::time::sleep(POLL_INTERVAL.min(remaining)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_that_opens_later_is_reported_and_a_closed_one_times_out() {
        // A free port, then a listener on it a little later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let targets = ["127.0.0.1:0".parse().unwrap()];
        let ports = PortList::new([port]).unwrap();
        let opener = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tokio::net::TcpListener::bind(("127.0.0.1", port)).await
        });
        let mut opened = Vec::new();
        let left = wait_until_open(
            &targets,
            &ports,
            &ScanOptions::default(),
            Duration::from_secs(5),
            |result| opened.push(result.addr.port()),
        )
        .await
        .unwrap();
        assert!(left.is_empty());
        assert_eq!(opened, [port]);
        let listener = opener.await.unwrap().unwrap();
        drop(listener);
        let start = std::time::Instant::now();
        let left = wait_until_open(
            &targets,
            &ports,
            &ScanOptions::default(),
            Duration::from_millis(300),
            |_| panic!("nothing listens"),
        )
        .await
        .unwrap();
        assert_eq!(left.len(), 1);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
