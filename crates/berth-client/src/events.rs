//! `containerd.services.events.v1.Events`: publishing events and
//! subscribing to the daemon's event stream.
//!
//! Every event travels in an [`Envelope`]: when it happened, the namespace it
//! happened in, its topic (`/containers/create`, `/tasks/exit`, …) and the
//! event message packed in an `Any` (unpack it with [`crate::typeurl`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use berth_core::{Error, Result};
use futures::Stream;
use prost_types::Any;
use tokio::sync::mpsc;
use tonic::Request;

use crate::client::status_error;
use crate::pb::services::v1::events_client::EventsClient;
use crate::pb::services::v1::{PublishRequest, SubscribeRequest};
use crate::pb::types::Envelope;
use crate::Client;

/// How many envelopes may wait for a slow reader before the subscription
/// stops reading from the daemon.
const BUFFER: usize = 64;

/// The events service; see [`Client::events`].
#[derive(Clone, Debug)]
pub struct Events {
    client: Client,
}

impl Client {
    /// The events service; publishing uses the client's namespace.
    pub fn events(&self) -> Events {
        Events {
            client: self.clone(),
        }
    }
}

impl Events {
    /// Publishes `event` on `topic` in the client's namespace.
    pub async fn publish(&self, topic: &str, event: Any) -> Result<()> {
        let request = self.client.request(
            PublishRequest {
                topic: topic.to_string(),
                event: Some(event),
            },
            true,
        )?;
        self.client
            .call(EventsClient::new(self.client.channel()).publish(request))
            .await
    }

    /// Subscribes to the events of every namespace that match any of
    /// `filters` (containerd's filter syntax over `topic`, `namespace` and
    /// `event.*`, e.g. `topic~=/tasks/`; none: all).
    ///
    /// The call is sent at once, but a daemon may register the subscription
    /// a moment later, so events published right after this returns can be
    /// missed. The client's timeout does not apply: the subscription lasts
    /// until the stream is dropped or the daemon ends it. A daemon's refusal
    /// (a bad filter, say) arrives as the stream's first item.
    pub async fn subscribe<S: AsRef<str>>(&self, filters: &[S]) -> Result<EventStream> {
        let filters = filters.iter().map(|f| f.as_ref().to_string()).collect();
        let request = self.client.request(SubscribeRequest { filters }, false)?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let client = self.client.clone();
        // A task drives the call, so that it is sent now rather than when
        // the stream is first polled; dropping the stream ends the task and,
        // with it, the call.
        tokio::spawn(async move {
            tokio::select! {
                () = forward(client, request, &tx) => {}
                () = tx.closed() => {}
            }
        });
        Ok(EventStream { rx })
    }
}

/// Opens the subscription and forwards its envelopes until either side ends.
async fn forward(
    client: Client,
    request: Request<SubscribeRequest>,
    tx: &mpsc::Sender<Result<Envelope>>,
) {
    let opened = EventsClient::new(client.channel()).subscribe(request).await;
    let mut stream = match opened {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let _ = tx.send(Err(status_error(status))).await;
            return;
        }
    };
    loop {
        let item = match stream.message().await {
            Ok(Some(envelope)) => Ok(envelope),
            Ok(None) => return,
            Err(status) => Err(status_error(status)),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// The envelopes of a subscription, in the order the daemon sent them.
///
/// It ends when the daemon ends the subscription; an error is always the
/// last item.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Result<Envelope, Error>>,
}

impl EventStream {
    /// The next envelope, or `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Envelope>> {
        self.rx.recv().await
    }
}

impl Stream for EventStream {
    type Item = Result<Envelope>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
