//! `containerd.io/gc.expire`: an RFC 3339 time after which a lease (or an
//! image) no longer holds anything.
//!
//! containerd parses the value with Go's `time.RFC3339` layout and ignores a
//! value it cannot parse (the object then never expires). The parser here
//! accepts the same shape: `YYYY-MM-DDTHH:MM:SS`, optional fractional
//! seconds, then `Z` or a `±HH:MM` offset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether an object labelled `containerd.io/gc.expire` = `value` has
/// expired at `now`. An unparsable value never expires, as in containerd.
pub(crate) fn expired(value: &str, now: SystemTime) -> bool {
    match parse_rfc3339(value) {
        Some(at) => now > at,
        None => {
            tracing::info!(value, "ignoring invalid containerd.io/gc.expire value");
            false
        }
    }
}

/// Parses an RFC 3339 timestamp; `None` if it is not one.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let (nanos, rest) = fraction(&b[19..])?;
    let offset = zone(rest)?;
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset;
    let since = Duration::new(secs.unsigned_abs(), nanos);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(since)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// Optional `.fraction`: the nanoseconds and what follows.
fn fraction(b: &[u8]) -> Option<(u32, &[u8])> {
    let Some(rest) = b.strip_prefix(b".") else {
        return Some((0, b));
    };
    let len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let mut nanos = 0u32;
    for i in 0..9 {
        let digit = rest.get(i).filter(|_| i < len).map_or(0, |c| c - b'0');
        nanos = nanos * 10 + u32::from(digit);
    }
    Some((nanos, &rest[len..]))
}

/// `Z` or `±HH:MM`: the offset from UTC in seconds.
fn zone(b: &[u8]) -> Option<i64> {
    match b {
        [b'Z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3_600 + minutes * 60;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => None,
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<i64> {
        parse_rfc3339(s).map(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        })
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(secs("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(secs("2024-02-29T14:00:00+02:00"), Some(1_709_208_000));
        assert_eq!(secs("2024-02-29T11:30:00-00:30"), Some(1_709_208_000));
        assert_eq!(secs("1969-12-31T23:59:59Z"), Some(-1));
        let t = parse_rfc3339("2001-09-09T01:46:40.5Z").expect("fraction");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).expect("after epoch"),
            Duration::new(1_000_000_000, 500_000_000)
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "tomorrow",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn expiry_compares_with_now_and_ignores_garbage() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(expired("1970-01-01T00:00:01Z", now));
        assert!(!expired("1970-01-01T01:00:00Z", now));
        assert!(!expired("not a time", now));
    }
}
