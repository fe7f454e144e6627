//! Reading tar archives from an `AsyncRead`, one member at a time, bodies
//! streamed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use berth_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::{EntryKind, Header, BLOCK};

/// The most a PAX record set or GNU long name may hold: names, not data.
const MAX_META: u64 = 1 << 20;

/// Reads members from a tar stream.
pub struct TarReader<R> {
    inner: R,
    /// Unread body bytes of the current member.
    remaining: u64,
    /// Padding after the current member's body.
    padding: u64,
    done: bool,
}

/// Long-name and PAX overrides for the next real header.
#[derive(Default)]
struct Overrides {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

impl<R: AsyncRead + Unpin> TarReader<R> {
    /// A reader over `inner`.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
        }
    }

    /// The next member's header, skipping what is left of the previous
    /// body; `None` at the end of the archive.
    pub async fn next_header(&mut self) -> Result<Option<Header>> {
        let mut overrides = Overrides::default();
        loop {
            self.skip_rest().await?;
            if self.done {
                return Ok(None);
            }
            let Some(block) = self.read_block().await? else {
                self.done = true;
                return Ok(None);
            };
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let raw = parse_block(&block)?;
            self.remaining = overrides.size.unwrap_or(raw.size);
            self.padding = (BLOCK as u64 - self.remaining % BLOCK as u64) % BLOCK as u64;
            match raw.flag {
                b'L' => overrides.path = Some(self.read_meta_string().await?),
                b'K' => overrides.link = Some(self.read_meta_string().await?),
                b'x' => self.read_pax(&mut overrides).await?,
                b'g' => {} // global PAX records: nothing berth uses
                b'S' => {
                    return Err(Error::invalid_argument(
                        "tar: sparse files are not supported",
                    ))
                }
                flag => {
                    let kind = EntryKind::from_flag(flag);
                    if kind != EntryKind::Regular {
                        // Only regular files have bodies an importer reads.
                        self.remaining = self.remaining.min(overrides.size.unwrap_or(raw.size));
                    }
                    return Ok(Some(Header {
                        name: overrides.path.take().unwrap_or(raw.name),
                        kind,
                        mode: raw.mode,
                        size: self.remaining,
                        link_name: overrides.link.take().unwrap_or(raw.link_name),
                    }));
                }
            }
        }
    }

    /// The current member's body; reading it to its end is optional (the
    /// next [`TarReader::next_header`] skips the rest).
    pub fn body(&mut self) -> EntryBody<'_, R> {
        EntryBody { reader: self }
    }

    async fn read_block(&mut self) -> Result<Option<[u8; BLOCK]>> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            let n = self.inner.read(&mut block[filled..]).await?;
            if n == 0 {
                if filled == 0 {
                    return Ok(None);
                }
                return Err(truncated());
            }
            filled += n;
        }
        Ok(Some(block))
    }

    async fn skip_rest(&mut self) -> Result<()> {
        let mut left = self.remaining + self.padding;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = self.inner.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(truncated());
            }
            left -= n as u64;
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    /// A metadata body (long name, PAX records) read whole, bounded.
    async fn read_meta(&mut self) -> Result<Vec<u8>> {
        if self.remaining > MAX_META {
            return Err(Error::invalid_argument(format!(
                "tar: metadata record of {} bytes is too large",
                self.remaining
            )));
        }
        let mut data = vec![0u8; self.remaining as usize];
        self.inner
            .read_exact(&mut data)
            .await
            .map_err(|_| truncated())?;
        self.remaining = 0;
        Ok(data)
    }

    async fn read_meta_string(&mut self) -> Result<String> {
        let data = self.read_meta().await?;
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        utf8(&data[..end])
    }

    async fn read_pax(&mut self, overrides: &mut Overrides) -> Result<()> {
        let data = self.read_meta().await?;
        for (key, value) in pax_records(&data)? {
            match key.as_str() {
                "path" => overrides.path = Some(value),
                "linkpath" => overrides.link = Some(value),
                "size" => {
                    let size = value.parse().map_err(|_| {
                        Error::invalid_argument(format!("tar: invalid PAX size {value:?}"))
                    })?;
                    overrides.size = Some(size);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The body of the current member, as an `AsyncRead` that ends with it.
pub struct EntryBody<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: AsyncRead + Unpin> AsyncRead for EntryBody<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let remaining = self.reader.remaining;
        if remaining == 0 || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let want = (buf.remaining() as u64).min(remaining) as usize;
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        let inner = Pin::new(&mut self.reader.inner);
        match inner.poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {
                let n = limited.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tar: archive ends inside a member",
                    )));
                }
                // The bytes were read into `buf`'s initialized tail.
                buf.advance(n);
                self.reader.remaining -= n as u64;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// The fields of one header block.
struct RawHeader {
    name: String,
    mode: u32,
    size: u64,
    flag: u8,
    link_name: String,
}

fn parse_block(b: &[u8; BLOCK]) -> Result<RawHeader> {
    verify_checksum(b)?;
    let posix = &b[257..263] == b"ustar\0";
    let mut name = c_string(&b[0..100])?;
    if posix {
        let prefix = c_string(&b[345..500])?;
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
    }
    Ok(RawHeader {
        name,
        mode: u32::try_from(number(&b[100..108])? & 0o7777).unwrap_or(0),
        size: number(&b[124..136])?,
        flag: b[156],
        link_name: c_string(&b[157..257])?,
    })
}

fn verify_checksum(b: &[u8; BLOCK]) -> Result<()> {
    let stored = number(&b[148..156])?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &x) in b.iter().enumerate() {
        let x = if (148..156).contains(&i) { b' ' } else { x };
        unsigned += u64::from(x);
        signed += i64::from(x as i8);
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "tar: invalid header (checksum mismatch)",
        ))
    }
}

