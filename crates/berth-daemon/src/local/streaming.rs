//! Streams: containerd's stream manager (`plugins/streaming/manager.go`)
//! and the binary stream protocol of its transfer service
//! (`core/transfer/streaming/stream.go`).
//!
//! A client opens `Streaming.Stream`, a bidirectional stream of `Any`
//! messages, and sends `StreamInit{id}` first. The daemon registers the
//! stream under (namespace, id) and answers with an empty message once it
//! is registered, so a client that has read that answer may name the id in
//! a Transfer request. The transfer then looks the stream up and exchanges
//! `Any`-wrapped messages on it: `Progress` events, `AuthRequest` /
//! `AuthResponse` for registry credentials, and archive bytes as `Data`.
//!
//! Archive bytes are flow controlled by the receiver, as
//! [`berth_api::flow`] implements for both ends. The sender ends the data
//! by closing its side: the client half-closes its request stream, the
//! daemon ends the RPC.
//!
//! Closing a stream on the daemon side ([`ServerStream::close`]) ends the
//! RPC and forgets the registration; so does the client going away.

use berth_api::flow::MessageStream;
use berth_api::status::from_status;
use berth_api::typeurl::pack;
use berth_core::{Error, Result};
use futures::{Stream, StreamExt};
use prost_types::Any;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::Status;

/// What the client sends on a stream.
pub type Inbound = Pin<Box<dyn Stream<Item = std::result::Result<Any, Status>> + Send>>;

type Outbound = mpsc::Sender<std::result::Result<Any, Status>>;
type Key = (String, String);

/// Registered streams by (namespace, id).
#[derive(Default)]
pub struct StreamManager {
    streams: Mutex<HashMap<Key, Arc<ServerStream>>>,
}

/// One registered stream, as the daemon sees it.
pub struct ServerStream {
    key: Key,
    /// Messages to the client; taken (dropped) on close, which ends the RPC.
    outbound: Mutex<Option<Outbound>>,
    /// Messages from the client, read by one receiver at a time.
    inbound: tokio::sync::Mutex<Inbound>,
    manager: Weak<StreamManager>,
}

/// The response half of a registered stream: what the client reads. When
/// the RPC ends — the daemon closed the stream or the client went away —
/// it is dropped and the registration goes with it.
pub struct ResponseStream {
    rx: mpsc::Receiver<std::result::Result<Any, Status>>,
    key: Key,
    manager: Weak<StreamManager>,
}

impl Stream for ResponseStream {
    type Item = std::result::Result<Any, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if let Some(manager) = self.manager.upgrade() {
            manager.forget(&self.key);
        }
    }
}

impl StreamManager {
    /// Registers a stream the client opened, under `id` in namespace `ns`
    /// (which may be empty, as in containerd). Returns the handle the
    /// daemon uses and the response stream to hand to tonic; the
    /// acknowledgement (an empty message) is already queued on it.
    pub fn register(
        self: &Arc<Self>,
        ns: &str,
        id: &str,
        inbound: Inbound,
    ) -> Result<(Arc<ServerStream>, ResponseStream)> {
        let key = (ns.to_owned(), id.to_owned());
        let (tx, rx) = mpsc::channel(16);
        let stream = Arc::new(ServerStream {
            key: key.clone(),
            outbound: Mutex::new(Some(tx.clone())),
            inbound: tokio::sync::Mutex::new(inbound),
            manager: Arc::downgrade(self),
        });
        {
            let mut streams = self.lock();
            if streams.contains_key(&key) {
                return Err(Error::already_exists(format!("stream {id:?}")));
            }
            streams.insert(key.clone(), stream.clone());
        }
        // The channel is new and has room: this cannot fail.
        let _ = tx.try_send(Ok(pack(&())));
        let response = ResponseStream {
            rx,
            key,
            manager: Arc::downgrade(self),
        };
        Ok((stream, response))
    }

    /// The stream `id` of namespace `ns`.
    pub fn get(&self, ns: &str, id: &str) -> Result<Arc<ServerStream>> {
        self.lock()
            .get(&(ns.to_owned(), id.to_owned()))
            .cloned()
            .ok_or_else(|| Error::not_found(format!("stream {id:?}")))
    }

    /// How many streams are registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no stream is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<ServerStream>>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for ServerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStream")
            .field("namespace", &self.key.0)
            .field("id", &self.key.1)
            .finish()
    }
}

impl ServerStream {
    /// The stream's id.
    pub fn id(&self) -> &str {
        &self.key.1
    }

    /// Sends a message to the client; `Unavailable` once the stream is
    /// closed or the client is gone.
    pub async fn send(&self, message: Any) -> Result<()> {
        let tx = self
            .outbound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| self.closed())?;
        tx.send(Ok(message)).await.map_err(|_| self.closed())
    }

    /// The next message from the client; `None` once the client closed
    /// its side.
    pub async fn recv(&self) -> Result<Option<Any>> {
        let mut inbound = self.inbound.lock().await;
        match inbound.next().await {
            None => Ok(None),
            Some(Ok(message)) => Ok(Some(message)),
            Some(Err(status)) => {
                Err(from_status(&status).context(format!("stream {:?}", self.id())))
            }
        }
    }

    /// Ends the stream: the client reads the end of it, and the id is free
    /// again.
    pub fn close(&self) {
        self.outbound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(manager) = self.manager.upgrade() {
            manager.forget(&self.key);
        }
    }

    fn closed(&self) -> Error {
        Error::unavailable(format!("stream {:?} is closed", self.id()))
    }
}

