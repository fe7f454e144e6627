//! The event exchange: a broadcast of envelopes to every subscriber.
//!
//! Publishing never blocks: a subscriber that falls more than the channel's
//! capacity behind loses the oldest events (and the loss is logged), as a slow
//! `ctr events` must not stall container creation.

use super::validate_topic;
use berth_api::pb::types::Envelope;
use berth_core::{filters::Adaptor, filters::Filter, Result};
use futures::{Stream, StreamExt};
use prost_types::{Any, Timestamp};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

const CAPACITY: usize = 1024;

/// The in-process exchange.
#[derive(Clone)]
pub struct Exchange {
    sender: broadcast::Sender<Arc<Envelope>>,
    /// Set once at shutdown: every subscription stream then ends, so open
    /// `ctr events` connections do not hold the daemon up.
    closed: watch::Sender<bool>,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange {
            sender: broadcast::channel(CAPACITY).0,
            closed: watch::channel(false).0,
        }
    }
}

impl Exchange {
    /// Publishes `event` on `topic` in `namespace`, stamped now.
    pub fn publish(&self, namespace: &str, topic: &str, event: Any) -> Result<()> {
        validate_topic(topic)?;
        self.send(Envelope {
            timestamp: Some(Timestamp::from(SystemTime::now())),
            namespace: namespace.to_string(),
            topic: topic.to_string(),
            event: Some(event),
        });
        Ok(())
    }

    /// Forwards an envelope published elsewhere (a shim), keeping its stamp.
    pub fn forward(&self, envelope: Envelope) -> Result<()> {
        validate_topic(&envelope.topic)?;
        berth_core::identifiers::validate(&envelope.namespace)
            .map_err(|e| e.context("envelope namespace"))?;
        self.send(envelope);
        Ok(())
    }

    fn send(&self, envelope: Envelope) {
        tracing::debug!(topic = %envelope.topic, namespace = %envelope.namespace, "event published");
        // An error only means nobody is subscribed.
        let _ = self.sender.send(Arc::new(envelope));
    }

    /// Ends every subscription (at shutdown).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Every envelope published from now on that passes `filter`, until the
    /// exchange closes.
    pub fn subscribe(&self, filter: Filter) -> impl Stream<Item = Envelope> + Send + 'static {
        let mut closed = self.closed.subscribe();
        let closing = async move {
            let _ = closed.wait_for(|c| *c).await;
        };
        let events = BroadcastStream::new(self.sender.subscribe()).filter_map(move |item| {
            let passed = match item {
                Ok(envelope) => filter
                    .matches(&EnvelopeFields(&envelope))
                    .then(|| (*envelope).clone()),
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "event subscriber fell behind");
                    None
                }
            };
            futures::future::ready(passed)
        });
        events.take_until(Box::pin(closing))
    }
}

/// containerd's envelope field paths: `topic`, `namespace`, `event.…`.
struct EnvelopeFields<'a>(&'a Envelope);

impl Adaptor for EnvelopeFields<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match path.first().map(String::as_str)? {
            "topic" if path.len() == 1 => Some(self.0.topic.clone()),
            "namespace" if path.len() == 1 => Some(self.0.namespace.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any() -> Any {
        Any {
            type_url: "x".into(),
            value: Vec::new(),
        }
    }

    #[tokio::test]
    async fn subscribers_see_events_until_close() {
        let exchange = Exchange::default();
        let mut stream = Box::pin(exchange.subscribe(Filter::default()));
        exchange.publish("default", "/a/b", any()).expect("publish");
        let got = stream.next().await.expect("event");
        assert_eq!(
            (got.namespace.as_str(), got.topic.as_str()),
            ("default", "/a/b")
        );
        exchange.close();
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn invalid_topic_is_rejected() {
        let exchange = Exchange::default();
        assert!(exchange.publish("default", "nope", any()).is_err());
    }
}
