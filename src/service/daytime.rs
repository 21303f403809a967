//! The daytime service (RFC 867): the date and time as one line of text,
//! then close.
//!
//! The RFC leaves the format open and suggests
//! `Weekday, Month Day, Year HH:MM:SS-ZONE`; sockit writes that, in UTC:
//! `Wednesday, November 25, 2026 22:18:14-UTC\r\n`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::conn::{Conn, ConnReport, Connection};
use crate::service::Service;

/// The `daytime` service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Daytime;

impl Service for Daytime {
    async fn serve<C: Connection>(&self, mut conn: Conn<C>) -> ConnReport {
        let mut line = Vec::new();
        push_daytime(&mut line, SystemTime::now());
        let mut report = ConnReport::default();
        if conn.write_all(&line).await.is_ok() {
            report.requests = 1;
            // Whatever the client sent is ignored; drain it so the close
            // is a FIN, not a RST that could destroy the line.
            conn.linger_close().await;
        }
        report
    }

    fn reply_to_datagram(&self, _datagram: &[u8], reply: &mut Vec<u8>) -> bool {
        push_daytime(reply, SystemTime::now());
        true
    }
}

const WEEKDAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Appends `Weekday, Month Day, Year HH:MM:SS-UTC\r\n` for `when`.
pub fn push_daytime(out: &mut Vec<u8>, when: SystemTime) {
    let secs = when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = WEEKDAYS[(days % 7) as usize]; // 1970-01-01 was a Thursday
    out.extend_from_slice(
        format!(
            "{weekday}, {} {day}, {year} {:02}:{:02}:{:02}-UTC\r\n",
            MONTHS[(month - 1) as usize],
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
        .as_bytes(),
    );
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01, by
/// Howard Hinnant's `civil_from_days` (proleptic Gregorian calendar).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        let mut out = Vec::new();
        push_daytime(&mut out, UNIX_EPOCH + Duration::from_secs(secs));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0), "Thursday, January 1, 1970 00:00:00-UTC\r\n");
        // RFC 867's own example day, 1982-02-22 (a Monday), 17:37:43.
        assert_eq!(
            at(383_247_463),
            "Monday, February 22, 1982 17:37:43-UTC\r\n"
        );
        // A leap day.
        assert_eq!(
            at(951_782_400),
            "Tuesday, February 29, 2000 00:00:00-UTC\r\n"
        );
        assert_eq!(
            at(1_795_648_694),
            "Wednesday, November 25, 2026 23:18:14-UTC\r\n"
        );
    }
}
