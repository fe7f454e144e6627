//! berth's shared domain vocabulary.
//!
//! Everything here is free of the wire (no tonic, no prost): the error type and
//! its kinds, containerd's identifier and label rules, containerd's filter
//! language, digests and descriptors, and the domain traits ([`content::ContentStore`],
//! [`images::ImageStore`]) that local and remote implementations share. Every other berth crate builds on these.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capabilities;
pub mod cgroups;
pub mod content;
pub mod descriptor;
pub mod diff;
pub mod digest;
pub mod errors;
pub mod filters;
pub mod goduration;
pub mod goquote;
pub mod identifiers;
pub mod images;
pub mod labels;
pub mod mount;
pub mod namespaces;
pub mod network;
#[cfg(target_os = "linux")]
pub mod rootpath;
pub mod snapshots;
pub mod time;

pub use descriptor::Descriptor;
pub use digest::Digest;
pub use errors::{Error, ErrorKind, Result};
