//! Garbage collection: containerd's mark and sweep over the metadata
//! database (`core/metadata/gc.go`, `pkg/gc/gc.go`).
//!
//! Nothing in berth deletes content or snapshots just because their last
//! user went away. Deleting an image, a container or a lease only removes
//! that record; the collector then finds what nothing references any more
//! and removes it. The rule is simple: an object survives while a path of
//! references leads to it from a root.
//!
//! ```text
//!  ROOTS                         REFERENCES (edges the mark follows)
//!
//!  lease (live) ──holds──┬──▶ content ──gc.ref.content*──▶ content ──▶ …
//!   ├ gc.expire in past: │     │  └──gc.ref.snapshot.<ss>*─▶ snapshot
//!   │ not a root,        ├──▶ snapshot ──parent──▶ snapshot ──parent──▶ …
//!   │ swept itself       │     └──gc.ref.content*──▶ content
//!   └ gc.flat: holds     └──▶ image (see below)
//!     only what it names
//!     (+ structural edges)
//!
//!  image (not expired) ──target──▶ content (manifest / index)
//!   └ gc.ref.* labels ──▶ content, snapshot, image
//!                      manifest ──gc.ref.content.config───▶ config
//!                               ──gc.ref.content.l.<i>────▶ layer
//!                      index    ──gc.ref.content.m.<i>────▶ manifest
//!                      config   ──gc.ref.snapshot.<ss>────▶ unpacked chain
//!
//!  container ──snapshotter/snapshot_key──▶ snapshot (rootfs)
//!   └ gc.ref.* labels ──▶ content, snapshot, image
//!
//!  content / snapshot labelled gc.root ── a root itself
//!
//!  X labelled gc.bref.<kind>=Y ── back reference: whatever reaches Y
//!                                 reaches X too
//! ```
//!
//! Edges never cross namespaces: `gc.ref.content.l.0` on a manifest in
//! namespace `a` names the layer row of namespace `a`. A blob file is shared
//! by every namespace that holds it, so the sweep removes one namespace's
//! row, and the file goes only when no namespace holds the digest
//! ([`Removed::unowned_blobs`]).
//!
//! The label rules are in [`labels`]'s table. Not carried over from
//! containerd 2.x: conditional references (`gc.cond.snapshot`), sandboxes,
//! and collectors registered by plugins.
//!
//! # Not blocking writers
//!
//! containerd holds a lock that stops every writer for the whole mark and
//! sweep. Here the mark runs in a redb *read* transaction, which sees one
//! consistent snapshot and blocks nobody. The sweep then opens the write
//! transaction and compares the database generation (a counter every write
//! transaction bumps, see `schema.rs`) with the one the mark saw: if no
//! write happened in between, the mark is still exact and the sweep only
//! deletes rows, so writers wait just for that. If writers did commit, the
//! mark is taken again; after [`LOCK_FREE_MARKS`] lost races the mark runs
//! inside the write transaction, as containerd always does, so collection
//! always finishes. [`GcReport::pause`] is the time writers were held.

mod expire;
mod graph;
pub mod labels;
mod mark;
mod scan;
mod sweep;
#[cfg(test)]
mod tests;

pub use graph::Kind;
pub use labels::{LABEL_EXPIRE, LABEL_FLAT, LABEL_ROOT};

use crate::errors::DbResult;
use crate::schema::{self, META};
use crate::MetadataStore;
use berth_core::{Digest, Result};
use redb::{ReadableDatabase, WriteTransaction};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

/// How many marks run without the write lock before one runs under it.
pub const LOCK_FREE_MARKS: u32 = 3;

/// What one collection removed from the metadata database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Blob rows removed, as (namespace, digest).
    pub content: Vec<(String, String)>,
    /// Digests among those that no namespace holds any more: their blob
    /// files should go (through the content store's `remove_if_unowned`,
    /// which checks again under its lock).
    pub unowned_blobs: Vec<Digest>,
    /// Snapshot rows removed; their snapshotters should remove the
    /// snapshots themselves.
    pub snapshots: Vec<RemovedSnapshot>,
    /// Expired images removed, as (namespace, name).
    pub images: Vec<(String, String)>,
    /// Expired leases removed, as (namespace, id).
    pub leases: Vec<(String, String)>,
    /// Ingests (namespace, ref) that live leases still hold. Ingests are
    /// the content store's files; the daemon removes stale ones no lease
    /// holds.
    pub leased_ingests: Vec<(String, String)>,
}

