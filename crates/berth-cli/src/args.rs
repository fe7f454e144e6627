//! Parsing command-line values the way ctr does: `KEY=VALUE` labels and Go
//! durations.

use std::collections::HashMap;
use std::time::Duration;

/// Labels from `KEY=VALUE` arguments, as ctr's `commands.LabelArgs`: the
/// value is everything after the first `=`; a bare `KEY` means
/// `KEY=true`; a later argument for the same key wins. `KEY=` is an empty
/// value, which label commands use to remove a label.
pub fn labels<S: AsRef<str>>(args: &[S]) -> HashMap<String, String> {
    args.iter()
        .map(|arg| match arg.as_ref().split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => (arg.as_ref().to_string(), "true".to_string()),
        })
        .collect()
}

/// A duration in Go's `time.ParseDuration` syntax (`300ms`, `1.5s`,
/// `1h2m`, `0`), as ctr's `--timeout` takes it. Negative durations are
/// refused: a timeout cannot be negative.
pub fn duration(text: &str) -> Result<Duration, String> {
    berth_client::berth_core::goduration::parse(text)
}

/// A timeout where zero means none, as in ctr's flags.
pub fn optional(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_split_at_the_first_equals_sign() {
        assert_eq!(
            labels(&["a=b", "url=x=y", "empty="]),
            map(&[("a", "b"), ("url", "x=y"), ("empty", "")])
        );
    }

    #[test]
    fn bare_label_means_true_and_later_wins() {
        assert_eq!(
            labels(&["z", "a=1", "a=2"]),
            map(&[("z", "true"), ("a", "2")])
        );
        assert!(labels::<&str>(&[]).is_empty());
    }

    #[test]
    fn durations_follow_go_syntax() {
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert_eq!(duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(duration(".5m"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(duration("+2ns"), Ok(Duration::from_nanos(2)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "1", "s", "1x", "-1s", "1..2s", ".s", "1s2"] {
            assert!(duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn zero_timeout_means_none() {
        assert_eq!(optional(Duration::ZERO), None);
        assert_eq!(
            optional(Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
    }
}
