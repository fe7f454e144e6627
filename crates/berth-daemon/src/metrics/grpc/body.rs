//! The bodies passing through the layer: messages counted by their gRPC
//! frames, and a response's status read from its trailers.

use super::Call;
use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use prometheus_client::metrics::counter::Counter;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Counts gRPC messages in a byte stream by their 5-byte frame headers.
#[derive(Debug, Default)]
struct Frames {
    /// Header bytes seen of the frame being read.
    header: [u8; 5],
    /// How many of `header` are filled.
    filled: usize,
    /// Payload bytes still to skip.
    remaining: u64,
}

impl Frames {
    /// Feeds `data`; returns how many frames it completed.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut done = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(data.len() as u64);
                self.remaining -= skip;
                data = &data[skip as usize..];
                continue;
            }
            let take = (5 - self.filled).min(data.len());
            self.header[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == 5 {
                self.filled = 0;
                let len = [
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ];
                self.remaining = u32::from_be_bytes(len).into();
                // A frame's end is its header's end plus its length: count
                // it now, it is read whole or the stream breaks.
                done += 1;
            }
        }
        done
    }
}

pin_project_lite::pin_project! {
    /// A body counting the gRPC messages in it and, for a response,
    /// counting the call as handled when its trailers pass.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        frames: Frames,
        messages: Option<Counter>,
        call: Option<Call>,
    }
}

impl<B> CountedBody<B> {
    pub(super) fn new(inner: B, messages: Option<Counter>, call: Option<Call>) -> Self {
        CountedBody {
            inner,
            frames: Frames::default(),
            messages,
            call,
        }
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(counter)) = (frame.data_ref(), this.messages.as_ref()) {
                    let n = this.frames.feed(data.chunk());
                    if n > 0 {
                        counter.inc_by(n);
                    }
                }
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.call.as_mut()) {
                    call.handled_from(trailers);
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.as_mut() {
                    call.handled("Unknown");
                }
            }
            None => {
                // The body ended without trailers: a broken response.
                if let Some(call) = this.call.as_mut() {
                    call.handled("Unknown");
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_counted_across_chunks() {
        let mut frames = Frames::default();
        let one = [0u8, 0, 0, 0, 3, b'a', b'b', b'c'];
        let empty = [0u8, 0, 0, 0, 0];
        let mut stream = Vec::new();
        stream.extend_from_slice(&one);
        stream.extend_from_slice(&empty);
        stream.extend_from_slice(&one);
        let (a, b) = stream.split_at(6);
        let (b, c) = b.split_at(4);
        assert_eq!(frames.feed(a) + frames.feed(b) + frames.feed(c), 3);
    }
}