/// A numeric field: octal text, or GNU base-256 when the high bit is set.
fn number(field: &[u8]) -> Result<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(Error::invalid_argument("tar: negative number in header"));
        }
        let mut value: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| Error::invalid_argument("tar: number in header overflows"))?;
        }
        return Ok(value);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(&text).map_err(|_| invalid_number())?;
    u64::from_str_radix(text, 8).map_err(|_| invalid_number())
}

fn invalid_number() -> Error {
    Error::invalid_argument("tar: invalid number in header")
}

fn c_string(field: &[u8]) -> Result<String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    utf8(&field[..end])
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::invalid_argument("tar: member name is not UTF-8"))
}

/// PAX records: `LEN KEY=VALUE\n`, LEN counting the whole record.
fn pax_records(mut data: &[u8]) -> Result<Vec<(String, String)>> {
    let invalid = || Error::invalid_argument("tar: invalid PAX record");
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or_else(invalid)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(invalid());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(invalid)?;
        out.push((utf8(&record[..eq])?, utf8(&record[eq + 1..])?));
        data = &data[len..];
    }
    Ok(out)
}

fn truncated() -> Error {
    Error::invalid_argument("tar: unexpected end of archive")
}

#[cfg(test)]
mod tests {
    use super::super::writer::encode;
    use super::super::TarWriter;
    use super::*;

    async fn archive(members: &[(Header, &[u8])]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for (h, body) in members {
            w.append(h, body).await.expect("append");
        }
        w.finish().await.expect("finish")
    }

    #[tokio::test]
    async fn reads_back_what_the_writer_wrote() {
        let data = archive(&[
            (Header::dir("blobs/", 0o755), b""),
            (Header::file("a.txt", 0o644, 5), b"hello"),
            (Header::symlink("l", "a.txt"), b""),
            (Header::file("b", 0o444, 600), &[7u8; 600]),
        ])
        .await;
        let mut r = TarReader::new(data.as_slice());
        let mut seen = Vec::new();
        while let Some(h) = r.next_header().await.expect("header") {
            let mut body = Vec::new();
            if h.name != "b" {
                r.body().read_to_end(&mut body).await.expect("body");
            }
            seen.push((h.name.clone(), h.kind, h.size, body.len(), h.link_name));
        }
        assert_eq!(
            seen,
            [
                (
                    "blobs/".to_string(),
                    EntryKind::Directory,
                    0,
                    0,
                    String::new()
                ),
                ("a.txt".to_string(), EntryKind::Regular, 5, 5, String::new()),
                (
                    "l".to_string(),
                    EntryKind::Symlink,
                    0,
                    0,
                    "a.txt".to_string()
                ),
                ("b".to_string(), EntryKind::Regular, 600, 0, String::new()),
            ]
        );
    }

    #[tokio::test]
    async fn pax_and_gnu_long_names_override_the_header() {
        let long = format!("{}/file", "x".repeat(200));
        let record = format!("path={long}\n");
        let len = record.len() + 4; // "NNN " prefix of three digits
        let pax = format!("{len} {record}");
        let mut pax_header = Header::file("PaxHeaders/f", 0o644, pax.len() as u64);
        pax_header.kind = EntryKind::Other(b'x');
        let mut gnu = Header::file("././@LongLink", 0o644, 9);
        gnu.kind = EntryKind::Other(b'L');
        let data = archive(&[
            (pax_header, pax.as_bytes()),
            (Header::file("short", 0o644, 1), b"x"),
            (gnu, b"gnu-name\0"),
            (Header::file("short2", 0o644, 0), b""),
        ])
        .await;
        let mut r = TarReader::new(data.as_slice());
        let first = r.next_header().await.expect("ok").expect("member");
        assert_eq!(first.name, long);
        let second = r.next_header().await.expect("ok").expect("member");
        assert_eq!(second.name, "gnu-name");
        assert!(r.next_header().await.expect("ok").is_none());
    }

    #[tokio::test]
    async fn corrupt_and_truncated_archives_are_invalid_argument() {
        let mut block = encode(&Header::file("f", 0o644, 10)).expect("encode");
        block[0] = b'g'; // checksum no longer matches
        let err = TarReader::new(&block[..])
            .next_header()
            .await
            .expect_err("checksum");
        assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);

        let data = archive(&[(Header::file("f", 0o644, 1000), &[1u8; 1000])]).await;
        let cut = &data[..700];
        let mut r = TarReader::new(cut);
        r.next_header().await.expect("header").expect("member");
        let mut sink = Vec::new();
        assert!(r.body().read_to_end(&mut sink).await.is_err());
    }
}
