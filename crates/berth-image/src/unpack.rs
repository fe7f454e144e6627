//! Unpacking an image into a snapshotter: containerd's `image.Unpack` and
//! `rootfs.ApplyLayers`.
//!
//! Each layer's snapshot is named by its chain ID
//! ([`crate::images::chain_id`]), so an image whose lower layers another
//! image already unpacked reuses them: a layer whose chain ID is committed
//! is skipped. Otherwise the layer is applied to a fresh active snapshot
//! prepared under a unique key (`extract-<nanos>-<rand> <chainID>`) and
//! committed as the chain ID. Two unpacks of one image may race; the loser
//! of the commit gets `AlreadyExists`, which — as in containerd — means the
//! layer is there, and it removes its own active snapshot.
//!
//! After applying a layer the blob gets `containerd.io/uncompressed` (its
//! diffID, now verified), and the image config gets
//! `containerd.io/gc.ref.snapshot.<snapshotter>` = the top chain ID, so
//! garbage collection keeps the unpacked snapshots while the image exists.

use crate::gc::UNCOMPRESSED_LABEL;
use crate::images::{self, chain_id};
use crate::platforms::Matcher;
use crate::spec::Descriptor;
use berth_core::content::{self, ContentStore};
use berth_core::diff::Applier;
use berth_core::snapshots::Snapshotter;
use berth_core::{Digest, Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The label on an unpacked snapshot naming its chain ID.
pub const SNAPSHOT_REF_LABEL: &str = "containerd.io/snapshot.ref";
/// The prefix of the config label that keeps an image's snapshots.
pub const SNAPSHOT_GC_REF_PREFIX: &str = "containerd.io/gc.ref.snapshot.";

/// The services an unpack uses, scoped to one namespace.
pub struct Unpacker<'a> {
    /// Where the image's blobs are.
    pub content: &'a dyn ContentStore,
    /// Where its layers go.
    pub snapshotter: &'a dyn Snapshotter,
    /// The snapshotter's name, for the GC label.
    pub snapshotter_name: &'a str,
    /// What applies a layer to mounts.
    pub applier: &'a dyn Applier,
}

impl std::fmt::Debug for Unpacker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker")
            .field("snapshotter_name", &self.snapshotter_name)
            .finish()
    }
}

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The chain ID of the top layer: the snapshot a container's rootfs is
    /// prepared from.
    pub chain_id: Digest,
    /// How many layers were applied (the rest were committed already).
    pub applied: usize,
}

impl Unpacker<'_> {
    /// Unpacks the manifest of `image` for `matcher`.
    pub async fn unpack(&self, image: &Descriptor, matcher: &Matcher) -> Result<Unpacked> {
        let (_, manifest) = images::manifest(self.content, image, matcher).await?;
        let diff_ids = images::diff_ids(self.content, image, matcher).await?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::invalid_argument(format!(
                "image {}: {} diff IDs for {} layers",
                image.digest,
                diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let mut applied = 0;
        for (i, layer) in manifest.layers.iter().enumerate() {
            if self.layer(layer, &diff_ids[..=i]).await? {
                applied += 1;
                self.label_uncompressed(layer, &diff_ids[i]).await?;
            }
        }
        let top = chain_id(&diff_ids).ok_or_else(|| {
            Error::invalid_argument(format!("image {} has no layers", image.digest))
        })?;
        let key = format!("{SNAPSHOT_GC_REF_PREFIX}{}", self.snapshotter_name);
        self.set_label(&manifest.config.digest, &key, top.as_str())
            .await?;
        Ok(Unpacked {
            chain_id: top,
            applied,
        })
    }

    /// Applies the last of `chain`'s layers unless its snapshot exists;
    /// whether it applied.
    async fn layer(&self, layer: &Descriptor, chain: &[Digest]) -> Result<bool> {
        let id = chain_id(chain).expect("a non-empty chain");
        let parent = chain_id(&chain[..chain.len() - 1])
            .map(|d| d.to_string())
            .unwrap_or_default();
        let diff_id = chain.last().expect("a non-empty chain");
        self.layer_on(layer, &id, &parent, diff_id).await
    }

    /// Applies `layer` (diff ID `diff_id`) as snapshot `id` on `parent`
    /// (empty for none) unless `id` exists; whether it applied.
    pub(crate) async fn layer_on(
        &self,
        layer: &Descriptor,
        id: &Digest,
        parent: &str,
        diff_id: &Digest,
    ) -> Result<bool> {
        if exists(self.snapshotter, id.as_str()).await? {
            return Ok(false);
        }
        let labels = HashMap::from([(SNAPSHOT_REF_LABEL.to_string(), id.to_string())]);
        let mut prepared = None;
        for _ in 0..3 {
            let key = unpack_key(id);
            match self.snapshotter.prepare(&key, parent, labels.clone()).await {
                Ok(mounts) => {
                    prepared = Some((key, mounts));
                    break;
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if exists(self.snapshotter, id.as_str()).await? {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let (key, mounts) =
            prepared.ok_or_else(|| Error::already_exists(format!("unpack key for {id}")))?;
        let result = match self
            .applier
            .apply(&layer.to_core(), &mounts, HashMap::new())
            .await
        {
            Ok(applied) if applied.digest != *diff_id => Err(Error::failed_precondition(format!(
                "wrong diff id calculated on extraction {diff_id:?}: got {}",
                applied.digest
            ))),
            Ok(_) => self.snapshotter.commit(id.as_str(), &key, labels).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let _ = self.snapshotter.remove(&key).await;
                Ok(false)
            }
            Err(e) => {
                if let Err(cleanup) = self.snapshotter.remove(&key).await {
                    return Err(e.context(format!("(and removing {key:?} failed: {cleanup})")));
                }
                Err(e)
            }
        }
    }

    async fn label_uncompressed(&self, layer: &Descriptor, diff_id: &Digest) -> Result<()> {
        self.set_label(&layer.digest, UNCOMPRESSED_LABEL, diff_id.as_str())
            .await
    }

    async fn set_label(&self, digest: &Digest, key: &str, value: &str) -> Result<()> {
        let info = content::Info {
            digest: digest.clone(),
            size: 0,
            created_at: UNIX_EPOCH,
            updated_at: UNIX_EPOCH,
            labels: HashMap::from([(key.to_string(), value.to_string())]),
        };
        self.content
            .update(info, &[format!("labels.{key}")])
            .await
            .map(|_| ())
    }
}

async fn exists(snapshotter: &dyn Snapshotter, key: &str) -> Result<bool> {
    match snapshotter.stat(key).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// containerd's `extract-<nanosecond>-<random> <chainID>`.
pub(crate) fn unpack_key(chain_id: &Digest) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}-{}-{}",
        now.as_nanos(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let rand = Digest::sha256_of(seed.as_bytes());
    format!(
        "extract-{}-{} {chain_id}",
        now.subsec_nanos(),
        &rand.encoded()[..4]
    )
}

#[cfg(test)]
mod tests;
