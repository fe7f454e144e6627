//! Layer decompression on a thread of its own.
//!
//! The decoder thread reads the (possibly compressed) layer, inflates it,
//! hashes the uncompressed bytes — the diffID — and hands chunks to the
//! extractor through a bounded channel, so inflating and hashing overlap
//! with the file system work. The compression is detected from the magic
//! bytes, as containerd's `compression.DecompressStream` does.

use berth_core::digest::Digester;
use berth_core::{Digest, Error};
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    Uncompressed,
    /// gzip (`1f 8b`), possibly several members.
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

/// The compression whose magic bytes `head` starts with.
pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::Uncompressed
    }
}

/// How much the decoder hands over at once, and how many chunks may wait.
const CHUNK: usize = 256 << 10;
const QUEUE: usize = 8;

/// What the decoder thread measured: the diffID and uncompressed size.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub digest: Digest,
    pub size: u64,
}

/// Why the decoder stopped early: its own failure, or the extractor
/// hanging up (it failed, and its error is the one to report).
#[derive(Debug)]
pub(crate) enum DecodeError {
    Failed(Error),
    HungUp,
}

/// Starts decoding `input` on a scoped thread; the extractor reads the
/// uncompressed stream from the returned [`ChunkReader`].
pub(crate) fn spawn<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    input: R,
) -> (
    ChunkReader,
    std::thread::ScopedJoinHandle<'scope, std::result::Result<Decoded, DecodeError>>,
) {
    let (tx, rx) = sync_channel(QUEUE);
    let handle = std::thread::Builder::new()
        .name("layer-decode".into())
        .spawn_scoped(scope, move || decode(input, tx))
        .expect("spawning a thread");
    (ChunkReader::new(rx), handle)
}

fn decode(
    mut input: impl Read,
    tx: SyncSender<Vec<u8>>,
) -> std::result::Result<Decoded, DecodeError> {
    let failed = |e: io::Error| DecodeError::Failed(Error::from(e).context("decompress layer"));
    let mut head = [0u8; 4];
    let n = read_full(&mut input, &mut head).map_err(failed)?;
    let input = io::Cursor::new(head[..n].to_vec()).chain(input);
    let mut decoder: Box<dyn Read> = match detect(&head[..n]) {
        Compression::Uncompressed => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input).map_err(failed)?),
    };
    let mut digester = Digester::new();
    let mut size = 0u64;
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = read_full(&mut decoder, &mut chunk).map_err(failed)?;
        if n == 0 {
            return Ok(Decoded {
                digest: digester.finish(),
                size,
            });
        }
        chunk.truncate(n);
        digester.update(&chunk);
        size += n as u64;
        tx.send(chunk).map_err(|_| DecodeError::HungUp)?;
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The uncompressed layer as the decoder thread sends it.
pub(crate) struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    fn new(rx: Receiver<Vec<u8>>) -> Self {
        ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }

    /// Reads and drops the rest of the stream, so the diffID covers all of
    /// it (a tar may carry padding after its end marker).
    pub(crate) fn drain(&mut self) {
        while self.rx.recv().is_ok() {}
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                // The decoder finished or failed; joining it tells which.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"etc/"), Compression::Uncompressed);
        assert_eq!(detect(b""), Compression::Uncompressed);
    }

    fn decoded(input: Vec<u8>) -> (Vec<u8>, Decoded) {
        std::thread::scope(|s| {
            let (mut reader, handle) = spawn(s, io::Cursor::new(input));
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            (out, handle.join().expect("join").expect("decode"))
        })
    }

    #[test]
    fn gzip_and_zstd_decode_to_the_same_digest() {
        let plain: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let want = Digest::sha256_of(&plain);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &plain).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&plain[..], 1).expect("zstd");
        for input in [plain.clone(), gz, zst] {
            let (out, d) = decoded(input);
            assert_eq!(out, plain);
            assert_eq!(d.digest, want);
            assert_eq!(d.size, plain.len() as u64);
        }
    }

    #[test]
    fn corrupt_gzip_fails_in_the_decoder() {
        let mut bad = vec![0x1f, 0x8b, 0x08, 0x00];
        bad.extend_from_slice(&[0xff; 64]);
        std::thread::scope(|s| {
            let (mut reader, handle) = spawn(s, io::Cursor::new(bad));
            let mut out = Vec::new();
            reader.read_to_end(&mut out).expect("read");
            assert!(matches!(
                handle.join().expect("join"),
                Err(DecodeError::Failed(_))
            ));
        });
    }
}
