//! Sizes and ages as ctr prints them: containerd's `progress.Bytes`
//! (`1.9 MiB`) and Docker's go-units `HumanSize` (`1.987MB`) and
//! `HumanDuration` (`15 seconds`).

use std::time::Duration;

/// containerd's `progress.Bytes`: binary units, one decimal (`417.0 B`,
/// `1.9 MiB`).
pub fn bytes(size: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let (value, unit) = scale(size as f64, 1024.0, &UNITS);
    format!("{value:.1} {unit}")
}

/// go-units' `HumanSize`: decimal units, four significant digits
/// (`1.987MB`, `417B`).
pub fn human_size(size: i64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let (value, unit) = scale(size as f64, 1000.0, &UNITS);
    format!("{}{unit}", go_g4(value))
}

fn scale<'a>(mut size: f64, base: f64, units: &[&'a str]) -> (f64, &'a str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// Go's `%.4g` for values in [0, 1000]: four significant digits, trailing
/// zeros dropped.
fn go_g4(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let exponent = value.abs().log10().floor() as i32;
    let decimals = (3 - exponent).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// go-units' `HumanDuration`: `Less than a second`, `1 second`,
/// `N seconds`, `About a minute`, … `N years`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    // Go rounds to the nearest hour before counting hours.
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_ctr() {
        // Captured from `ctr images ls` / `ctr content ls` (containerd 1.6).
        assert_eq!(bytes(1_987_619), "1.9 MiB");
        assert_eq!(bytes(417), "417.0 B");
        assert_eq!(human_size(1_986_560), "1.987MB");
        assert_eq!(human_size(417), "417B");
        assert_eq!(human_size(3), "3B");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(12_500), "12.5kB");
    }

    #[test]
    fn durations_match_go_units() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(15)), "15 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(600)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
    }
}
