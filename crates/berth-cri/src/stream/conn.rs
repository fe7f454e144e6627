//! What the two transports (SPDY and WebSocket) share: a connection's
//! outgoing messages, written by one writer task, and the byte streams
//! that exec, attach and port forwarding read and write.

use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// The largest payload of one outgoing data frame or message.
pub(crate) const MAX_CHUNK: usize = 32 * 1024;

/// How many frames a stream buffers in either direction before its
/// writer waits.
pub(crate) const QUEUE: usize = 64;

/// A message for a connection's writer task.
#[derive(Debug)]
pub(crate) enum Out {
    /// Data on a SPDY stream or a WebSocket channel; `fin` ends the
    /// stream (SPDY only: a channel has no end of its own).
    Data { target: u32, data: Bytes, fin: bool },
    /// SPDY: the SYN_REPLY accepting a stream the client opened.
    Reply(u32),
    /// SPDY: RST_STREAM refusing or cancelling a stream.
    Reset(u32),
    /// SPDY: the answer to a client's PING.
    Pong(u32),
    /// Ends the connection: GOAWAY or a WebSocket close, then shutdown.
    Close,
}

/// A connection's queue to its writer task.
pub(crate) type Writer = mpsc::Sender<Out>;

/// Bytes arriving on one stream or channel; end of file when the client
/// ends it (SPDY FIN or RST, WebSocket v5 close) or the connection goes.
pub(crate) struct Inbound {
    rx: mpsc::Receiver<Bytes>,
    pending: Bytes,
}

impl Inbound {
    pub(crate) fn new(rx: mpsc::Receiver<Bytes>) -> Inbound {
        Inbound {
            rx,
            pending: Bytes::new(),
        }
    }

    /// The next chunk, or `None` at end of file.
    pub(crate) async fn next(&mut self) -> Option<Bytes> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        self.rx.recv().await
    }
}

impl AsyncRead for Inbound {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match ready!(this.rx.poll_recv(cx)) {
                Some(chunk) => this.pending = chunk,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// Bytes leaving on one stream or channel. Writes never fail: once the
/// client is gone, output is read and dropped, so the process behind it
/// never blocks on a pipe nobody drains.
#[derive(Clone)]
pub(crate) struct Outbound {
    tx: PollSender<Out>,
    target: u32,
}

impl Outbound {
    pub(crate) fn new(writer: &Writer, target: u32) -> Outbound {
        Outbound {
            tx: PollSender::new(writer.clone()),
            target,
        }
    }

    /// Sends `data` whole (in chunks of at most [`MAX_CHUNK`]).
    pub(crate) async fn send(&self, data: &[u8]) {
        let Some(tx) = self.tx.get_ref() else { return };
        for chunk in data.chunks(MAX_CHUNK) {
            let out = Out::Data {
                target: self.target,
                data: Bytes::copy_from_slice(chunk),
                fin: false,
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    }

    /// Sends an empty data frame or message (a WebSocket session's
    /// "connected" signal).
    pub(crate) async fn send_empty(&self) {
        if let Some(tx) = self.tx.get_ref() {
            let empty = Out::Data {
                target: self.target,
                data: Bytes::new(),
                fin: false,
            };
            let _ = tx.send(empty).await;
        }
    }

    /// Ends the stream (SPDY FIN; nothing on a WebSocket channel).
    pub(crate) async fn finish(&self) {
        if let Some(tx) = self.tx.get_ref() {
            let fin = Out::Data {
                target: self.target,
                data: Bytes::new(),
                fin: true,
            };
            let _ = tx.send(fin).await;
        }
    }
}

impl AsyncWrite for Outbound {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.tx.is_closed() || ready!(this.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Ok(buf.len()));
        }
        let n = buf.len().min(MAX_CHUNK);
        let out = Out::Data {
            target: this.target,
            data: Bytes::copy_from_slice(&buf[..n]),
            fin: false,
        };
        let _ = this.tx.send_item(out);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn inbound_reads_chunks_in_order_then_ends() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"hello ")).await.expect("ok");
        tx.send(Bytes::from_static(b"world")).await.expect("ok");
        drop(tx);
        let mut text = String::new();
        Inbound::new(rx)
            .read_to_string(&mut text)
            .await
            .expect("ok");
        assert_eq!(text, "hello world");
    }

    #[tokio::test]
    async fn outbound_splits_large_writes_and_survives_a_gone_client() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Outbound::new(&tx, 5);
        out.write_all(&vec![7u8; MAX_CHUNK + 10]).await.expect("ok");
        let mut sizes = Vec::new();
        for _ in 0..2 {
            match rx.recv().await {
                Some(Out::Data {
                    target: 5, data, ..
                }) => sizes.push(data.len()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(sizes, [MAX_CHUNK, 10]);
        drop(rx);
        out.write_all(b"into the void").await.expect("no error");
    }
}
