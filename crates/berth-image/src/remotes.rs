//! The seam between registries and the pull and push engines: containerd's
//! `remotes` package. A [`Resolver`] turns a reference into the descriptor
//! it names and hands out a [`Fetcher`] (to read blobs and manifests) and a
//! [`Pusher`] (to write them) for that repository.
//!
//! `crate::registry` implements these over the OCI distribution protocol;
//! tests may implement them over anything that holds blobs.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::Result;
use tokio::io::AsyncRead;

use crate::spec::Descriptor;

/// A byte stream read from a remote.
pub type RemoteReader = Box<dyn AsyncRead + Send + Unpin>;

/// Resolves references and opens their repositories.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Resolves a normalized reference (`host/repo:tag`, `host/repo@digest`)
    /// to the name to record (the reference itself) and the descriptor of
    /// its root object (an index or a manifest).
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)>;

    /// A fetcher for the repository that `reference` lives in.
    async fn fetcher(&self, reference: &str) -> Result<Arc<dyn Fetcher>>;

    /// A pusher for the repository (and tag) that `reference` names.
    async fn pusher(&self, reference: &str) -> Result<Arc<dyn Pusher>>;
}

/// Reads blobs and manifests from one repository.
#[async_trait]
pub trait Fetcher: Send + Sync {
    /// Streams `desc` from byte `offset` on (`offset > 0` resumes an
    /// interrupted download). Manifests and indexes are recognised by their
    /// media type.
    async fn fetch(&self, desc: &Descriptor, offset: u64) -> Result<RemoteReader>;
}

/// Writes blobs and manifests into one repository.
#[async_trait]
pub trait Pusher: Send + Sync {
    /// Whether the repository already holds `desc`.
    async fn exists(&self, desc: &Descriptor) -> Result<bool>;

    /// Uploads `desc`, reading its bytes from `content`. Blobs go to the
    /// blob store (after trying a cross-repository mount from any of
    /// `mount_from`, repository names on the same host); manifests and
    /// indexes go to the manifest store, under the reference's tag when
    /// `desc` is the root being pushed.
    async fn push(
        &self,
        desc: &Descriptor,
        mount_from: &[String],
        content: RemoteReader,
    ) -> Result<()>;
}
