//! Containers: store calls plus containerd's `/containers/*` events.

use super::blocking;
use crate::events::Exchange;
use berth_api::pb::events::{container_create, ContainerCreate, ContainerDelete, ContainerUpdate};
use berth_api::typeurl::pack;
use berth_core::{filters::Filter, Result};
use berth_store::{Container, MetadataStore};

/// The containers service.
pub struct Containers {
    store: MetadataStore,
    events: Exchange,
}

impl Containers {
    /// A service over `store` publishing to `events`.
    pub fn new(store: MetadataStore, events: Exchange) -> Self {
        Containers { store, events }
    }

    /// Gets one container.
    pub async fn get(&self, namespace: String, id: String) -> Result<Container> {
        let store = self.store.clone();
        blocking(move || store.get_container(&namespace, &id)).await
    }

    /// Lists the containers passing `filters` (containerd's filter syntax).
    pub async fn list(&self, namespace: String, filters: Vec<String>) -> Result<Vec<Container>> {
        let filter = Filter::parse_all(&filters)?;
        let store = self.store.clone();
        blocking(move || store.list_containers(&namespace, &filter)).await
    }

    /// Creates a container record.
    pub async fn create(&self, namespace: String, container: Container) -> Result<Container> {
        let store = self.store.clone();
        let ns = namespace.clone();
        let created = blocking(move || store.create_container(&ns, container)).await?;
        let event = ContainerCreate {
            id: created.id.clone(),
            image: created.image.clone(),
            runtime: Some(container_create::Runtime {
                name: created.runtime.name.clone(),
                options: created
                    .runtime
                    .options
                    .clone()
                    .map(crate::convert::any_to_wire),
            }),
        };
        self.events
            .publish(&namespace, "/containers/create", pack(&event))?;
        Ok(created)
    }

    /// Updates a container by field paths.
    pub async fn update(
        &self,
        namespace: String,
        container: Container,
        paths: Vec<String>,
    ) -> Result<Container> {
        let store = self.store.clone();
        let ns = namespace.clone();
        let updated = blocking(move || store.update_container(&ns, container, &paths)).await?;
        let event = ContainerUpdate {
            id: updated.id.clone(),
            image: updated.image.clone(),
            labels: updated.labels.clone(),
            snapshot_key: updated.snapshot_key.clone(),
        };
        self.events
            .publish(&namespace, "/containers/update", pack(&event))?;
        Ok(updated)
    }

    /// Deletes a container record.
    pub async fn delete(&self, namespace: String, id: String) -> Result<()> {
        let store = self.store.clone();
        let (ns, event) = (namespace.clone(), ContainerDelete { id: id.clone() });
        blocking(move || store.delete_container(&ns, &id)).await?;
        self.events
            .publish(&namespace, "/containers/delete", pack(&event))
    }
}
