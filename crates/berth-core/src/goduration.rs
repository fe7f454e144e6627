//! Go's `time.Duration` as text, the way containerd and ctr write and read
//! it: `"100ms"`, `"1m30s"`, `"4h0m0s"` (config files, `--timeout`,
//! plugin exports, lock ages in error messages).

use std::time::Duration;

/// Parses Go's `time.ParseDuration` syntax: decimal numbers with units
/// `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`; `"0"` alone is zero. Negative
/// durations are refused: nothing berth reads may be negative.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (write e.g. \"100ms\", \"1m30s\")");
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if unsigned.starts_with('-') {
        return Err(format!("duration {text:?} must not be negative"));
    }
    if unsigned == "0" {
        return Ok(Duration::ZERO);
    }
    if unsigned.is_empty() {
        return Err(invalid());
    }
    let mut rest = unsigned;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = unit_nanos(unit)
            .ok_or_else(|| format!("{}: unknown or missing unit {unit:?}", invalid()))?;
        let value: f64 = number.parse().map_err(|_| invalid())?;
        total += value * scale;
        rest = tail;
    }
    if total > u64::MAX as f64 {
        return Err(format!("{}: too long", invalid()));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Nanoseconds per Go duration unit.
fn unit_nanos(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

/// Formats as Go's `Duration.String()`: `0s`, `800µs`, `100ms`, `1.5s`,
/// `1m30s`, `4h0m0s`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, per) = match nanos {
            n if n < 1_000 => ("ns", 1u128),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(nanos, per));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / per` with the remainder as decimals, trailing zeros dropped.
fn decimal(value: u128, per: u128) -> String {
    let (whole, rem) = (value / per, value % per);
    if rem == 0 {
        return whole.to_string();
    }
    let width = per.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        for (text, want) in [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("300ms", Duration::from_millis(300)),
            ("1.5s", Duration::from_millis(1500)),
            ("1h2m3s", Duration::from_secs(3723)),
            (".5m", Duration::from_secs(30)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("+2ns", Duration::from_nanos(2)),
            ("4h0m0s", Duration::from_secs(4 * 3600)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        for bad in [
            "", "1", "10", "s", "1x", "-1s", "1..2s", ".s", "1s2", "soon",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_as_go_does_and_reads_back() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_micros(800), "800µs"),
            (Duration::from_micros(12_500), "12.5ms"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(123_250), "2m3.25s"),
            (Duration::from_secs(4 * 3600), "4h0m0s"),
        ] {
            assert_eq!(format(d), text);
            assert_eq!(parse(text), Ok(d));
        }
    }
}
