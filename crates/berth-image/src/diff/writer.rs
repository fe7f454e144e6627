//! Writing a layer: the tar stream hashed for its diffID, optionally
//! gzip-compressed, and the compressed bytes hashed for the blob digest.

use berth_core::digest::Digester;
use berth_core::Digest;
use std::io::{self, Write};

/// How a written layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// A plain tar (`application/vnd.oci.image.layer.v1.tar`).
    Uncompressed,
    /// gzip (`…tar+gzip`), containerd's default for `Diff`.
    #[default]
    Gzip,
}

/// Passes bytes through, hashing and counting them.
pub(crate) struct Hashing<W> {
    inner: W,
    digester: Digester,
    written: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            digester: Digester::new(),
            written: 0,
        }
    }

    /// The inner writer, the digest and the count of what went through.
    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.digester.finish(), self.written)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where the tar stream goes: straight out, or through gzip.
pub(crate) enum Sink<W: Write> {
    Plain(Hashing<W>),
    Gzip(Box<flate2::write::GzEncoder<Hashing<W>>>),
}

impl<W: Write> Sink<W> {
    pub(crate) fn new(out: W, compression: LayerCompression) -> Self {
        let hashed = Hashing::new(out);
        match compression {
            LayerCompression::Uncompressed => Sink::Plain(hashed),
            LayerCompression::Gzip => Sink::Gzip(Box::new(flate2::write::GzEncoder::new(
                hashed,
                flate2::Compression::default(),
            ))),
        }
    }

    /// Finishes compression; the digest and size of the bytes written out.
    pub(crate) fn finish(self) -> io::Result<(Digest, u64)> {
        let hashed = match self {
            Sink::Plain(h) => h,
            Sink::Gzip(gz) => gz.finish()?,
        };
        let (mut out, digest, size) = hashed.finish();
        out.flush()?;
        Ok((digest, size))
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}
