//! SPDY/3.1 frames (the draft's section 2.2): the control frames a
//! streaming client sends or needs answered, data frames, and header blocks
//! compressed with zlib and the SPDY dictionary, one compression context per
//! direction for the whole connection.
//!
//! Flow control (WINDOW_UPDATE, SETTINGS) is read and ignored: the
//! Kubernetes clients (docker/spdystream) neither send window updates nor
//! honour them, so enforcing windows would only stall them.

use super::dictionary::DICTIONARY;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

const VERSION: u16 = 3;
const CONTROL_BIT: u8 = 0x80;
const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

pub(crate) const CANCEL: u32 = 5;

/// The most a frame may carry, and a header block may inflate to: far
/// above what any client sends, low enough that a hostile one cannot
/// exhaust memory.
const MAX_FRAME: usize = 1 << 20;
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// A stream's headers, names lowercased as SPDY requires.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Headers(Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (any case), if present.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
        )
    }
}

/// A frame read from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    SynStream {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    Data {
        id: u32,
        fin: bool,
        data: Bytes,
    },
    RstStream {
        id: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// SYN_REPLY, SETTINGS, HEADERS, WINDOW_UPDATE and unknown types.
    Ignored,
}

/// Reads frames, inflating header blocks with the connection's
/// decompression context.
pub(crate) struct FrameReader<R> {
    io: R,
    inflate: Decompress,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R) -> Self {
        FrameReader {
            io,
            inflate: Decompress::new(true),
        }
    }

    /// The next frame, or `None` once the client closed the connection.
    pub(crate) async fn next(&mut self) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        if len > MAX_FRAME {
            return Err(invalid(format!("frame of {len} bytes is too large")));
        }
        let mut body = vec![0u8; len];
        self.io.read_exact(&mut body).await?;
        let mut body = Bytes::from(body);
        if head[0] & CONTROL_BIT == 0 {
            let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some(Frame::Data {
                id,
                fin: flags & FLAG_FIN != 0,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0] & !CONTROL_BIT, head[1]]);
        if version != VERSION {
            return Err(invalid(format!("unsupported SPDY version {version}")));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |n: usize, body: &Bytes| {
            if body.len() < n {
                Err(invalid(format!("control frame {kind} is too short")))
            } else {
                Ok(())
            }
        };
        Ok(Some(match kind {
            SYN_STREAM => {
                need(10, &body)?;
                let id = body.get_u32() & 0x7fff_ffff;
                body.advance(6); // associated stream, priority, slot
                let headers = self.headers(&body)?;
                Frame::SynStream {
                    id,
                    fin: flags & FLAG_FIN != 0,
                    headers,
                }
            }
            RST_STREAM => {
                need(8, &body)?;
                Frame::RstStream {
                    id: body.get_u32() & 0x7fff_ffff,
                }
            }
            PING => {
                need(4, &body)?;
                Frame::Ping { id: body.get_u32() }
            }
            GOAWAY => Frame::GoAway,
            // A header block in a frame we ignore still advances the
            // shared compression context.
            SYN_REPLY | 8 if body.len() >= 4 => {
                self.headers(&body.slice(4..))?;
                Frame::Ignored
            }
            _ => Frame::Ignored,
        }))
    }

    fn headers(&mut self, compressed: &[u8]) -> io::Result<Headers> {
        let block = self.inflate(compressed)?;
        parse_header_block(&block)
    }

    fn inflate(&mut self, mut input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(invalid("header block too large"));
                }
                out.reserve(out.len().max(256));
            }
            let before_in = self.inflate.total_in();
            let before_out = out.len();
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let read = (self.inflate.total_in() - before_in) as usize;
            input = &input[read..];
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| invalid(format!("header dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(invalid(format!("header block: {e}"))),
            }
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if read == 0 && out.len() == before_out && out.len() < out.capacity() {
                return Err(invalid("header block does not inflate"));
            }
        }
    }
}

/// Parses an inflated header block: a pair count, then length-prefixed
/// names and values (32-bit lengths in SPDY/3).
fn parse_header_block(mut block: &[u8]) -> io::Result<Headers> {
    let take = |block: &mut &[u8]| -> io::Result<String> {
        if block.len() < 4 {
            return Err(invalid("truncated header block"));
        }
        let n = block.get_u32() as usize;
        if block.len() < n {
            return Err(invalid("truncated header block"));
        }
        let text = String::from_utf8_lossy(&block[..n]).into_owned();
        block.advance(n);
        Ok(text)
    };
    if block.len() < 4 {
        return Err(invalid("truncated header block"));
    }
    let count = block.get_u32();
    let mut pairs = Vec::new();
    for _ in 0..count {
        let name = take(&mut block)?.to_ascii_lowercase();
        let value = take(&mut block)?;
        pairs.push((name, value));
    }
    Ok(Headers(pairs))
}

/// Encodes frames for the client, deflating header blocks with the
/// connection's compression context.
pub(crate) struct FrameWriter {
    deflate: Compress,
}

impl FrameWriter {
    pub(crate) fn new() -> FrameWriter {
        let mut deflate = Compress::new(Compression::default(), true);
        // Ours is the only use of the dictionary; failure would only
        // cost compression, which no peer requires.
        let _ = deflate.set_dictionary(&DICTIONARY);
        FrameWriter { deflate }
    }

    /// SYN_REPLY with no headers: the stream is accepted.
    pub(crate) fn syn_reply(&mut self, id: u32, out: &mut BytesMut) {
        let block = self.deflate_block(&0u32.to_be_bytes());
        control(out, SYN_REPLY, 0, 4 + block.len());
        out.put_u32(id);
        out.put_slice(&block);
    }

