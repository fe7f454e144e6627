//! GetContainerEvents: the plugin publishes container created, started,
//! stopped and deleted events (each with its pod's status and the statuses
//! of the pod's containers, as containerd's `generateAndSendContainerEvent`
//! fills them) on a broadcast channel, and each stream subscribes to it.

use crate::Cri;
use k8s_cri::v1::*;
use std::time::SystemTime;
use tokio::sync::broadcast::error::RecvError;

/// How many events a slow stream may lag behind before it misses some
/// (containerd buffers 1000).
pub(crate) const EVENT_BUFFER: usize = 1000;

/// The channel container events go out on.
pub(crate) type EventSender = tokio::sync::broadcast::Sender<ContainerEventResponse>;

impl Cri {
    /// Publishes a `kind` event of container `id` in pod `sandbox_id` to
    /// every GetContainerEvents stream (nothing is built without one).
    pub(crate) async fn container_event(
        &self,
        id: &str,
        sandbox_id: &str,
        kind: ContainerEventType,
    ) {
        if self.container_events.receiver_count() == 0 {
            return;
        }
        let pod_sandbox_status = self
            .sandboxes
            .get(sandbox_id)
            .ok()
            .map(|s| crate::sandbox::sandbox_status(&s));
        let mut containers_statuses = Vec::new();
        for c in self.containers.list() {
            if c.metadata.sandbox_id != sandbox_id {
                continue;
            }
            let request = ContainerStatusRequest {
                container_id: c.metadata.id.clone(),
                verbose: false,
            };
            if let Ok(Some(status)) = self.container_status(request).await.map(|r| r.status) {
                containers_statuses.push(status);
            }
        }
        let event = ContainerEventResponse {
            container_id: id.to_string(),
            container_event_type: kind as i32,
            created_at: super::unix_nanos(SystemTime::now()),
            pod_sandbox_status,
            containers_statuses,
        };
        // No receiver left is not an error.
        let _ = self.container_events.send(event);
    }

    /// A stream of the container events published from now on; a stream
    /// that lags more than [`EVENT_BUFFER`] events behind skips the ones it
    /// missed. It ends when the plugin stops, so that an open stream does
    /// not hold up the daemon's shutdown.
    pub(crate) fn subscribe_container_events(
        &self,
    ) -> impl futures::Stream<Item = ContainerEventResponse> + Send + 'static {
        let receiver = self.container_events.subscribe();
        let stopping = self.stopping.subscribe();
        futures::stream::unfold(
            (receiver, stopping),
            |(mut receiver, mut stopping)| async move {
                loop {
                    let received = tokio::select! {
                        received = receiver.recv() => received,
                        _ = stopping.wait_for(|stop| *stop) => return None,
                    };
                    match received {
                        Ok(event) => return Some((event, (receiver, stopping))),
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "a container event stream lagged behind");
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        )
    }
}
