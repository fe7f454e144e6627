//! OCI content descriptors: what a blob is, how big, and its digest.

use crate::digest::Digest;
use std::collections::HashMap;

/// A descriptor: media type, digest and size of a blob, plus annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type, e.g. `application/vnd.oci.image.manifest.v1+json`.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: i64,
    /// Free-form annotations.
    pub annotations: HashMap<String, String>,
}
