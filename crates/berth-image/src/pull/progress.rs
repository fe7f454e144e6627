//! Pull and push progress, shaped like containerd's transfer progress
//! (`containerd.types.transfer.Progress`) so the daemon's transfer service
//! can forward each update as one message.

use crate::spec::Descriptor;

/// The reference is being resolved.
pub const RESOLVING: &str = "resolving";
/// The reference resolved to a root descriptor.
pub const RESOLVED: &str = "resolved";
/// A blob waits for a download slot or for another pull writing it.
pub const WAITING: &str = "waiting";
/// A blob is being downloaded; `progress` counts its bytes.
pub const DOWNLOADING: &str = "downloading";
/// A blob is in the content store (downloaded now or already there).
pub const COMPLETE: &str = "complete";
/// A blob was already in the content store.
pub const ALREADY_EXISTS: &str = "already exists";
/// A blob is being uploaded; `progress` counts its bytes.
pub const UPLOADING: &str = "uploading";
/// An image's layers are being unpacked into a snapshotter.
pub const UNPACKING: &str = "unpacking";
/// The image record was written.
pub const SAVED: &str = "saved";
/// A push finished.
pub const PUSHED: &str = "pushed";

/// One progress event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// What happened: one of the constants of this module.
    pub event: String,
    /// What it happened to: the reference, or a blob's ref key
    /// (`layer-sha256:…`).
    pub name: String,
    /// The names this one belongs under (a blob's image reference).
    pub parents: Vec<String>,
    /// Bytes done.
    pub progress: i64,
    /// Bytes in all, 0 if unknown.
    pub total: i64,
    /// The blob or root this is about.
    pub desc: Option<Descriptor>,
}

/// Receives progress; called from the pull's task, so it must be quick.
pub trait Progress: Send + Sync {
    /// Takes one update.
    fn report(&self, update: ProgressUpdate);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _: ProgressUpdate) {}
}

impl<F: Fn(ProgressUpdate) + Send + Sync> Progress for F {
    fn report(&self, update: ProgressUpdate) {
        self(update)
    }
}
