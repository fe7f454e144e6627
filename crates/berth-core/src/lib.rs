//! berth's shared domain vocabulary.
//!
//! Everything here is free of the wire (no tonic, no prost): the error type and
//! its kinds, containerd's identifier and label rules, and containerd's filter
//! language. Every other berth crate builds on these.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod errors;
pub mod filters;
pub mod goquote;
pub mod identifiers;
pub mod labels;
pub mod namespaces;

pub use errors::{Error, ErrorKind, Result};