    pub(crate) fn rst_stream(id: u32, status: u32, out: &mut BytesMut) {
        control(out, RST_STREAM, 0, 8);
        out.put_u32(id);
        out.put_u32(status);
    }

    pub(crate) fn ping(id: u32, out: &mut BytesMut) {
        control(out, PING, 0, 4);
        out.put_u32(id);
    }

    /// GOAWAY with status OK; `last` is the last stream the client opened.
    pub(crate) fn goaway(last: u32, out: &mut BytesMut) {
        control(out, GOAWAY, 0, 8);
        out.put_u32(last);
        out.put_u32(0);
    }

    pub(crate) fn data(id: u32, data: &[u8], fin: bool, out: &mut BytesMut) {
        out.put_u32(id & 0x7fff_ffff);
        out.put_u8(if fin { FLAG_FIN } else { 0 });
        out.put_slice(&(data.len() as u32).to_be_bytes()[1..]);
        out.put_slice(data);
    }

    fn deflate_block(&mut self, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(block.len() + 64);
        loop {
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(block, &mut out, FlushCompress::Sync)
                .expect("deflate into a growing buffer");
            let done = (self.deflate.total_in() - before) as usize == block.len();
            if done && out.len() < out.capacity() && status != Status::BufError {
                return out;
            }
            out.reserve(256);
        }
    }
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u8(flags);
    out.put_slice(&(len as u32).to_be_bytes()[1..]);
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's SYN_STREAM, as a SPDY client compresses it (with the
    /// dictionary, one context for the connection).
    fn syn_stream(deflate: &mut Compress, id: u32, pairs: &[(&str, &str)], fin: bool) -> Vec<u8> {
        let mut block = BytesMut::new();
        block.put_u32(pairs.len() as u32);
        for (n, v) in pairs {
            block.put_u32(n.len() as u32);
            block.put_slice(n.as_bytes());
            block.put_u32(v.len() as u32);
            block.put_slice(v.as_bytes());
        }
        let mut compressed = Vec::with_capacity(block.len() + 128);
        deflate
            .compress_vec(&block, &mut compressed, FlushCompress::Sync)
            .expect("ok");
        let mut out = BytesMut::new();
        control(
            &mut out,
            SYN_STREAM,
            if fin { FLAG_FIN } else { 0 },
            10 + compressed.len(),
        );
        out.put_u32(id);
        out.put_u32(0);
        out.put_u16(0);
        out.put_slice(&compressed);
        out.to_vec()
    }

    #[tokio::test]
    async fn reads_streams_with_a_shared_compression_context() {
        let mut deflate = Compress::new(Compression::best(), true);
        deflate.set_dictionary(&DICTIONARY).expect("ok");
        let mut wire = syn_stream(&mut deflate, 1, &[("streamType", "error")], false);
        wire.extend(syn_stream(
            &mut deflate,
            3,
            &[("streamtype", "stdout")],
            false,
        ));
        let mut data = BytesMut::new();
        FrameWriter::data(3, b"hi", true, &mut data);
        wire.extend_from_slice(&data);
        let mut reader = FrameReader::new(&wire[..]);
        let first = reader.next().await.expect("ok").expect("ok");
        assert_eq!(
            first,
            Frame::SynStream {
                id: 1,
                fin: false,
                headers: Headers::from_pairs(&[("streamtype", "error")])
            }
        );
        let Frame::SynStream { id: 3, headers, .. } = reader.next().await.expect("ok").expect("ok")
        else {
            panic!("second stream")
        };
        assert_eq!(headers.get("streamType"), Some("stdout"));
        assert_eq!(
            reader.next().await.expect("ok").expect("ok"),
            Frame::Data {
                id: 3,
                fin: true,
                data: Bytes::from_static(b"hi")
            }
        );
        assert_eq!(reader.next().await.expect("ok"), None);
    }

    #[tokio::test]
    async fn replies_inflate_with_the_dictionary() {
        let mut writer = FrameWriter::new();
        let mut out = BytesMut::new();
        writer.syn_reply(1, &mut out);
        writer.syn_reply(3, &mut out);
        // Read back as a client would: same framing, same dictionary.
        let mut inflate = Decompress::new(true);
        let mut buf = &out[..];
        for id in [1, 3] {
            assert_eq!(buf[0], 0x80);
            assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), SYN_REPLY);
            let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
            let body = &buf[8..8 + len];
            assert_eq!(u32::from_be_bytes(body[..4].try_into().expect("ok")), id);
            let mut block = Vec::with_capacity(64);
            if let Err(e) = inflate.decompress_vec(&body[4..], &mut block, FlushDecompress::Sync) {
                assert!(e.needs_dictionary().is_some());
                inflate.set_dictionary(&DICTIONARY).expect("ok");
                let consumed = inflate.total_in() as usize;
                inflate
                    .decompress_vec(&body[4 + consumed..], &mut block, FlushDecompress::Sync)
                    .expect("ok");
            }
            assert_eq!(block, 0u32.to_be_bytes());
            buf = &buf[8 + len..];
        }
    }

    #[tokio::test]
    async fn hostile_frames_are_errors_not_allocations() {
        let mut huge = BytesMut::new();
        control(&mut huge, SYN_STREAM, 0, 0xff_ffff);
        assert!(FrameReader::new(&huge[..]).next().await.is_err());
        let mut short = BytesMut::new();
        control(&mut short, RST_STREAM, 0, 2);
        short.put_u16(0);
        assert!(FrameReader::new(&short[..]).next().await.is_err());
        let mut garbage = BytesMut::new();
        control(&mut garbage, SYN_STREAM, 0, 14);
        garbage.put_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
        assert!(FrameReader::new(&garbage[..]).next().await.is_err());
    }
}
