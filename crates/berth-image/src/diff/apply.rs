//! Applying a layer to a directory: containerd's `archive.Apply`
//! (`applyNaive`), confined to the target with descriptor-relative calls.

use super::decompress::{self, DecodeError};
use super::extract::Extractor;
use super::fsops::{self, Root};
use berth_core::{Digest, Error, Result};
use std::io::Read;
use std::path::Path;

/// What a whiteout entry turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// The target is a plain directory holding the lower layers' files
    /// (native snapshotter, `ctr images mount` of a bind): `.wh.NAME`
    /// removes `NAME`, an opaque marker removes what this layer did not
    /// add to its directory.
    #[default]
    Remove,
    /// The target is an overlayfs upper directory: `.wh.NAME` becomes the
    /// character device 0:0 overlayfs reads as a whiteout, an opaque
    /// marker the `trusted.overlay.opaque=y` xattr (`user.overlay.opaque`
    /// when `user_xattr`, for mounts with `userxattr`).
    Overlay {
        /// Use the `user.` xattr namespace.
        user_xattr: bool,
    },
}

/// How to apply a layer.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How whiteouts are represented.
    pub whiteouts: Whiteouts,
    /// The diffID the layer must have; a mismatch fails the apply (after
    /// extraction, as the digest is only known at the end).
    pub expected_diff_id: Option<Digest>,
    /// Give files the owners the layer names (needs privilege).
    pub same_owner: bool,
    /// Create character and block devices (needs privilege outside a user
    /// namespace); when false they are skipped and counted, as containerd
    /// skips them in a user namespace.
    pub devices: bool,
    /// Lower directories, nearest first, whose directory attributes a
    /// parent created by this apply copies (containerd's `WithParents`):
    /// in an overlay upper, a new `tmp/` must keep the lower `tmp/`'s mode
    /// and owner, or it would hide them.
    pub parents: Vec<std::path::PathBuf>,
}

impl Default for ApplyOptions {
    /// Owners and devices when the process is privileged.
    fn default() -> Self {
        let privileged = fsops::privileged();
        ApplyOptions {
            whiteouts: Whiteouts::Remove,
            expected_diff_id: None,
            same_owner: privileged,
            devices: privileged,
            parents: Vec::new(),
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// The sha256 of the uncompressed layer.
    pub diff_id: Digest,
    /// The uncompressed layer's size in bytes.
    pub size: u64,
    /// Device nodes skipped because `devices` was off.
    pub skipped_devices: u64,
    /// Directories (relative to the target) that the layer's entries
    /// needed but the layer did not have: made with mode 0755 and root's
    /// ownership, or with the attributes of the same directory in
    /// [`ApplyOptions::parents`]. A layer applied before its lower layers
    /// are known (a rebase unpack) gives them their attributes afterwards.
    pub implicit_dirs: Vec<std::path::PathBuf>,
}

/// Applies the layer `reader` yields (a tar, gzip- or zstd-compressed, as
/// its magic bytes say) to `target`.
///
/// Entries that would land outside `target` are refused with
/// `InvalidArgument` naming the entry; what was extracted before stays (the
/// caller discards the snapshot, as containerd does on a failed apply).
pub fn apply(
    reader: impl Read + Send,
    target: &Path,
    options: &ApplyOptions,
) -> Result<ApplyStats> {
    let root = Root::open(target)
        .map_err(|e| Error::from(e).context(format!("open {}", target.display())))?;
    std::thread::scope(|scope| {
        let (mut chunks, decoder) = decompress::spawn(scope, reader);
        let extracted = Extractor::new(&root, options).and_then(|x| x.run(&mut chunks));
        if extracted.is_ok() {
            chunks.drain();
        }
        drop(chunks);
        let decoded = decoder
            .join()
            .map_err(|_| Error::internal("layer decoder thread panicked"))?;
        let (extracted, decoded) = match (extracted, decoded) {
            (_, Err(DecodeError::Failed(err))) => return Err(err),
            (Err(err), _) => return Err(err),
            (Ok(_), Err(DecodeError::HungUp)) => {
                return Err(Error::internal("layer extractor stopped reading"))
            }
            (Ok(extracted), Ok(decoded)) => (extracted, decoded),
        };
        if let Some(expected) = &options.expected_diff_id {
            if *expected != decoded.digest {
                return Err(Error::failed_precondition(format!(
                    "layer diffID {} does not match the expected {expected}",
                    decoded.digest
                )));
            }
        }
        Ok(ApplyStats {
            diff_id: decoded.digest,
            size: decoded.size,
            skipped_devices: extracted.skipped_devices,
            implicit_dirs: extracted.implicit_dirs,
        })
    })
}
