//! CRI log lines (`berth_cri::format_stream`, the writer behind container
//! log files): `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>\n`.
//!
//! Input: 12 header bytes, then the container's output.
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | bit 0: the stream is stderr |
//! | 1–2 | `max_container_log_line_size` (big endian; 0: no limit) |
//! | 3 | chunk size the output arrives in (0: one chunk) |
//! | 4–11 | the entries' time, nanoseconds since the epoch (big endian) |
//!
//! Oracle: the file reads back (with a parser written here, the kubelet's
//! rules) as entries of the right stream and time, none longer than the
//! maximum, every `P` but a last one exactly the maximum long, and the
//! lines they join into are the output's lines (a trailing `\r` of a
//! line ended by `\n` dropped, a last line without `\n` ending in `P`),
//! however the output was chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

const HEADER: usize = 12;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let stderr = data[0] & 1 == 1;
    let max = usize::from(u16::from_be_bytes([data[1], data[2]]));
    let chunk = usize::from(data[3]);
    let nanos = u64::from_be_bytes(data[4..12].try_into().expect("8 bytes"));
    let time = UNIX_EPOCH + Duration::from_nanos(nanos);
    let output = &data[HEADER..];
    let chunks: Vec<&[u8]> = if chunk == 0 {
        vec![output]
    } else {
        output.chunks(chunk).collect()
    };
    let max_len = i64::try_from(max).expect("u16 fits");
    let file = berth_cri::format_stream(&chunks, stderr, max_len, time);

    let stream: &[u8] = if stderr { b"stderr" } else { b"stdout" };
    let entries = read_entries(&file, stream, nanos);
    let (lines, unfinished) = join(&entries, max);
    let (want_lines, want_unfinished) = expected(output);
    assert_eq!(lines, want_lines, "full lines differ");
    assert_eq!(
        unfinished, want_unfinished,
        "the unfinished last line differs"
    );
});

/// One entry read back: `F` or not, and its text.
type Entry<'a> = (bool, &'a [u8]);

/// Parses `file` strictly; every entry must carry `stream` and a time
/// that means `nanos`.
fn read_entries<'a>(file: &'a [u8], stream: &[u8], nanos: u64) -> Vec<Entry<'a>> {
    let Some(body) = file.strip_suffix(b"\n") else {
        assert!(file.is_empty(), "the file ends mid-entry");
        return Vec::new();
    };
    body.split(|b| *b == b'\n')
        .map(|line| {
            let mut fields = line.splitn(4, |b| *b == b' ');
            let (Some(t), Some(s), Some(tag), Some(text)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("entry {line:?} has fewer than four fields");
            };
            let t = std::str::from_utf8(t).expect("the time is text");
            assert_eq!(parse_rfc3339_nano(t), Some(nanos), "time {t:?}");
            assert_eq!(s, stream, "stream of {line:?}");
            let full = match tag {
                b"F" => true,
                b"P" => false,
                _ => panic!("tag {tag:?} in {line:?}"),
            };
            (full, text)
        })
        .collect()
}

/// Joins entries into full lines and the unfinished rest; checks lengths.
fn join(entries: &[Entry<'_>], max: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut lines = Vec::new();
    let mut pending = Vec::new();
    for (i, (full, text)) in entries.iter().enumerate() {
        if max > 0 {
            assert!(text.len() <= max, "entry {i} is longer than {max}");
            let last = i + 1 == entries.len();
            if !full && !last {
                assert_eq!(text.len(), max, "partial entry {i} is short");
            }
        }
        pending.extend_from_slice(text);
        if *full {
            lines.push(std::mem::take(&mut pending));
        }
    }
    if let Some((full, text)) = entries.last() {
        assert!(*full || !text.is_empty(), "an empty last partial entry");
    }
    (lines, pending)
}

/// The output's lines as the kubelet should see them.
fn expected(output: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut parts: Vec<&[u8]> = output.split(|b| *b == b'\n').collect();
    let rest = parts.pop().unwrap_or_default().to_vec();
    let lines = parts
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect();
    (lines, rest)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` as nanoseconds since the epoch; the
/// fraction must have no trailing zeros (Go's RFC3339Nano).
fn parse_rfc3339_nano(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z')?;
    let (stamp, fraction) = match t.split_once('.') {
        Some((s, f)) => {
            if f.is_empty() || f.len() > 9 || f.ends_with('0') {
                return None;
            }
            if !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (s, format!("{f:0<9}").parse::<u64>().ok()?)
        }
        None => (t, 0),
    };
    let b = stamp.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
