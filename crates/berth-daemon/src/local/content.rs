//! Content: the content store, scoped per call to the request's namespace
//! and lease. The store itself (`berth_store::content`) holds the rules;
//! deletes publish containerd's `/content/delete` through the hook the
//! content plugin installs ([`delete_publisher`]).

use crate::events::Exchange;
use berth_api::pb::events::ContentDelete;
use berth_api::typeurl::pack;
use berth_core::Result;
use berth_store::content::{Content, DeleteHook, LocalContent};
use std::sync::Arc;

/// The content service: hands out namespaced views of the store.
pub struct ContentService {
    content: Content,
}

impl ContentService {
    /// A service over `content`.
    pub fn new(content: Content) -> Self {
        ContentService { content }
    }

    /// Namespace `ns`'s view of the store, under `lease` if the request
    /// named one (the `containerd-lease` header).
    pub fn store(&self, ns: &str, lease: Option<&str>) -> Result<LocalContent> {
        self.content.namespace(ns, lease)
    }

    /// The store itself.
    pub fn content(&self) -> &Content {
        &self.content
    }
}

/// A delete hook publishing containerd's `/content/delete` event.
pub fn delete_publisher(events: Exchange) -> DeleteHook {
    Arc::new(move |ns, digest| {
        let event = ContentDelete {
            digest: digest.to_string(),
        };
        if let Err(err) = events.publish(ns, "/content/delete", pack(&event)) {
            tracing::warn!(%digest, error = %err, "publishing /content/delete");
        }
    })
}
