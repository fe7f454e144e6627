//! The diff service's domain trait: applying a layer blob to mounts.
//!
//! containerd's `diff.Applier`: given a layer's descriptor (its blob in the
//! content store) and the mounts of an active snapshot, extract the layer
//! into them and return the descriptor of what was applied — the
//! uncompressed layer, whose digest is the diffID. The daemon's walking
//! differ implements it locally and `berth-client` over gRPC, so unpack
//! runs unchanged in both.

use crate::descriptor::Descriptor;
use crate::mount::Mount;
use crate::Result;
use std::collections::HashMap;

/// The media type of an uncompressed OCI layer, as an apply returns it.
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Applies layers to mounts.
#[async_trait::async_trait]
pub trait Applier: Send + Sync {
    /// Extracts the layer `desc` into `mounts`; `payloads` carries
    /// processor options (unused by berth, accepted for the wire).
    /// Returns the applied (uncompressed) layer's descriptor.
    async fn apply(
        &self,
        desc: &Descriptor,
        mounts: &[Mount],
        payloads: HashMap<String, Vec<u8>>,
    ) -> Result<Descriptor>;
}
