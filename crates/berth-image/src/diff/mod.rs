//! Layer diffs: applying a layer tar to a directory and computing one
//! between two trees, as containerd's `pkg/archive` and its `walking`
//! differ do.
//!
//! A layer is a tar (optionally gzip- or zstd-compressed) of the files a
//! build step added or changed, plus *whiteouts* for what it removed (OCI
//! image-spec `layer.md`): an empty `.wh.NAME` deletes `NAME` from the
//! layers below, and `.wh..wh..opq` in a directory hides everything the
//! lower layers had there. Its *diffID* is the sha256 of the uncompressed
//! tar; an image config lists them, and [`crate::images::chain_id`] folds
//! them into the snapshot names unpack commits under.
//!
//! [`apply()`] streams a layer into a directory: decompression and the
//! diffID hash run on a thread of their own, feeding the extractor through
//! a bounded channel. Every entry is placed through directory file
//! descriptors resolved with `openat2(RESOLVE_IN_ROOT)`, so neither `..`,
//! an absolute path, a symlink planted by an earlier entry nor a hard link
//! can reach outside the target. Whiteouts are applied for a plain
//! directory ([`Whiteouts::Remove`]) or converted to overlayfs's own
//! markers when the target is an overlay upper directory
//! ([`Whiteouts::Overlay`]).
//!
//! [`compare()`] writes the layer that turns one tree into another, by
//! walking both (containerd's `walking` differ), or by reading an overlay
//! upper directory's own whiteouts ([`compare_overlay`]).

mod applier;
mod apply;
mod compare;
mod decompress;
mod extract;
mod fsops;
mod meta;
mod path;
mod writer;

pub use applier::{apply_to_mounts, LocalApplier};
pub use apply::{apply, ApplyOptions, ApplyStats, Whiteouts};
pub use compare::{compare, compare_overlay, CompareOptions, CompareStats};
pub use decompress::{detect, Compression};
pub use writer::LayerCompression;

/// The prefix of a whiteout entry's name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The prefix of whiteout names with a meaning of their own (not a removal).
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// The entry that makes its directory opaque.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to treat an upper directory as opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same, for overlay mounts with the `userxattr` option.
pub const OVERLAY_USER_OPAQUE_XATTR: &str = "user.overlay.opaque";
/// The PAX record prefix under which tar carries extended attributes.
pub(crate) const PAX_XATTR: &str = "SCHILY.xattr.";
