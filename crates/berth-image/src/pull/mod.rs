//! Pulling an image from a registry into a content store, an image store
//! and (optionally) a snapshotter: containerd's `client.Pull` and the
//! transfer service's pull, built to be fast.
//!
//! # What a pull does
//!
//! 1. Resolve the reference to its root descriptor (an index or a
//!    manifest) through a [`Resolver`].
//! 2. Fetch the small documents: the index, the manifests of the platforms
//!    asked for (the best match of [`PullOptions::platforms`], or every
//!    platform with [`Matcher::All`]) and their configs. Each is verified
//!    (size and digest) and stored with containerd's labels: the
//!    `containerd.io/gc.ref.content.*` labels naming its children, so
//!    garbage collection follows the image, and
//!    `containerd.io/distribution.source.<host>=<repository>` on every
//!    fetched blob, so a later push to the same host can mount it instead
//!    of uploading it.
//! 3. Fetch the layers, [`PullOptions::max_concurrent_downloads`] at a
//!    time, each under the ingest ref `layer-<digest>` (containerd's
//!    `remotes.MakeRefKey`). A download that stops half way keeps its
//!    ingest, and the next pull continues it from the bytes written
//!    (`Fetcher::fetch(desc, offset)`); one that fails its size or digest
//!    check commits nothing and fails the pull naming the digest.
//! 4. Unpack, when [`PullOptions::unpack`] says where: see below.
//! 5. Only then write the image record (name = the reference, target = the
//!    root), so an image never appears before all of it is there.
//!
//! Content already in the store is not fetched again, and layers whose
//! snapshot (named by chain ID) is committed are not applied again.
//!
//! # Speed
//!
//! A layer is decompressed, hashed and applied *while it downloads*: the
//! byte stream is teed, one side to the content writer, the other through a
//! bounded channel to a blocking thread that runs the layer applier
//! ([`crate::diff::apply_to_mounts`]). Memory stays at a few chunks per
//! layer in flight.
//!
//! Layers still have to form a parent chain. A snapshotter with the
//! `rebase` capability ([`Snapshotter::can_rebase`], the overlayfs one)
//! prepares every layer without a parent, so all the layers being
//! downloaded are applied at once, and commits them onto their parents in
//! order at the end (containerd 2.x's parallel unpack). Other snapshotters
//! get containerd 1.7's pipeline: all layers download in parallel, and each
//! is applied as soon as it and its parent are ready.
//!
//! Streaming needs the snapshot's mounts to be paths this process can
//! write ([`UnpackTarget::local_scratch`]); otherwise (a client pulling
//! through a remote snapshotter) each layer is applied by the
//! [`Applier`](berth_core::diff::Applier) from the content store once it is
//! committed.
//!
//! # Leases
//!
//! A pull does not take a lease itself: the caller scopes `content`, the
//! snapshotter and `images` to one (the daemon's transfer service does, as
//! containerd's does), so that garbage collection cannot take the blobs
//! and snapshots of a pull that has not yet written its image record.

mod documents;
mod layers;
pub mod progress;
#[cfg(test)]
mod tests;

use crate::images::chain_id;
use crate::platforms::Matcher;
use crate::reference::Reference;
use crate::remotes::{Fetcher, Resolver};
use crate::spec::Descriptor;
use crate::unpack::SNAPSHOT_GC_REF_PREFIX;
use berth_core::content::ContentStore;
use berth_core::diff::Applier;
use berth_core::images::{Image, ImageStore};
use berth_core::snapshots::Snapshotter;
use berth_core::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

pub use progress::{NoProgress, Progress, ProgressUpdate};

/// The ingest-ref and progress-name prefix for a media type (`layer`,
/// `manifest`, …), containerd's `remotes.MakeRefKey`.
pub fn progress_ref_kind(media_type: &str) -> &'static str {
    documents::ref_kind(media_type)
}

/// The label prefix naming where a blob was fetched from
/// (`containerd.io/distribution.source.<host>` = the repository).
pub const DISTRIBUTION_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";

/// Where and how to unpack a pulled image.
pub struct UnpackTarget<'a> {
    /// The snapshotter (scoped like the content store).
    pub snapshotter: &'a dyn Snapshotter,
    /// Its name, for the config's `containerd.io/gc.ref.snapshot.<name>`.
    pub snapshotter_name: &'a str,
    /// Applies layers that cannot be streamed (from the content store).
    pub applier: &'a dyn Applier,
    /// `Some(dir)` when the snapshotter's mounts are paths on this machine
    /// that this process may write (the daemon's own snapshotters): layers
    /// are then applied as they download, mounting under `dir` when a
    /// mount cannot be written directly. `None` applies every layer through
    /// `applier` after it is stored.
    pub local_scratch: Option<PathBuf>,
    /// Which platform to unpack; `None` unpacks the best match of
    /// [`PullOptions::platforms`] (of the host's platform when pulling all
    /// platforms).
    pub platform: Option<Matcher>,
}

impl std::fmt::Debug for UnpackTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnpackTarget")
            .field("snapshotter_name", &self.snapshotter_name)
            .field("local_scratch", &self.local_scratch)
            .field("platform", &self.platform)
            .finish()
    }
}