impl Removed {
    /// Whether the sweep removed no row.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
            && self.snapshots.is_empty()
            && self.images.is_empty()
            && self.leases.is_empty()
    }
}

/// A snapshot row the sweep removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSnapshot {
    /// Its namespace.
    pub namespace: String,
    /// The snapshotter holding it, e.g. `overlayfs`.
    pub snapshotter: String,
    /// Its key.
    pub key: String,
}

/// What one collection did and how long it took.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Rows removed.
    pub removed: Removed,
    /// Objects in the graph the mark walked.
    pub objects: usize,
    /// Marks taken (more than one when writers committed in between).
    pub marks: u32,
    /// Time spent marking without the write lock.
    pub mark: Duration,
    /// Time the write lock was held: how long writers were paused.
    pub pause: Duration,
    /// Time of the whole collection.
    pub total: Duration,
}

impl MetadataStore {
    /// Runs one garbage collection: marks what the roots reach, removes the
    /// other rows of `content`, `snapshots`, expired `images` and expired
    /// `leases`, and reports them. Physical removal (blob files, snapshot
    /// directories) is the caller's, from [`GcReport::removed`].
    pub fn garbage_collect(&self) -> Result<GcReport> {
        self.collect(|| {})
    }

    /// [`MetadataStore::garbage_collect`] with a hook run between each
    /// lock-free mark and its sweep (tests use it to race a writer).
    pub(crate) fn collect(&self, mut between_mark_and_sweep: impl FnMut()) -> Result<GcReport> {
        let started = Instant::now();
        // Deletions from here on must schedule another collection.
        self.mutations.dirty.store(0, Ordering::Relaxed);
        let mut report = GcReport::default();
        for _ in 0..LOCK_FREE_MARKS {
            report.marks += 1;
            let marking = Instant::now();
            let (generation, graph, marked) = {
                let tx = self.db.begin_read().db()?;
                let generation = schema::generation(&tx.open_table(META).db()?)?;
                let graph = scan::scan(&tx, SystemTime::now())?;
                let marked = mark::mark(&graph);
                (generation, graph, marked)
            };
            report.mark += marking.elapsed();
            report.objects = graph.nodes.len();
            between_mark_and_sweep();
            let tx = self.db.begin_write().db()?;
            let paused = Instant::now();
            let current = schema::generation(&tx.open_table(META).db()?)?;
            if current != generation {
                abort(tx);
                report.pause += paused.elapsed();
                tracing::debug!(
                    marks = report.marks,
                    "writers committed during the mark: marking again"
                );
                continue;
            }
            report.removed = finish(tx, |tx| sweep::sweep(tx, &graph, &marked))?;
            report.removed.leased_ingests = graph.leased_ingests;
            report.pause += paused.elapsed();
            report.total = started.elapsed();
            return Ok(report);
        }
        // Writers kept winning: mark under the write lock, as containerd does.
        report.marks += 1;
        let tx = self.db.begin_write().db()?;
        let paused = Instant::now();
        report.removed = finish(tx, |tx| {
            let graph = scan::scan(tx, SystemTime::now())?;
            let marked = mark::mark(&graph);
            let mut removed = sweep::sweep(tx, &graph, &marked)?;
            removed.leased_ingests = graph.leased_ingests;
            Ok(removed)
        })?;
        report.pause += paused.elapsed();
        report.total = started.elapsed();
        Ok(report)
    }
}

/// Runs `sweep` in `tx`, bumps the generation and commits; aborts on error,
/// and when there was nothing to remove (saving the commit's fsync). The
/// collector's own commit does not tell the mutation callbacks: it must not
/// schedule another collection.
fn finish(
    tx: WriteTransaction,
    sweep: impl FnOnce(&WriteTransaction) -> Result<Removed>,
) -> Result<Removed> {
    let removed = match sweep(&tx) {
        Ok(removed) => removed,
        Err(err) => {
            abort(tx);
            return Err(err);
        }
    };
    if removed.is_empty() {
        abort(tx);
        return Ok(removed);
    }
    match schema::bump_generation(&tx) {
        Ok(()) => tx.commit().db().map(|()| removed),
        Err(err) => {
            abort(tx);
            Err(err)
        }
    }
}

fn abort(tx: WriteTransaction) {
    if let Err(err) = tx.abort() {
        tracing::warn!(error = %err, "aborting garbage collection transaction");
    }
}
