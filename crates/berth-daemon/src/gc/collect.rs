//! One garbage collection: the store's mark and sweep, then the files.

use crate::events::Exchange;
use berth_api::pb::events::SnapshotRemove;
use berth_api::pb::services::v1::ImageDelete;
use berth_api::typeurl::pack;
use berth_core::Result;
use berth_store::content::Content;
use berth_store::gc::{GcReport, RemovedSnapshot};
use berth_store::MetadataStore;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Removes a snapshot whose metadata row the sweep removed.
pub type SnapshotRemover = Arc<dyn Fn(&RemovedSnapshot) -> Result<()> + Send + Sync>;

/// How long an ingest no lease holds may sit unwritten before a collection
/// removes it (containerd's 24 hours).
pub const INGEST_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// What a collection removes beyond metadata rows. A part left `None`
/// leaves its files in place (logged), to be collected once it is set.
#[derive(Clone, Default)]
pub struct Cleanup {
    /// The content store: unowned blob files go through its
    /// `remove_unowned` (ownership checked again under its commit lock),
    /// and stale ingests through `remove_ingest`.
    pub content: Option<Content>,
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
    /// Stale ingests removed.
    pub ingests_removed: usize,
    /// Time spent removing files after the sweep.
    pub cleanup: Duration,
    /// Time of the whole collection.
    pub total: Duration,
}

/// Runs one collection (blocking: call it from `spawn_blocking`). With
/// `orphans`, every blob file on disk is checked too, not only those whose
/// rows the sweep removed: the daemon's first collection does this, to
/// remove files a crash left between writing a blob and recording it.
pub(crate) fn collect(
    store: &MetadataStore,
    cleanup: &Cleanup,
    events: &Exchange,
    orphans: bool,
) -> Result<GcStats> {
    let started = Instant::now();
    let report = store.garbage_collect()?;
    let cleaning = Instant::now();
    let mut blobs_removed = remove_blobs(cleanup, &report);
    if orphans {
        blobs_removed += remove_orphan_blobs(cleanup);
    }
    let ingests_removed = remove_stale_ingests(cleanup, &report);
    remove_snapshots(cleanup, &report);
    publish(events, &report);
    let stats = GcStats {
        cleanup: cleaning.elapsed(),
        total: started.elapsed(),
        blobs_removed,
        ingests_removed,
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
        ingests = stats.ingests_removed,
        snapshots = stats.report.removed.snapshots.len(),
        images = stats.report.removed.images.len(),
        leases = stats.report.removed.leases.len(),
        "garbage collected"
    );
    Ok(stats)
}

fn remove_blobs(cleanup: &Cleanup, report: &GcReport) -> usize {
    let unowned = &report.removed.unowned_blobs;
    if unowned.is_empty() {
        return 0;
    }
    let Some(content) = &cleanup.content else {
        tracing::warn!(blobs = unowned.len(), "no content store: blob files kept");
        return 0;
    };
    match content.remove_unowned(unowned) {
        Ok(removed) => removed.len(),
        Err(err) => {
            tracing::warn!(error = %err, "removing unowned blobs");
            0
        }
    }
}

/// Removes the blob files on disk that no namespace holds.
fn remove_orphan_blobs(cleanup: &Cleanup) -> usize {
    let Some(content) = &cleanup.content else {
        return 0;
    };
    let removed = content
        .blobs()
        .list()
        .and_then(|all| content.remove_unowned(&all));
    match removed {
        Ok(removed) => {
            if !removed.is_empty() {
                tracing::info!(
                    blobs = removed.len(),
                    "removed blob files no namespace held"
                );
            }
            removed.len()
        }
        Err(err) => {
            tracing::warn!(error = %err, "checking blob files for orphans");
            0
        }
    }
}

/// Removes ingests no live lease holds, no writer has open, and nobody has
/// written for [`INGEST_EXPIRY`].
fn remove_stale_ingests(cleanup: &Cleanup, report: &GcReport) -> usize {
    let Some(content) = &cleanup.content else {
        return 0;
    };
    let held: HashSet<(&str, &str)> = report
        .removed
        .leased_ingests
        .iter()
        .map(|(ns, r)| (ns.as_str(), r.as_str()))
        .collect();
    let ingests = match content.ingests() {
        Ok(ingests) => ingests,
        Err(err) => {
            tracing::warn!(error = %err, "listing ingests");
            return 0;
        }
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for ingest in ingests {
        let (ns, reference) = (ingest.namespace.as_str(), ingest.reference.as_str());
        let idle = now.duration_since(ingest.updated_at).unwrap_or_default();
        if idle < INGEST_EXPIRY
            || held.contains(&(ns, reference))
            || content.ingest_active(ns, reference)
        {
            continue;
        }
        match content.remove_ingest(ns, reference) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(err) => tracing::warn!(reference, error = %err, "removing stale ingest"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::content::WriterOptions;
    use berth_core::Digest;
    use std::collections::HashMap;

    #[test]
    fn the_first_collection_removes_blob_files_no_row_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(&dir.path().join("metadata.redb")).expect("open");
        let content = Content::open(&dir.path().join("content"), store.clone()).expect("content");
        let data = b"orphan";
        let digest = Digest::sha256_of(data);
        let ns = content.namespace("default", None).expect("namespace");
        let options = WriterOptions {
            reference: "orphan".into(),
            total: data.len() as i64,
            expected: Some(digest.clone()),
        };
        let mut writer = ns.writer_blocking(options).expect("writer");
        writer.write_blocking(data).expect("write");
        let size = data.len() as i64;
        writer
            .commit_blocking(size, Some(digest.clone()), HashMap::new())
            .expect("commit");
        // The row goes, the file stays: what a crash between the two leaves.
        store
            .delete_content("default", &digest, None)
            .expect("delete row");
        let path = content.blobs().path(&digest).expect("path");
        let cleanup = Cleanup {
            content: Some(content.clone()),
            snapshots: None,
        };
        let events = Exchange::default();

        let stats = collect(&store, &cleanup, &events, false).expect("collect");
        assert_eq!(stats.blobs_removed, 0);
        assert!(path.exists(), "a usual collection only frees swept rows");
        let stats = collect(&store, &cleanup, &events, true).expect("collect");
        assert_eq!(stats.blobs_removed, 1);
        assert!(!path.exists());
    }
}
