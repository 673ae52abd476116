//! The only notion of time in the pure core: a monotonic instant in milliseconds.
//!
//! The agent reads its monotonic clock and passes the value in; the simulator passes virtual time.
//! Nothing in this crate reads a clock.

use serde::{Deserialize, Serialize};

/// A point on the agent's monotonic clock, in milliseconds since an arbitrary origin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct MonoTime(pub u64);

impl MonoTime {
    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: u64) -> MonoTime {
        MonoTime(self.0.saturating_add(ms))
    }

    /// This instant minus `ms` milliseconds (saturating at zero).
    pub fn minus_ms(self, ms: u64) -> MonoTime {
        MonoTime(self.0.saturating_sub(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: MonoTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Parses an ISO 8601 / RFC 3339 time with a zone (`2026-12-02T15:00:00+00:00`,
/// `2026-12-02 15:00:00.123Z`, `...+0100`) into milliseconds since the Unix epoch. A
/// scheduled switchover's `scheduled_at` is written by people and by other agents; the core
/// compares it with the observation's wall clock. `None` for anything else, including a time
/// without a zone (Patroni refuses those as well).
// Every number comes from at most four digits (the fraction: three), so none of the sums and
// products below can overflow an i64, nor the indices a usize.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from.checked_add(len)?)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 16 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute) = (num(11, 2)?, num(14, 2)?);
    let mut i = 16;
    let mut second = 0;
    let mut millis = 0;
    if b.get(i) == Some(&b':') {
        second = num(i + 1, 2)?;
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let frac = s.get(start..i)?;
            if frac.is_empty() {
                return None;
            }
            let padded: String = frac.chars().chain("000".chars()).take(3).collect();
            millis = padded.parse().ok()?;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') => {
            let rest = s.get(i + 1..)?;
            let (h, m) = match rest.len() {
                2 => (num(i + 1, 2)?, 0),
                4 => (num(i + 1, 2)?, num(i + 3, 2)?),
                5 if rest.as_bytes().get(2) == Some(&b':') => (num(i + 1, 2)?, num(i + 4, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 60 + m;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[usize::try_from(month - 1).ok()?]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::parse_iso8601_ms;

    #[test]
    fn iso_times_with_a_zone_parse_to_epoch_milliseconds() {
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_iso8601_ms("2026-12-02T15:00:00.250+01:00"),
            Some(1_796_220_000_250)
        );
        assert_eq!(
            parse_iso8601_ms("2026-12-02 14:00:00.250000+0000"),
            Some(1_796_220_000_250)
        );
        assert_eq!(
            parse_iso8601_ms("2024-02-29T00:00:00-05"),
            Some(1_709_182_800_000)
        );
    }

    #[test]
    fn times_without_a_zone_or_malformed_do_not_parse() {
        for s in [
            "",
            "2026-12-02T15:00:00",
            "2026-13-02T15:00:00Z",
            "2025-02-29T15:00:00Z",
            "2026-12-02T25:00:00Z",
            "tomorrow",
            "2026-12-02T15:00:00+1",
            "2026-12-02T15:00:00Zjunk",
            "２０２６-12-02T15:00:00Z",
        ] {
            assert_eq!(parse_iso8601_ms(s), None, "{s}");
        }
    }
}
