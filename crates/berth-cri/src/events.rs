//! The plugin's one event subscription: `/tasks/oom` in `k8s.io`, so that a
//! container killed by the OOM killer ends with reason `OOMKilled`. One
//! stream for the whole plugin, resubscribed if it drops, until the plugin
//! stops.

use crate::Cri;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long to wait before subscribing again after the stream ended.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// Containers the OOM killer hit since their exit was last recorded.
#[derive(Debug, Default)]
pub(crate) struct OomEvents {
    seen: Mutex<HashSet<String>>,
}

impl OomEvents {
    fn insert(&self, id: String) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    /// Whether an OOM event came for container `id`, forgetting it.
    pub(crate) fn take(&self, id: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }
}

impl Cri {
    /// Follows `/tasks/oom` in the background until the plugin stops.
    pub(crate) fn watch_oom_events(self: &Arc<Self>) {
        let cri = self.clone();
        tokio::spawn(async move {
            let filter = "topic==\"/tasks/oom\"".to_string();
            loop {
                let followed = async {
                    match cri
                        .client
                        .events()
                        .subscribe(std::slice::from_ref(&filter))
                        .await
                    {
                        Ok(mut events) => {
                            while let Some(Ok(envelope)) = events.next().await {
                                let oom = envelope.event.as_ref().and_then(|any| {
                                    berth_api::typeurl::unpack::<berth_client::pb::events::TaskOom>(
                                        any,
                                    )
                                });
                                if let Some(oom) = oom {
                                    cri.ooms.insert(oom.container_id);
                                }
                            }
                        }
                        Err(err) => tracing::debug!(%err, "subscribe to OOM events"),
                    }
                    tokio::time::sleep(RESUBSCRIBE).await;
                };
                tokio::select! {
                    () = followed => {}
                    () = cri.stopping() => return,
                }
            }
        });
    }
}
