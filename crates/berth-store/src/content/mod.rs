//! The content store: blobs addressed by digest, the ingests that write
//! them, and which namespace holds which blob.
//!
//! # Layout
//!
//! ```text
//! <root>/blobs/sha256/<hex>     committed blobs, read-only, one per digest (blobs.rs)
//! <root>/ingest/<hex>/          partial blobs by (namespace, ref) (ingest.rs)
//! metadata.redb: content        (namespace, digest) → size, times, labels (record.rs)
//! ```
//!
//! `<root>` is the daemon's `<--root>/content`. A blob file is stored once
//! however many namespaces hold it; the metadata rows say who does, and a
//! namespace sees only its rows — exactly containerd's split between its
//! local store (`plugins/content/local`) and its metadata store
//! (`core/metadata/content.go`), with containerd's default "shared" policy.
//!
//! # Rules (containerd's)
//!
//! - One writer per (namespace, ref): a second gets `Unavailable`
//!   (locks.rs). A closed writer's ingest survives, restarts included, and
//!   reopening the ref resumes at its offset (writer.rs).
//! - Commit verifies size and digest while the bytes stream (no second
//!   read), fsyncs, renames into place, and records the namespace's row;
//!   mismatches are `FailedPrecondition` and leave no blob. Committing what
//!   the namespace holds already is `AlreadyExists`; a blob another namespace
//!   holds is not written again.
//! - A lease (`containerd-lease`) holds the ingest while it is written and
//!   the blob once committed; those lease entries are written in the same
//!   transaction as the change they protect (record.rs).
//! - Deleting removes the namespace's row, then the file once no namespace
//!   holds it — through [`Content::remove_if_unowned`], whose locking rule
//!   (see [`BlobStore`]) makes it safe against concurrent commits. Garbage
//!   collection uses the same function.
//!
//! # Performance
//!
//! Bytes pass through user memory once: written to the data file and hashed
//! from the same buffer ([`berth_core::content::ContentWriter::write_owned`]
//! hands a decoded gRPC message over without a copy). Memory per writer is
//! one chunk. File and database work runs on tokio's blocking pool.

mod blobs;
mod ingest;
mod locks;
mod record;
mod store;
mod writer;

pub use blobs::{BlobStore, Installed};
pub use ingest::IngestInfo;
pub use store::{Content, DeleteHook, LocalContent};
pub use writer::LocalWriter;

pub(crate) use record::labels_of;
#[cfg(test)]
pub(crate) use record::record_bytes;

#[cfg(test)]
mod tests;
