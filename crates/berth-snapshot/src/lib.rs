//! berth's snapshotters: [`overlay`] (the default) and [`native`], each a
//! [`Snapshotter`](berth_core::snapshots::Snapshotter) over one root
//! directory with its own small metadata file. They know nothing of
//! namespaces or leases: the daemon maps namespaced keys onto the keys
//! these snapshotters see.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fsutil;
pub mod local;
mod metastore;
pub mod native;
pub mod overlay;

pub use local::Snapshots;
pub use native::NativeSnapshotter;
pub use overlay::OverlaySnapshotter;
