//! The reader a fetch returns: the response body as an `AsyncRead`,
//! skipping the bytes before the offset when the server ignored `Range`,
//! and failing when the body ends early or runs long.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::TryStreamExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::StreamReader;

/// A response body checked against the length the descriptor promises.
pub(crate) struct BodyReader {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    /// Bytes still to drop before the caller's first byte.
    skip: u64,
    /// Bytes still expected after the skip (`None`: unknown size).
    remaining: Option<u64>,
    /// `fetch sha256:… of <ref> from <host>`, for errors.
    what: String,
}

impl BodyReader {
    pub(crate) fn new(
        response: reqwest::Response,
        skip: u64,
        expected: Option<u64>,
        what: String,
    ) -> BodyReader {
        let stream = response.bytes_stream().map_err(io::Error::other);
        BodyReader {
            inner: Box::pin(StreamReader::new(stream)),
            skip,
            remaining: expected,
            what,
        }
    }

    fn poll_skip(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 8192];
        while self.skip > 0 {
            let want = scratch
                .len()
                .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            let mut buf = ReadBuf::new(&mut scratch[..want]);
            match self.inner.as_mut().poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.wrap(e))),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{}: body ended before the requested offset", self.what),
                    )))
                }
                Poll::Ready(Ok(())) => self.skip -= buf.filled().len() as u64,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The error with what was being read and the whole cause chain (an
    /// `io::Error`'s `Display` shows only its outermost layer).
    fn wrap(&self, err: io::Error) -> io::Error {
        let mut message = format!("{}: {err}", self.what);
        let mut source = err.get_ref().and_then(|inner| inner.source());
        while let Some(cause) = source {
            message += &format!(": {cause}");
            source = cause.source();
        }
        io::Error::new(err.kind(), message)
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.skip > 0 {
            match this.poll_skip(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        let before = buf.filled().len();
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(this.wrap(e))),
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                let Some(remaining) = this.remaining else {
                    return Poll::Ready(Ok(()));
                };
                if n == 0 && remaining > 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{}: short body, {remaining} bytes missing", this.what),
                    )));
                }
                if n > remaining {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: body longer than the descriptor's size", this.what),
                    )));
                }
                this.remaining = Some(remaining - n);
                Poll::Ready(Ok(()))
            }
        }
    }
}
