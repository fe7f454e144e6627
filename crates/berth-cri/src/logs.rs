//! Container logs in the CRI format: each line of the container's stdout
//! and stderr becomes `<RFC 3339 nano time> <stream> <F|P> <text>\n` in the
//! log file the kubelet asked for; lines longer than
//! `max_container_log_line_size` are split into partial (`P`) lines.
//!
//! This is containerd's `pkg/cri/io` logger: both streams of a container
//! append to one file (opened `O_APPEND`, mode 0640, its directory made
//! first), one whole entry per write so the streams interleave by line.
//! A line's trailing `\n` (or `\r\n`) is not part of its text. Text still
//! buffered when a stream ends — a last line without a newline — is written
//! as a partial (`P`) entry, as containerd writes it. A line of exactly
//! the maximum length is one full entry; a longer one becomes `P` entries
//! of the maximum length followed by the rest as `F`.

use berth_core::{Error, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Which of the container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A log entry's tag: the whole line (`F`) or a piece of one (`P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Full,
    Partial,
}

/// Where entries go: one writer shared by a container's streams. Each
/// entry is written whole under its lock, so swapping the writer under
/// the same lock ([`Sink::reopen`]) never splits or loses an entry.
#[derive(Clone)]
pub(crate) struct Sink(Arc<Mutex<Box<dyn Write + Send>>>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl Sink {
    /// A sink writing into `writer`.
    pub(crate) fn new(writer: impl Write + Send + 'static) -> Sink {
        Sink(Arc::new(Mutex::new(Box::new(writer))))
    }

    /// A sink that drops everything (a container without a log file).
    pub(crate) fn discard() -> Sink {
        Sink::new(std::io::sink())
    }

    /// Writes one whole entry.
    fn write_entry(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(bytes)
    }

    /// Opens the log file at `path` afresh (after the kubelet renamed the
    /// old one) and writes every later entry there. The new file is
    /// opened before the lock is taken; the old one is closed once
    /// replaced.
    pub(crate) fn reopen(&self, path: &Path) -> Result<()> {
        let file = open_file(path)?;
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.flush();
        *out = Box::new(file);
        Ok(())
    }
}

/// Opens (creating it and its directory) the log file at `path` for
/// appending.
pub(crate) fn open(path: &Path) -> Result<Sink> {
    Ok(Sink::new(open_file(path)?))
}

fn open_file(path: &Path) -> Result<std::fs::File> {
    let io = |e: std::io::Error| Error::internal(format!("open log file {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(io)
}

/// `time` as Go's `time.RFC3339Nano` writes a UTC time: nanoseconds
/// with trailing zeros dropped (none at all for a whole second).
pub(crate) fn rfc3339_nano(time: SystemTime) -> String {
    let seconds = berth_core::time::rfc3339_utc(time);
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let stem = seconds.trim_end_matches('Z');
    if nanos == 0 {
        return format!("{stem}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{stem}.{}Z", fraction.trim_end_matches('0'))
}

/// Splits one stream's bytes into CRI log entries.
struct Lines {
    /// The longest text an entry may carry; `None` for no limit.
    max_len: Option<usize>,
    /// Text of the current line not yet written.
    pending: Vec<u8>,
}

impl Lines {
    fn new(max_len: i64) -> Lines {
        Lines {
            max_len: usize::try_from(max_len).ok().filter(|n| *n > 0),
            pending: Vec::new(),
        }
    }

    /// Feeds `data`; `emit` gets each finished entry.
    fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(Tag, &[u8])) {
        while let Some(at) = data.iter().position(|b| *b == b'\n') {
            self.pending.extend_from_slice(&data[..at]);
            data = &data[at + 1..];
            if self.pending.last() == Some(&b'\r') {
                self.pending.pop();
            }
            self.split_long(emit);
            emit(Tag::Full, &self.pending);
            self.pending.clear();
        }
        self.pending.extend_from_slice(data);
        self.split_long(emit);
    }

    /// Writes out partial entries while the pending text is too long.
    fn split_long(&mut self, emit: &mut impl FnMut(Tag, &[u8])) {
        let Some(max) = self.max_len else { return };
        while self.pending.len() > max {
            emit(Tag::Partial, &self.pending[..max]);
            self.pending.drain(..max);
        }
    }

    /// The stream ended: text left over is a partial entry.
    fn finish(&mut self, emit: &mut impl FnMut(Tag, &[u8])) {
        if !self.pending.is_empty() {
            emit(Tag::Partial, &self.pending);
            self.pending.clear();
        }
    }
}

/// One entry as written to the file.
fn entry(time: SystemTime, stream: Stream, tag: Tag, text: &[u8]) -> Vec<u8> {
    let tag = match tag {
        Tag::Full => "F",
        Tag::Partial => "P",
    };
    let mut out = format!("{} {} {tag} ", rfc3339_nano(time), stream.as_str()).into_bytes();
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// The log entries [`redirect`] writes for one stream that yields
/// `chunks` and then ends, every entry stamped `time`: the line splitting
/// and entry format without a reader or a file, for the fuzz target
/// (`fuzz/fuzz_targets/cri_log.rs`).
pub fn format_stream(chunks: &[&[u8]], stderr: bool, max_len: i64, time: SystemTime) -> Vec<u8> {
    let stream = if stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let mut lines = Lines::new(max_len);
    let mut out = Vec::new();
    let mut write = |tag: Tag, text: &[u8]| out.extend(entry(time, stream, tag, text));
    for chunk in chunks {
        lines.push(chunk, &mut write);
    }
    lines.finish(&mut write);
    out
}

/// Copies `reader` (one of a container's streams) into `sink` as CRI log
/// entries until it ends, and hands each chunk to the attached clients
/// (`tee`). Write errors are logged and the stream is still drained, so a
/// full disk never blocks the container.
///
/// The read buffer exists only while output is flowing: a node's
/// containers are mostly quiet, and one idle 8 KiB buffer per stream of
/// every container would be most of the daemon's memory per pod.
pub(crate) async fn redirect(
    reader: tokio::net::unix::pipe::Receiver,
    stream: Stream,
    sink: Sink,
    max_len: i64,
    tee: crate::container::attach::Tee,
) {
    let mut lines = Lines::new(max_len);
    let mut write = |tag: Tag, text: &[u8]| {
        let bytes = entry(SystemTime::now(), stream, tag, text);
        if let Err(err) = sink.write_entry(&bytes) {
            tracing::warn!(stream = stream.as_str(), %err, "write container log");
        }
    };
    'stream: loop {
        if let Err(err) = reader.readable().await {
            tracing::warn!(stream = stream.as_str(), %err, "wait for container output");
            break;
        }
        let mut buf = vec![0u8; 8192];
        loop {
            match reader.try_read(&mut buf) {
                Ok(0) => break 'stream,
                Ok(n) => {
                    tee.send(&buf[..n]);
                    lines.push(&buf[..n], &mut write);
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    tracing::warn!(stream = stream.as_str(), %err, "read container output");
                    break 'stream;
                }
            }
        }
    }
    lines.finish(&mut write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entries(max: i64, chunks: &[&[u8]]) -> Vec<(Tag, String)> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        let mut emit =
            |tag: Tag, text: &[u8]| out.push((tag, String::from_utf8_lossy(text).into()));
        for chunk in chunks {
            lines.push(chunk, &mut emit);
        }
        lines.finish(&mut emit);
        out
    }

    fn full(s: &str) -> (Tag, String) {
        (Tag::Full, s.to_string())
    }

    fn part(s: &str) -> (Tag, String) {
        (Tag::Partial, s.to_string())
    }

    #[test]
    fn lines_split_on_newlines_across_chunks() {
        assert_eq!(
            entries(-1, &[b"he", b"llo\nwor", b"ld\r\n\n"]),
            vec![full("hello"), full("world"), full("")]
        );
    }

    #[test]
    fn a_last_line_without_newline_is_partial() {
        assert_eq!(
            entries(0, &[b"a\nno newline"]),
            vec![full("a"), part("no newline")]
        );
        assert!(entries(16, &[]).is_empty());
    }

    #[test]
    fn long_lines_become_partial_entries_of_the_maximum() {
        assert_eq!(
            entries(4, &[b"abcdefghij\n"]),
            vec![part("abcd"), part("efgh"), full("ij")]
        );
        // Exactly the maximum is one full entry; twice it ends in a full one.
        assert_eq!(entries(4, &[b"abcd\n"]), vec![full("abcd")]);
        assert_eq!(
            entries(4, &[b"ab", b"cdefgh", b"\n"]),
            vec![part("abcd"), full("efgh")]
        );
        assert_eq!(entries(4, &[b"abcdef"]), vec![part("abcd"), part("ef")]);
    }

    #[test]
    fn times_are_rfc3339_nano_in_utc() {
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2024-02-29T12:34:56.12Z");
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 1);
        assert_eq!(rfc3339_nano(t), "2024-02-29T12:34:56.000000001Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339_nano(t), "2024-02-29T12:34:56Z");
        let e = entry(t, Stream::Stderr, Tag::Partial, b"x y");
        assert_eq!(e, b"2024-02-29T12:34:56Z stderr P x y\n");
    }

    #[test]
    fn format_stream_writes_the_entries_of_chunked_output() {
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        let file = format_stream(&[b"ab", b"c\r\nd"], true, 2, t);
        assert_eq!(
            String::from_utf8(file).expect("utf8"),
            "2024-02-29T12:34:56Z stderr P ab\n\
             2024-02-29T12:34:56Z stderr F c\n\
             2024-02-29T12:34:56Z stderr P d\n"
        );
    }

    /// A `Write` into a shared buffer, to read back what the sink got.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The entries in `text` without their times.
    fn untimed(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| {
                let (time, rest) = l.split_once(' ').expect("time");
                assert!(time.ends_with('Z') && time.contains('T'), "{time}");
                rest.to_string()
            })
            .collect()
    }

    #[tokio::test]
    async fn both_streams_interleave_by_whole_entries() {
        let shared = Shared::default();
        let sink = Sink::new(shared.clone());
        let (mut out_w, out_r) = tokio::net::unix::pipe::pipe().expect("pipe");
        let (mut err_w, err_r) = tokio::net::unix::pipe::pipe().expect("pipe");
        let out = tokio::spawn(redirect(
            out_r,
            Stream::Stdout,
            sink.clone(),
            8,
            Default::default(),
        ));
        let err = tokio::spawn(redirect(err_r, Stream::Stderr, sink, 8, Default::default()));
        use tokio::io::AsyncWriteExt;
        out_w.write_all(b"one\n").await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        err_w.write_all(b"oops\n").await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        out_w.write_all(b"a long line!\ntail").await.expect("write");
        drop((out_w, err_w));
        out.await.expect("stdout");
        err.await.expect("stderr");
        let text = String::from_utf8(shared.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(
            untimed(&text),
            vec![
                "stdout F one",
                "stderr F oops",
                "stdout P a long l",
                "stdout F ine!",
                "stdout P tail"
            ]
        );
    }

    #[test]
    fn the_log_file_and_its_directory_are_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pod/c/0.log");
        let sink = open(&path).expect("open");
        sink.write_entry(b"x\n").expect("write");
        drop(sink);
        let again = open(&path).expect("reopen");
        again.write_entry(b"y\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "x\ny\n");
        // Renamed away and reopened: later entries go to a new file.
        let rotated = dir.path().join("pod/c/0.log.1");
        std::fs::rename(&path, &rotated).expect("rename");
        again.write_entry(b"z\n").expect("write");
        again.reopen(&path).expect("reopen");
        again.write_entry(b"w\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(&rotated).expect("read"),
            "x\ny\nz\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "w\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}
