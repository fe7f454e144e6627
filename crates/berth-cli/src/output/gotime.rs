//! Timestamps as ctr prints them: Go's `time.Time` in UTC.
//!
//! A missing protobuf timestamp is Go's zero time, `0001-01-01 00:00:00`,
//! because Go converts with `time.Unix(seconds, nanos).UTC()` and prints the
//! zero value when there is nothing to convert.

use berth_client::prost_types::Timestamp;

/// The civil date and time of a timestamp.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: u32,
}

/// Seconds from 0001-01-01 to 1970-01-01 (Go's zero time to the epoch).
const ZERO_TO_UNIX: i64 = -62_135_596_800;

fn civil(ts: Option<&Timestamp>) -> Civil {
    let (seconds, nanos) = match ts {
        Some(ts) => {
            // Normalise out-of-range nanos the way time.Unix does.
            let extra = i64::from(ts.nanos).div_euclid(1_000_000_000);
            let nanos = i64::from(ts.nanos).rem_euclid(1_000_000_000);
            (ts.seconds + extra, nanos as u32)
        }
        None => (ZERO_TO_UNIX, 0),
    };
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (year, month, day) = berth_client::berth_core::time::civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
        nanos,
    }
}

/// Go's `.999999999` fraction: a dot and the nanoseconds without trailing
/// zeros, or nothing at all for a whole second.
fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// `time.RFC3339Nano` in UTC, as JSON shows a `time.Time`:
/// `2026-11-22T06:02:16.457229075Z`.
pub fn rfc3339_nano(ts: Option<&Timestamp>) -> String {
    let c = civil(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        fraction(c.nanos)
    )
}

/// `time.RFC3339` in UTC, to the second: `2026-11-22T06:02:16Z`.
pub fn rfc3339(ts: Option<&Timestamp>) -> String {
    let c = civil(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Today's date in UTC as Go's `2006-01-02` layout writes it.
pub fn today() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(now.as_secs()).unwrap_or(0);
    let c = civil(Some(&Timestamp { seconds, nanos: 0 }));
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// `time.Time.String()` in UTC, as `ctr events` prints an envelope's time:
/// `2026-11-22 06:03:10.7951766 +0000 UTC`.
pub fn go_string(ts: Option<&Timestamp>) -> String {
    let c = civil(ts);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{} +0000 UTC",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        fraction(c.nanos)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn rfc3339_nano_trims_trailing_zeros() {
        // 2026-11-22T06:02:16Z
        let t = ts(1_795_327_336, 457_229_075);
        assert_eq!(rfc3339_nano(Some(&t)), "2026-11-22T06:02:16.457229075Z");
        let t = ts(1_795_327_336, 457_000_000);
        assert_eq!(rfc3339_nano(Some(&t)), "2026-11-22T06:02:16.457Z");
        let t = ts(1_795_327_336, 0);
        assert_eq!(rfc3339_nano(Some(&t)), "2026-11-22T06:02:16Z");
    }

    #[test]
    fn missing_timestamps_are_go_zero_time() {
        assert_eq!(rfc3339_nano(None), "0001-01-01T00:00:00Z");
        assert_eq!(go_string(None), "0001-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn go_string_matches_ctr_events() {
        let t = ts(1_795_327_390, 795_176_600);
        assert_eq!(go_string(Some(&t)), "2026-11-22 06:03:10.7951766 +0000 UTC");
    }

    #[test]
    fn epoch_and_leap_days() {
        assert_eq!(rfc3339_nano(Some(&ts(0, 0))), "1970-01-01T00:00:00Z");
        // 2024-02-29T23:59:59Z
        assert_eq!(
            rfc3339_nano(Some(&ts(1_709_251_199, 1))),
            "2024-02-29T23:59:59.000000001Z"
        );
        assert_eq!(rfc3339_nano(Some(&ts(-1, 0))), "1969-12-31T23:59:59Z");
    }
}
