//! Writing ustar archives byte for byte as Go's `archive/tar` does for
//! containerd's exporter.

use berth_core::{Error, Result};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{EntryKind, Header, BLOCK};

/// The largest size an 11-digit octal field holds (8 GiB - 1).
const MAX_OCTAL_SIZE: u64 = (1 << 33) - 1;

/// Writes tar members to an `AsyncWrite`; call [`TarWriter::finish`] to end
/// the archive.
pub struct TarWriter<W> {
    inner: W,
    /// Body bytes the current member still expects.
    remaining: u64,
    /// Padding owed after the current member's body.
    padding: usize,
}

impl<W: AsyncWrite + Unpin> TarWriter<W> {
    /// A writer over `inner`.
    pub fn new(inner: W) -> Self {
        TarWriter {
            inner,
            remaining: 0,
            padding: 0,
        }
    }

    /// Starts a member; its body (`header.size` bytes) follows through
    /// [`TarWriter::write_body`].
    pub async fn append_header(&mut self, header: &Header) -> Result<()> {
        self.close_member().await?;
        let block = encode(header)?;
        self.inner.write_all(&block).await?;
        self.remaining = header.size;
        self.padding = padding(header.size);
        Ok(())
    }

    /// Writes body bytes of the current member.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        if data.len() as u64 > self.remaining {
            return Err(Error::internal("tar: body longer than its header says"));
        }
        self.inner.write_all(data).await?;
        self.remaining -= data.len() as u64;
        Ok(())
    }

    /// A whole member with an in-memory body.
    pub async fn append(&mut self, header: &Header, body: &[u8]) -> Result<()> {
        self.append_header(header).await?;
        self.write_body(body).await
    }

    async fn close_member(&mut self) -> Result<()> {
        if self.remaining != 0 {
            return Err(Error::internal(format!(
                "tar: member ended {} bytes short of its size",
                self.remaining
            )));
        }
        if self.padding > 0 {
            self.inner.write_all(&[0u8; BLOCK][..self.padding]).await?;
            self.padding = 0;
        }
        Ok(())
    }

    /// Ends the archive with two zero blocks, flushes, and returns the
    /// inner writer.
    pub async fn finish(mut self) -> Result<W> {
        self.close_member().await?;
        self.inner.write_all(&[0u8; 2 * BLOCK]).await?;
        self.inner.flush().await?;
        Ok(self.inner)
    }
}

fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// The ustar header block Go writes for `header`.
pub(super) fn encode(header: &Header) -> Result<[u8; BLOCK]> {
    let mut b = [0u8; BLOCK];
    let (prefix, name) = split_ustar_path(&header.name)?;
    put_str(&mut b[0..100], name);
    put_octal(&mut b[100..108], u64::from(header.mode));
    put_octal(&mut b[108..116], 0); // uid
    put_octal(&mut b[116..124], 0); // gid
    if header.size > MAX_OCTAL_SIZE {
        return Err(Error::not_implemented(format!(
            "tar: {} is {} bytes; members over 8 GiB are not supported",
            header.name, header.size
        )));
    }
    put_octal(&mut b[124..136], header.size);
    put_octal(&mut b[136..148], 0); // mtime: Go writes the zero time as the epoch
    b[156] = header.kind.flag();
    if header.link_name.len() > 100 {
        return Err(Error::invalid_argument(format!(
            "tar: link target of {} is longer than 100 bytes",
            header.name
        )));
    }
    put_str(&mut b[157..257], &header.link_name);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_octal(&mut b[329..337], 0); // devmajor
    put_octal(&mut b[337..345], 0); // devminor
    put_str(&mut b[345..500], prefix);
    // The checksum field counts as spaces while summing; Go then writes
    // six octal digits, a NUL and a space.
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    put_octal(&mut b[148..155], sum);
    b[155] = b' ';
    if matches!(header.kind, EntryKind::Directory | EntryKind::Symlink) && header.size != 0 {
        return Err(Error::internal("tar: only regular files have bodies"));
    }
    Ok(b)
}

/// Go's `splitUSTARPath`: names over 100 bytes go into prefix and name,
/// split at a slash.
fn split_ustar_path(name: &str) -> Result<(&str, &str)> {
    if name.len() <= 100 {
        return Ok(("", name));
    }
    let too_long =
        || Error::not_implemented(format!("tar: name {name:?} is too long for a ustar header"));
    let limit = name.len().min(156);
    let i = name[..limit].rfind('/').ok_or_else(too_long)?;
    let (prefix, rest) = (&name[..i], &name[i + 1..]);
    if i == 0 || rest.is_empty() || rest.len() > 100 || prefix.len() > 155 {
        return Err(too_long());
    }
    Ok((prefix, rest))
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Zero-padded octal leaving room for a trailing NUL (Go's `formatOctal`).
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:o}");
    let width = field.len() - 1;
    let text = format!("{digits:0>width$}");
    put_str(&mut field[..width], &text);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_match_go() {
        let block = encode(&Header::file("index.json", 0o644, 300)).expect("encode");
        assert_eq!(&block[0..11], b"index.json\0");
        assert_eq!(&block[100..108], b"0000644\0");
        assert_eq!(&block[124..136], b"00000000454\0");
        assert_eq!(&block[136..148], b"00000000000\0");
        assert_eq!(block[156], b'0');
        assert_eq!(&block[257..265], b"ustar\x0000");
        assert_eq!(&block[329..345], b"0000000\x000000000\x00");
        assert_eq!(block[154], 0);
        assert_eq!(block[155], b' ');
    }

    #[test]
    fn long_names_use_the_prefix_field() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(20));
        let block = encode(&Header::file(name.as_str(), 0o444, 0)).expect("encode");
        assert_eq!(&block[0..21], format!("{}\0", "f".repeat(20)).as_bytes());
        assert_eq!(&block[345..465], "d".repeat(120).as_bytes());
        assert!(encode(&Header::file("x".repeat(300), 0o444, 0)).is_err());
    }
}
