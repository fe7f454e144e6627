//! Namespaces: store calls plus containerd's `/namespaces/*` events.

use super::blocking;
use crate::events::Exchange;
use berth_api::pb::events::{NamespaceCreate, NamespaceDelete, NamespaceUpdate};
use berth_api::typeurl::pack;
use berth_core::Result;
use berth_store::{MetadataStore, Namespace};

/// The namespaces service.
pub struct Namespaces {
    store: MetadataStore,
    events: Exchange,
}

impl Namespaces {
    /// A service over `store` publishing to `events`.
    pub fn new(store: MetadataStore, events: Exchange) -> Self {
        Namespaces { store, events }
    }

    /// Gets one namespace. As in containerd, a valid name with no record is
    /// answered with that name and no labels, not NotFound: clients read
    /// their namespace's default labels before they create anything in it.
    pub async fn get(&self, name: String) -> Result<Namespace> {
        berth_core::identifiers::validate(&name)?;
        let store = self.store.clone();
        let key = name.clone();
        match blocking(move || store.get_namespace(&key)).await {
            Err(err) if err.is_not_found() => Ok(Namespace {
                name,
                labels: Default::default(),
            }),
            other => other,
        }
    }

    /// Lists all namespaces.
    pub async fn list(&self) -> Result<Vec<Namespace>> {
        let store = self.store.clone();
        blocking(move || store.list_namespaces()).await
    }

    /// Creates a namespace; `caller` is the namespace the request came from,
    /// which the event envelope carries.
    pub async fn create(&self, caller: &str, namespace: Namespace) -> Result<Namespace> {
        let store = self.store.clone();
        let created = blocking(move || store.create_namespace(namespace)).await?;
        let event = NamespaceCreate {
            name: created.name.clone(),
            labels: created.labels.clone(),
        };
        self.events
            .publish(caller, "/namespaces/create", pack(&event))?;
        Ok(created)
    }

    /// Updates a namespace's labels by field paths.
    pub async fn update(
        &self,
        caller: &str,
        namespace: Namespace,
        paths: Vec<String>,
    ) -> Result<Namespace> {
        let store = self.store.clone();
        let updated = blocking(move || store.update_namespace(namespace, &paths)).await?;
        let event = NamespaceUpdate {
            name: updated.name.clone(),
            labels: updated.labels.clone(),
        };
        self.events
            .publish(caller, "/namespaces/update", pack(&event))?;
        Ok(updated)
    }

    /// Deletes an empty namespace.
    pub async fn delete(&self, caller: &str, name: String) -> Result<()> {
        let store = self.store.clone();
        let event = NamespaceDelete { name: name.clone() };
        blocking(move || store.delete_namespace(&name)).await?;
        self.events
            .publish(caller, "/namespaces/delete", pack(&event))
    }
}
