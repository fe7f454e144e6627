//! One garbage collection: the store's mark and sweep, then the files.

use crate::events::Exchange;
use berth_api::pb::events::SnapshotRemove;
use berth_api::pb::services::v1::ImageDelete;
use berth_api::typeurl::pack;
use berth_core::{Digest, Result};
use berth_store::gc::{GcReport, RemovedSnapshot};
use berth_store::MetadataStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Removes the blob file of `digest` if no namespace holds it (checked again
/// under the content store's lock); `Ok(true)` if a file was removed.
pub type BlobRemover = Arc<dyn Fn(&Digest) -> Result<bool> + Send + Sync>;

/// Removes a snapshot whose metadata row the sweep removed.
pub type SnapshotRemover = Arc<dyn Fn(&RemovedSnapshot) -> Result<()> + Send + Sync>;

/// What a collection removes beyond metadata rows. A hook left `None`
/// leaves its files in place (logged), to be collected once it is set.
#[derive(Clone, Default)]
pub struct Cleanup {
    /// The content store's `remove_if_unowned`.
    pub blobs: Option<BlobRemover>,
    /// The snapshotters' removal.
    pub snapshots: Option<SnapshotRemover>,
}

/// What one collection did.
#[derive(Debug, Clone, Default)]
pub struct GcStats {
    /// The metadata part: rows removed, mark and pause times.
    pub report: GcReport,
    /// Blob files removed from disk.
    pub blobs_removed: usize,
    /// Time spent removing files after the sweep.
    pub cleanup: Duration,
    /// Time of the whole collection.
    pub total: Duration,
}

/// Runs one collection (blocking: call it from `spawn_blocking`).
pub(crate) fn collect(
    store: &MetadataStore,
    cleanup: &Cleanup,
    events: &Exchange,
) -> Result<GcStats> {
    let started = Instant::now();
    let report = store.garbage_collect()?;
    let cleaning = Instant::now();
    let blobs_removed = remove_blobs(cleanup, &report);
    remove_snapshots(cleanup, &report);
    publish(events, &report);
    let stats = GcStats {
        cleanup: cleaning.elapsed(),
        total: started.elapsed(),
        blobs_removed,
        report,
    };
    tracing::debug!(
        pause = ?stats.report.pause,
        mark = ?stats.report.mark,
        cleanup = ?stats.cleanup,
        total = ?stats.total,
        marks = stats.report.marks,
        objects = stats.report.objects,
        content = stats.report.removed.content.len(),
        blobs = stats.blobs_removed,
        snapshots = stats.report.removed.snapshots.len(),
        images = stats.report.removed.images.len(),
        leases = stats.report.removed.leases.len(),
        "garbage collected"
    );
    Ok(stats)
}

fn remove_blobs(cleanup: &Cleanup, report: &GcReport) -> usize {
    let unowned = &report.removed.unowned_blobs;
    let Some(remove) = &cleanup.blobs else {
        if !unowned.is_empty() {
            tracing::warn!(blobs = unowned.len(), "no content store: blob files kept");
        }
        return 0;
    };
    let mut removed = 0;
    for digest in unowned {
        match remove(digest) {
            Ok(true) => removed += 1,
            Ok(false) => tracing::debug!(%digest, "blob kept: held again or already gone"),
            Err(err) => tracing::warn!(%digest, error = %err, "removing blob"),
        }
    }
    removed
}

fn remove_snapshots(cleanup: &Cleanup, report: &GcReport) {
    for snapshot in &report.removed.snapshots {
        let result = match &cleanup.snapshots {
            Some(remove) => remove(snapshot),
            None => {
                tracing::debug!(
                    snapshotter = %snapshot.snapshotter,
                    key = %snapshot.key,
                    "no snapshotter loaded to remove snapshot"
                );
                Ok(())
            }
        };
        if let Err(err) = result {
            tracing::warn!(key = %snapshot.key, error = %err, "removing snapshot");
        }
    }
}

/// containerd publishes these for what a collection removed.
fn publish(events: &Exchange, report: &GcReport) {
    let removed = &report.removed;
    for (ns, name) in &removed.images {
        let event = ImageDelete { name: name.clone() };
        if let Err(err) = events.publish(ns, "/images/delete", pack(&event)) {
            tracing::debug!(error = %err, "publishing /images/delete");
        }
    }
    for s in &removed.snapshots {
        let event = SnapshotRemove {
            key: s.key.clone(),
            snapshotter: s.snapshotter.clone(),
        };
        if let Err(err) = events.publish(&s.namespace, "/snapshot/remove", pack(&event)) {
            tracing::debug!(error = %err, "publishing /snapshot/remove");
        }
    }
}
