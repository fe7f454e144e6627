//! berth's image model and image archives.
//!
//! An image is a tree of content-addressed JSON documents over layer blobs:
//! an *index* lists *manifests* per platform, a manifest names a *config*
//! and its *layers*. [`spec`] holds those documents (OCI and Docker schema 2)
//! encoded exactly as containerd's Go code encodes them, [`platforms`] and
//! [`reference`](mod@reference) the rules for platforms and image names, and [`images`]
//! the walks over an image in a content store — children, the manifest for
//! a platform, size, completeness, and the GC labels that keep an image's
//! content alive ([`gc`]).
//!
//! [`archive`] imports and exports image archives — OCI layouts and Docker
//! `save` archives — as `ctr images import/export` do, through any
//! [`berth_core::content::ContentStore`] and
//! [`berth_core::images::ImageStore`]: the daemon's local stores or the
//! remote ones in `berth-client`. Archives stream through [`tar`] and never
//! touch the filesystem.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod diff;
pub mod gc;
pub mod images;
pub mod mediatypes;
pub mod platforms;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod remotes;
pub mod spec;
pub mod tar;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod unpack;

pub use berth_core::Digest;
pub use platforms::{Matcher, Platform};
pub use spec::{Descriptor, Index, Manifest};