/// Archive bytes on a stream, within the client's windows: the shared
/// flow control ([`berth_api::flow`]). The daemon ends its side with
/// [`ServerStream::close`].
impl MessageStream for ServerStream {
    fn id(&self) -> &str {
        ServerStream::id(self)
    }

    async fn send(&self, message: Any) -> Result<()> {
        ServerStream::send(self, message).await
    }

    async fn recv(&self) -> Result<Option<Any>> {
        ServerStream::recv(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::flow::{receive_data, send_data, MAX_DATA, WINDOW};
    use berth_api::pb::types::transfer::{Data, WindowUpdate};
    use berth_api::typeurl::unpack;
    use berth_core::ErrorKind;

    /// A client side for tests: what it sends and the daemon's handle.
    fn open(
        manager: &Arc<StreamManager>,
        id: &str,
    ) -> (
        mpsc::Sender<std::result::Result<Any, Status>>,
        Arc<ServerStream>,
        ResponseStream,
    ) {
        let (tx, rx) = mpsc::channel(64);
        let inbound: Inbound = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        let (stream, response) = manager.register("ns", id, inbound).expect("register");
        (tx, stream, response)
    }

    #[tokio::test]
    async fn register_acknowledges_and_ids_are_unique() {
        let manager = Arc::new(StreamManager::default());
        let (_tx, stream, mut response) = open(&manager, "a");
        let ack = response.next().await.expect("ack").expect("ok");
        assert_eq!(ack.type_url, "google.protobuf.Empty");
        let (_tx2, rx2) = mpsc::channel(1);
        let err = manager
            .register(
                "ns",
                "a",
                Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx2)),
            )
            .err()
            .expect("duplicate");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(manager.get("other", "a").is_err(), "namespaced");
        assert_eq!(manager.get("ns", "a").expect("get").id(), "a");
        stream.close();
        assert!(response.next().await.is_none(), "close ends the RPC");
        assert_eq!(
            manager.get("ns", "a").expect_err("gone").kind(),
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn dropping_the_response_forgets_the_stream() {
        let manager = Arc::new(StreamManager::default());
        let (_tx, _stream, response) = open(&manager, "b");
        drop(response);
        assert!(manager.is_empty());
    }

    /// The client half of the protocol, written out for the test.
    #[tokio::test]
    async fn data_flows_within_windows_both_ways() {
        let manager = Arc::new(StreamManager::default());
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

        // Client sends, daemon receives.
        let (tx, stream, mut response) = open(&manager, "in");
        let body = payload.clone();
        let client = tokio::spawn(async move {
            let _ack = response.next().await;
            let mut window = 0i64;
            let mut sent = 0usize;
            while sent < body.len() {
                while window <= 0 {
                    let m = response.next().await.expect("msg").expect("ok");
                    window += i64::from(unpack::<WindowUpdate>(&m).expect("update").update);
                }
                let n = (body.len() - sent).min(MAX_DATA).min(window as usize);
                let data = Data {
                    data: body[sent..sent + n].to_vec(),
                };
                tx.send(Ok(pack(&data))).await.expect("send");
                window -= n as i64;
                sent += n;
            }
            // Half-close, then read until the daemon ends the stream.
            drop(tx);
            while response.next().await.is_some() {}
        });
        let mut got = Vec::new();
        let n = receive_data(&*stream, &mut got).await.expect("receive");
        stream.close();
        client.await.expect("client");
        assert_eq!(n as usize, payload.len());
        assert_eq!(got, payload);

        // Daemon sends, client receives.
        let (tx, stream, mut response) = open(&manager, "out");
        let _ack = response.next().await;
        let sender = {
            let stream = stream.clone();
            let body = payload.clone();
            tokio::spawn(async move {
                let n = send_data(&*stream, &mut body.as_slice())
                    .await
                    .expect("send");
                stream.close();
                n
            })
        };
        let mut got = Vec::new();
        let mut window = 0i64;
        loop {
            if window < i64::from(WINDOW) {
                tx.send(Ok(pack(&WindowUpdate { update: WINDOW })))
                    .await
                    .expect("grant");
                window += i64::from(WINDOW);
            }
            let Some(m) = response.next().await else {
                break;
            };
            let data = unpack::<Data>(&m.expect("ok")).expect("data");
            assert!(data.data.len() <= MAX_DATA);
            window -= data.data.len() as i64;
            assert!(window >= 0, "the sender stays within its window");
            got.extend_from_slice(&data.data);
        }
        assert_eq!(sender.await.expect("sender") as usize, payload.len());
        assert_eq!(got, payload);
    }
}