/// How to pull.
#[derive(Debug)]
pub struct PullOptions<'a> {
    /// The platforms to fetch: the best match of an ordered matcher
    /// (`Matcher::host()` by default), or all with [`Matcher::All`].
    pub platforms: Matcher,
    /// Unpack into a snapshotter, or only fetch.
    pub unpack: Option<UnpackTarget<'a>>,
    /// How many layers download at once (containerd's default is 3).
    pub max_concurrent_downloads: usize,
    /// Labels of the image record.
    pub labels: HashMap<String, String>,
}

impl Default for PullOptions<'_> {
    fn default() -> Self {
        PullOptions {
            platforms: Matcher::host(),
            unpack: None,
            max_concurrent_downloads: 3,
            labels: HashMap::new(),
        }
    }
}

/// What one pull shares between its steps.
pub(crate) struct Ctx<'a> {
    pub content: &'a dyn ContentStore,
    pub fetcher: Arc<dyn Fetcher>,
    pub progress: &'a dyn Progress,
    /// The reference, the parent of every progress event.
    pub name: String,
    /// `containerd.io/distribution.source.<host>` and the repository.
    pub source: Option<(String, String)>,
}

impl Ctx<'_> {
    pub(crate) fn report(&self, event: &str, name: String, desc: &Descriptor, progress: i64) {
        self.progress.report(ProgressUpdate {
            event: event.to_string(),
            name,
            parents: vec![self.name.clone()],
            progress,
            total: desc.size,
            desc: Some(desc.clone()),
        });
    }

    /// The labels every fetched blob gets.
    pub(crate) fn source_labels(&self) -> HashMap<String, String> {
        self.source.iter().cloned().collect()
    }
}

/// Pulls `reference` (normalized, `host/repo:tag` or `host/repo@digest`)
/// as the module documentation describes, returning the image record.
pub async fn pull(
    content: &dyn ContentStore,
    images: &dyn ImageStore,
    resolver: &dyn Resolver,
    reference: &str,
    opts: &PullOptions<'_>,
    progress: &dyn Progress,
) -> Result<Image> {
    progress.report(ProgressUpdate {
        event: progress::RESOLVING.into(),
        name: reference.to_string(),
        ..Default::default()
    });
    let (name, root) = resolver.resolve(reference).await?;
    progress.report(ProgressUpdate {
        event: progress::RESOLVED.into(),
        name: name.clone(),
        desc: Some(root.clone()),
        total: root.size,
        ..Default::default()
    });
    let ctx = Ctx {
        content,
        fetcher: resolver.fetcher(reference).await?,
        progress,
        name: name.clone(),
        source: source_label(reference),
    };
    let tree = documents::fetch_tree(&ctx, &root, &opts.platforms).await?;
    let unpack = match &opts.unpack {
        Some(target) => {
            let prefer = target
                .platform
                .clone()
                .unwrap_or_else(|| match &opts.platforms {
                    Matcher::All => Matcher::host(),
                    m => m.clone(),
                });
            let chosen = tree.preferred(&prefer).ok_or_else(|| {
                Error::not_found(format!(
                    "no manifest of {name} matches the platform to unpack"
                ))
            })?;
            Some((target, chosen))
        }
        None => None,
    };
    let plan = layers::Plan::new(&tree, unpack.as_ref().map(|(_, m)| *m))?;
    let max = opts.max_concurrent_downloads.max(1);
    match unpack {
        Some((target, manifest)) => {
            progress.report(ProgressUpdate {
                event: progress::UNPACKING.into(),
                name: name.clone(),
                desc: Some(manifest.desc.clone()),
                ..Default::default()
            });
            layers::fetch_and_unpack(&ctx, &plan, target, max).await?;
            let top = chain_id(&manifest.diff_ids)
                .ok_or_else(|| Error::invalid_argument(format!("image {name} has no layers")))?;
            let key = format!("{SNAPSHOT_GC_REF_PREFIX}{}", target.snapshotter_name);
            documents::set_label(content, &manifest.config.digest, &key, top.as_str()).await?;
        }
        None => layers::fetch_only(&ctx, &plan, max).await?,
    }
    let image = put_image(images, &name, &root, &opts.labels).await?;
    progress.report(ProgressUpdate {
        event: progress::SAVED.into(),
        name,
        desc: Some(root),
        ..Default::default()
    });
    Ok(image)
}

/// `containerd.io/distribution.source.<host>` = `<repository>` for a
/// reference, as containerd's `AppendDistributionSourceLabel` writes it.
pub(crate) fn source_label(reference: &str) -> Option<(String, String)> {
    let parsed = Reference::parse_normalized(reference).ok()?;
    Some((
        format!("{DISTRIBUTION_SOURCE_PREFIX}{}", parsed.domain),
        parsed.path,
    ))
}

/// Creates the image record, or points an existing one at `target`.
async fn put_image(
    images: &dyn ImageStore,
    name: &str,
    target: &Descriptor,
    labels: &HashMap<String, String>,
) -> Result<Image> {
    let now = SystemTime::now();
    let image = Image {
        name: name.to_string(),
        labels: labels.clone(),
        target: target.to_core(),
        created_at: now,
        updated_at: now,
    };
    match images.create(image.clone()).await {
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            let mut paths = vec!["target".to_string()];
            paths.extend(labels.keys().map(|k| format!("labels.{k}")));
            images.update(image, &paths).await
        }
        other => other,
    }
}
