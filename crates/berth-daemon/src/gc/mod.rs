//! Garbage collection in the daemon: *when* to collect (the scheduler,
//! containerd's `io.containerd.gc.v1 scheduler` plugin) and the physical
//! half of a collection (blob files, snapshots, events). *What* to collect
//! is `berth_store::gc`: a mark and sweep over the metadata database.
//!
//! One collection:
//!
//! 1. the store marks from the roots without the write lock, then sweeps
//!    unreferenced rows in one short write transaction (the pause);
//! 2. the blobs no namespace holds any more are unlinked through the
//!    content store's `remove_unowned`, which re-checks ownership under its
//!    commit lock, so a blob committed meanwhile survives; ingests no live
//!    lease holds and nobody wrote for 24 hours go too; the daemon's first
//!    collection also checks every blob file, removing those a crash left
//!    unrecorded;
//! 3. removed snapshots go to the snapshot hook (none until snapshotters
//!    exist), and `/images/delete` and `/snapshot/remove` are published for
//!    what the sweep removed, as containerd does.

mod collect;
mod scheduler;

pub use collect::{Cleanup, GcStats, SnapshotRemover, INGEST_EXPIRY};
pub use scheduler::{GcScheduler, SchedulerConfig};
