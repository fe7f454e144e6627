//! Kubernetes' channel protocols over a WebSocket (`channel.k8s.io` and
//! its `base64.` form, with the `v4.` and `v5.` prefixes): every message
//! starts with its channel number (a byte, or an ASCII digit in base64
//! text messages), and the rest is that channel's data. v5 adds the close
//! signal: channel 255 carrying the number of the channel the client ends.

use super::conn::{Inbound, Out, Writer, QUEUE};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The channel of v5's close signal.
const CLOSE_CHANNEL: u8 = 255;

/// How a negotiated subprotocol frames channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Framing {
    /// Text messages with base64 data, instead of binary messages.
    pub(crate) base64: bool,
    /// The v5 close signal is understood.
    pub(crate) close_signal: bool,
}

/// The subprotocols a streaming endpoint accepts, in the server's terms:
/// (name, framing, status as v4 JSON).
pub(crate) fn framing(protocol: &str) -> Option<(Framing, bool)> {
    let (version, rest) = match protocol.split_once('.') {
        Some((v @ ("v4" | "v5"), rest)) => (Some(v), rest),
        _ => (None, protocol),
    };
    let base64 = match rest {
        "channel.k8s.io" => false,
        "base64.channel.k8s.io" => true,
        "" if version.is_none() => false,
        _ => return None,
    };
    let framing = Framing {
        base64,
        close_signal: version == Some("v5"),
    };
    Some((framing, version.is_some()))
}

/// Serves channels on an upgraded WebSocket: `readable[i]` says whether
/// channel `i` takes input from the client. Returns each readable
/// channel's inbound bytes and the queue to the writer task.
pub(crate) fn serve<IO>(
    ws: WebSocketStream<IO>,
    framing: Framing,
    readable: &[bool],
) -> (Vec<Option<Inbound>>, Writer)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let mut senders = Vec::new();
    let mut inbound = Vec::new();
    for &r in readable {
        if r {
            let (tx, rx) = mpsc::channel(QUEUE);
            senders.push(Some(tx));
            inbound.push(Some(Inbound::new(rx)));
        } else {
            senders.push(None);
            inbound.push(None);
        }
    }
    let (writer, queue) = mpsc::channel(QUEUE);
    let reader = tokio::spawn(read_messages(stream, framing, senders));
    tokio::spawn(write_messages(sink, framing, queue, reader.abort_handle()));
    (inbound, writer)
}

async fn read_messages<S>(
    mut stream: S,
    framing: Framing,
    mut senders: Vec<Option<mpsc::Sender<Bytes>>>,
) where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(message)) = stream.next().await {
        let Some((channel, data)) = decode(message, framing) else {
            continue;
        };
        if framing.close_signal && channel == CLOSE_CHANNEL {
            if let Some(&closed) = data.first() {
                if let Some(slot) = senders.get_mut(closed as usize) {
                    *slot = None;
                }
            }
            continue;
        }
        let Some(Some(tx)) = senders.get(channel as usize) else {
            continue;
        };
        if !data.is_empty() && tx.send(data).await.is_err() {
            senders[channel as usize] = None;
        }
    }
}

/// A message's channel and data; `None` for control messages and
/// malformed ones (which the protocol says to skip).
fn decode(message: Message, framing: Framing) -> Option<(u8, Bytes)> {
    match message {
        Message::Binary(data) if !framing.base64 && !data.is_empty() => {
            Some((data[0], data.slice(1..)))
        }
        Message::Text(text) if framing.base64 && !text.is_empty() => {
            let bytes = text.as_bytes();
            let channel = bytes[0].checked_sub(b'0')?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(&bytes[1..])
                .ok()?;
            Some((channel, Bytes::from(data)))
        }
        _ => None,
    }
}

fn encode(channel: u32, data: &[u8], framing: Framing) -> Message {
    if framing.base64 {
        let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        text.push((b'0' + channel as u8) as char);
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
        Message::text(text)
    } else {
        let mut frame = BytesMut::with_capacity(1 + data.len());
        frame.put_u8(channel as u8);
        frame.put_slice(data);
        Message::binary(frame.freeze())
    }
}

async fn write_messages<S>(
    mut sink: S,
    framing: Framing,
    mut queue: mpsc::Receiver<Out>,
    reader: tokio::task::AbortHandle,
) where
    S: futures::Sink<Message> + Unpin,
{
    while let Some(out) = queue.recv().await {
        let sent = match out {
            // A channel has no end of its own: only data is sent, and
            // an empty message only where the caller asked for one.
            Out::Data {
                fin: true, data, ..
            } if data.is_empty() => continue,
            Out::Data { target, data, .. } => sink.send(encode(target, &data, framing)).await,
            Out::Close => {
                let _ = sink.send(Message::Close(None)).await;
                let _ = sink.close().await;
                break;
            }
            Out::Reply(_) | Out::Reset(_) | Out::Pong(_) => continue,
        };
        if sent.is_err() {
            break;
        }
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_map_to_framings() {
        let binary = Framing {
            base64: false,
            close_signal: false,
        };
        assert_eq!(framing(""), Some((binary, false)));
        assert_eq!(framing("channel.k8s.io"), Some((binary, false)));
        assert_eq!(framing("v4.channel.k8s.io"), Some((binary, true)));
        let v5 = Framing {
            close_signal: true,
            ..binary
        };
        assert_eq!(framing("v5.channel.k8s.io"), Some((v5, true)));
        let b64 = Framing {
            base64: true,
            ..binary
        };
        assert_eq!(framing("base64.channel.k8s.io"), Some((b64, false)));
        assert_eq!(framing("v4.base64.channel.k8s.io"), Some((b64, true)));
        assert_eq!(framing("v3.channel.k8s.io"), None);
        assert_eq!(framing("chat"), None);
    }

    #[test]
    fn messages_round_trip_in_both_framings() {
        for base64 in [false, true] {
            let f = Framing {
                base64,
                close_signal: false,
            };
            let message = encode(1, b"hello\n", f);
            assert_eq!(
                decode(message, f),
                Some((1, Bytes::from_static(b"hello\n")))
            );
        }
        let f = Framing {
            base64: true,
            close_signal: false,
        };
        assert_eq!(
            decode(Message::text("0Zm9vCg=="), f),
            Some((0, Bytes::from_static(b"foo\n")))
        );
        assert_eq!(decode(Message::text("0!!!"), f), None);
    }
}
