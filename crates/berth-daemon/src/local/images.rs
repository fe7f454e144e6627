//! Images: store calls, containerd's `/images/*` events, and `sync` deletes
//! that wait for a garbage collection (`plugins/services/images/local.go`).
//!
//! [`NamespacedImages`] is the same service seen through
//! [`berth_core::images::ImageStore`], scoped to one namespace (and lease),
//! for code inside the daemon — archive import, later pull — that is
//! written against the trait.

use super::blocking;
use crate::events::Exchange;
use crate::gc::GcScheduler;
use berth_api::pb::services::v1::{ImageCreate, ImageDelete, ImageUpdate};
use berth_api::typeurl::pack;
use berth_core::images::{Image, ImageStore};
use berth_core::{filters::Filter, Digest, Result};
use berth_store::MetadataStore;
use std::sync::Arc;

/// The images service.
pub struct Images {
    store: MetadataStore,
    events: Exchange,
    gc: Arc<GcScheduler>,
}

impl Images {
    /// A service over `store`, publishing to `events`, waiting on `gc` for
    /// `sync` deletes.
    pub fn new(store: MetadataStore, events: Exchange, gc: Arc<GcScheduler>) -> Self {
        Images { store, events, gc }
    }

    /// Gets one image.
    pub async fn get(&self, namespace: String, name: String) -> Result<Image> {
        let store = self.store.clone();
        blocking(move || store.get_image(&namespace, &name)).await
    }

    /// Lists the images passing `filters` (containerd's filter syntax).
    pub async fn list(&self, namespace: String, filters: Vec<String>) -> Result<Vec<Image>> {
        let filter = Filter::parse_all(&filters)?;
        let store = self.store.clone();
        blocking(move || store.list_images(&namespace, &filter)).await
    }

    /// Creates an image (under `lease`, if given) and publishes
    /// `/images/create`.
    pub async fn create(
        &self,
        namespace: String,
        image: Image,
        lease: Option<String>,
    ) -> Result<Image> {
        let store = self.store.clone();
        let ns = namespace.clone();
        let created = blocking(move || store.create_image(&ns, image, lease.as_deref())).await?;
        let event = ImageCreate {
            name: created.name.clone(),
            labels: created.labels.clone(),
        };
        self.events
            .publish(&namespace, "/images/create", pack(&event))?;
        Ok(created)
    }

    /// Updates an image by field paths and publishes `/images/update`.
    pub async fn update(
        &self,
        namespace: String,
        image: Image,
        paths: Vec<String>,
        lease: Option<String>,
    ) -> Result<Image> {
        let store = self.store.clone();
        let ns = namespace.clone();
        let updated =
            blocking(move || store.update_image(&ns, image, &paths, lease.as_deref())).await?;
        let event = ImageUpdate {
            name: updated.name.clone(),
            labels: updated.labels.clone(),
        };
        self.events
            .publish(&namespace, "/images/update", pack(&event))?;
        Ok(updated)
    }

    /// Deletes an image (only if its target is `target`, when given) and
    /// publishes `/images/delete`; with `sync`, returns once a garbage
    /// collection has run after the delete.
    pub async fn delete(
        &self,
        namespace: String,
        name: String,
        target: Option<Digest>,
        sync: bool,
        lease: Option<String>,
    ) -> Result<()> {
        let store = self.store.clone();
        let (ns, event) = (namespace.clone(), ImageDelete { name: name.clone() });
        blocking(move || store.delete_image(&ns, &name, target.as_ref(), lease.as_deref())).await?;
        self.events
            .publish(&namespace, "/images/delete", pack(&event))?;
        if sync {
            self.gc.schedule_and_wait().await?;
        }
        Ok(())
    }

    /// This service as an [`ImageStore`] for `namespace`, working under
    /// `lease` if given.
    pub fn namespaced(
        self: &Arc<Self>,
        namespace: impl Into<String>,
        lease: Option<String>,
    ) -> NamespacedImages {
        NamespacedImages {
            images: self.clone(),
            namespace: namespace.into(),
            lease,
        }
    }
}

/// One namespace's images through the [`ImageStore`] trait.
pub struct NamespacedImages {
    images: Arc<Images>,
    namespace: String,
    lease: Option<String>,
}

#[async_trait::async_trait]
impl ImageStore for NamespacedImages {
    async fn get(&self, name: &str) -> Result<Image> {
        self.images
            .get(self.namespace.clone(), name.to_owned())
            .await
    }

    async fn list(&self, filters: &[String]) -> Result<Vec<Image>> {
        self.images
            .list(self.namespace.clone(), filters.to_vec())
            .await
    }

    async fn create(&self, image: Image) -> Result<Image> {
        self.images
            .create(self.namespace.clone(), image, self.lease.clone())
            .await
    }

    async fn update(&self, image: Image, paths: &[String]) -> Result<Image> {
        let (ns, lease) = (self.namespace.clone(), self.lease.clone());
        self.images.update(ns, image, paths.to_vec(), lease).await
    }

    async fn delete(&self, name: &str, sync: bool) -> Result<()> {
        let (ns, lease) = (self.namespace.clone(), self.lease.clone());
        self.images
            .delete(ns, name.to_owned(), None, sync, lease)
            .await
    }
}
