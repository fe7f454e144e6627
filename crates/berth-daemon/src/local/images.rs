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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::{Cleanup, SchedulerConfig};
    use berth_core::content::WriterOptions;
    use berth_core::Descriptor;
    use berth_store::content::Content;
    use futures::StreamExt;
    use std::collections::HashMap;
    use std::time::UNIX_EPOCH;

    fn image(name: &str, target: Digest) -> Image {
        Image {
            name: name.to_owned(),
            labels: HashMap::from([("a".to_owned(), "1".to_owned())]),
            target: Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: target,
                size: 4,
                annotations: HashMap::new(),
            },
            created_at: UNIX_EPOCH,
            updated_at: UNIX_EPOCH,
        }
    }

    /// Commits `data` as a blob of namespace `default`.
    fn blob(content: &Content, data: &[u8]) -> Digest {
        let digest = Digest::sha256_of(data);
        let ns = content.namespace("default", None).expect("namespace");
        let options = WriterOptions {
            reference: format!("ref-{digest}"),
            total: data.len() as i64,
            expected: Some(digest.clone()),
        };
        let mut writer = ns.writer_blocking(options).expect("writer");
        writer.write_blocking(data).expect("write");
        let size = data.len() as i64;
        writer
            .commit_blocking(size, Some(digest.clone()), HashMap::new())
            .expect("commit");
        digest
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn events_are_published_and_sync_delete_frees_the_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(&dir.path().join("metadata.redb")).expect("open");
        let content = Content::open(&dir.path().join("content"), store.clone()).expect("content");
        let events = Exchange::default();
        let config = SchedulerConfig {
            startup_delay: std::time::Duration::ZERO,
            ..SchedulerConfig::default()
        };
        let gc = GcScheduler::start(store.clone(), events.clone(), config).expect("gc");
        gc.set_cleanup(Cleanup {
            content: Some(content.clone()),
            snapshots: None,
        });
        let images = Arc::new(Images::new(store, events.clone(), gc));
        let mut stream = Box::pin(events.subscribe(Filter::always()));

        let digest = tokio::task::spawn_blocking({
            let content = content.clone();
            move || blob(&content, b"manifest")
        })
        .await
        .expect("blob");
        let path = content.blobs().path(&digest).expect("path");
        let handle = images.namespaced("default", None);
        handle
            .create(image("img", digest.clone()))
            .await
            .expect("create");
        let mut update = image("img", digest.clone());
        update.labels.insert("b".into(), "2".into());
        let paths = vec!["labels.b".to_owned()];
        let updated = handle.update(update, &paths).await.expect("update");
        assert_eq!(updated.labels.len(), 2);
        assert!(path.exists(), "the image holds its target");

        handle.delete("img", true).await.expect("sync delete");
        assert!(
            !path.exists(),
            "a sync delete returns after the blob is gone"
        );

        let mut topics = Vec::new();
        for _ in 0..3 {
            let envelope = stream.next().await.expect("event");
            assert_eq!(envelope.namespace, "default");
            topics.push(envelope.topic);
        }
        assert_eq!(
            topics,
            ["/images/create", "/images/update", "/images/delete"]
        );
    }
}
