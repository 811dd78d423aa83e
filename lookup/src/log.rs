//! Log lines on stderr: `2024-05-01T12:00:00.123Z INFO message`.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn line(level: &str, args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    // Nowhere to report a failing stderr.
    let _ = writeln!(err, "{} {level} {args}", Timestamp::now());
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::line("INFO", format_args!($($t)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::line("WARN", format_args!($($t)*)) };
}

#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::line("ERROR", format_args!($($t)*)) };
}

/// A client-supplied value made safe for one log line: printable ASCII only,
/// at most 128 characters.
pub fn clean(value: &[u8]) -> String {
    value.iter().take(128).map(|&b| if (0x21..0x7f).contains(&b) { b as char } else { '?' }).collect()
}

struct Timestamp(SystemTime);

impl Timestamp {
    fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            since.subsec_millis()
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let t = Timestamp(UNIX_EPOCH + Duration::from_millis(1_714_564_800_123));
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.123Z");
        assert_eq!(Timestamp(UNIX_EPOCH).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn clean_values() {
        assert_eq!(clean(b"req-1\r\nx: y"), "req-1??x:?y");
        assert_eq!(clean(&[b'a'; 500]).len(), 128);
    }
}
