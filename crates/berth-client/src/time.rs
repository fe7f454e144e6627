//! Protobuf timestamps and `SystemTime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// A protobuf timestamp as a `SystemTime` (missing: the epoch).
pub fn from_timestamp(ts: Option<&Timestamp>) -> SystemTime {
    let Some(ts) = ts else {
        return UNIX_EPOCH;
    };
    let nanos = Duration::from_nanos(u64::try_from(ts.nanos).unwrap_or(0));
    match u64::try_from(ts.seconds) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
        Err(_) => UNIX_EPOCH
            .checked_sub(Duration::from_secs(ts.seconds.unsigned_abs()))
            .map_or(UNIX_EPOCH, |t| t + nanos),
    }
}

/// A `SystemTime` as a protobuf timestamp.
pub fn to_timestamp(time: SystemTime) -> Timestamp {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        },
        Err(before) => {
            let d = before.duration();
            let mut seconds = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut nanos = d.subsec_nanos();
            if nanos > 0 {
                seconds -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            Timestamp {
                seconds,
                nanos: i32::try_from(nanos).unwrap_or(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 250_000_000),
        ] {
            assert_eq!(from_timestamp(Some(&to_timestamp(t))), t);
        }
        assert_eq!(from_timestamp(None), UNIX_EPOCH);
    }
}
