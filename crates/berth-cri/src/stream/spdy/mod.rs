//! A SPDY/3.1 server connection, as the Kubernetes streaming clients
//! (docker/spdystream under client-go and the kubelet) speak it after an
//! HTTP `Upgrade: SPDY/3.1`: the client opens every stream, the server
//! accepts each with a SYN_REPLY, and data flows both ways until FIN.
//!
//! One reader task turns frames into [`Stream`]s and their inbound bytes;
//! one writer task owns the socket's write half and encodes [`Out`]
//! messages. Dropping the handler side and sending [`Out::Close`] ends both.

mod dictionary;
mod frame;

use super::conn::{Inbound, Out, Writer, QUEUE};
use bytes::{Bytes, BytesMut};
pub(crate) use frame::Headers;
use frame::{Frame, FrameReader, FrameWriter};
use std::collections::{HashMap, HashSet};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// How many encoded bytes the writer gathers before one socket write.
const WRITE_BATCH: usize = 128 * 1024;

/// A stream the client opened (already accepted).
pub(crate) struct Stream {
    pub(crate) id: u32,
    pub(crate) headers: Headers,
    pub(crate) inbound: Inbound,
}

/// The server side of an upgraded connection.
pub(crate) struct Connection {
    /// Streams as the client opens them; ends with the connection.
    pub(crate) streams: mpsc::Receiver<Stream>,
    /// The queue to the writer task.
    pub(crate) writer: Writer,
}

/// Starts serving SPDY on an upgraded connection.
pub(crate) fn serve<IO>(io: IO) -> Connection
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (writer, queue) = mpsc::channel(QUEUE);
    let (new_streams, streams) = mpsc::channel(16);
    let reader = tokio::spawn(read_frames(read, writer.clone(), new_streams));
    tokio::spawn(write_frames(write, queue, reader.abort_handle()));
    Connection { streams, writer }
}

async fn read_frames<IO: AsyncRead>(
    read: ReadHalf<IO>,
    writer: Writer,
    new_streams: mpsc::Sender<Stream>,
) {
    let mut frames = FrameReader::new(read);
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let frame = match frames.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::debug!(%err, "spdy: bad frame, closing the connection");
                break;
            }
        };
        match frame {
            Frame::SynStream { id, fin, headers } => {
                let (tx, rx) = mpsc::channel(QUEUE);
                if !fin {
                    open.insert(id, tx);
                }
                if writer.send(Out::Reply(id)).await.is_err() {
                    break;
                }
                let stream = Stream {
                    id,
                    headers,
                    inbound: Inbound::new(rx),
                };
                let _ = new_streams.send(stream).await;
            }
            Frame::Data { id, fin, data } => {
                if !data.is_empty() {
                    if let Some(tx) = open.get(&id) {
                        if tx.send(data).await.is_err() {
                            open.remove(&id);
                        }
                    }
                }
                if fin {
                    open.remove(&id);
                }
            }
            Frame::RstStream { id } => {
                open.remove(&id);
            }
            // Odd ids are the client's pings; even ones would answer ours.
            Frame::Ping { id } if id % 2 == 1 => {
                let _ = writer.send(Out::Pong(id)).await;
            }
            Frame::GoAway => break,
            Frame::Ping { .. } | Frame::Ignored => {}
        }
    }
}

async fn write_frames<IO: AsyncWrite>(
    mut write: WriteHalf<IO>,
    mut queue: mpsc::Receiver<Out>,
    reader: AbortHandle,
) {
    let mut frames = FrameWriter::new();
    let mut finished: HashSet<u32> = HashSet::new();
    let mut last_stream = 0;
    let mut buf = BytesMut::with_capacity(WRITE_BATCH);
    let mut closing = false;
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Out::Data { target, data, fin } => {
                    if !finished.contains(&target) {
                        FrameWriter::data(target, &data, fin, &mut buf);
                        if fin {
                            finished.insert(target);
                        }
                    }
                }
                Out::Reply(id) => {
                    last_stream = last_stream.max(id);
                    frames.syn_reply(id, &mut buf);
                }
                Out::Reset(id) => {
                    if finished.insert(id) {
                        FrameWriter::rst_stream(id, frame::CANCEL, &mut buf);
                    }
                }
                Out::Pong(id) => FrameWriter::ping(id, &mut buf),
                Out::Close => {
                    FrameWriter::goaway(last_stream, &mut buf);
                    closing = true;
                    break;
                }
            }
            if buf.len() < WRITE_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if write.write_all(&buf).await.is_err() {
            break;
        }
        buf.clear();
        if closing {
            let _ = write.shutdown().await;
            break;
        }
    }
    // The client is gone or told to go: stop reading, which ends every
    // inbound stream and the stream queue.
    reader.abort();
}
