//! Images: a name pointing at a target descriptor (a manifest or an index)
//! in the content store, with labels. As in containerd, an image record is
//! a GC root: everything its target references stays.

use crate::descriptor::Descriptor;
use crate::Result;
use std::collections::HashMap;
use std::time::SystemTime;

/// An image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The name, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// The root of the image: a manifest or an index.
    pub target: Descriptor,
    /// When the record was created (set by the store).
    pub created_at: SystemTime,
    /// When it was last updated (set by the store).
    pub updated_at: SystemTime,
}

/// A namespace's image records.
#[async_trait::async_trait]
pub trait ImageStore: Send + Sync {
    /// One image; `NotFound` if absent.
    async fn get(&self, name: &str) -> Result<Image>;
    /// The images passing `filters`.
    async fn list(&self, filters: &[String]) -> Result<Vec<Image>>;
    /// Creates an image; `AlreadyExists` if the name is taken.
    async fn create(&self, image: Image) -> Result<Image>;
    /// Updates by field paths (`labels`, `labels.KEY`, `target`, `annotations`…).
    async fn update(&self, image: Image, paths: &[String]) -> Result<Image>;
    /// Deletes an image; with `sync`, garbage collection has run when it returns.
    async fn delete(&self, name: &str, sync: bool) -> Result<()>;
}
