//! Diff: the `walking` differ over the content store. Apply extracts a
//! layer blob into a snapshot's mounts; Diff compares two mounted trees
//! and writes the layer between them into the content store.

use crate::local::blocking;
use crate::local::content::ContentService;
use berth_core::content;
use berth_core::diff::Applier;
use berth_core::mount::{Mount, TempMount};
use berth_core::{Descriptor, Error, Result};
use berth_image::diff::{compare, CompareOptions, LayerCompression, LocalApplier};
use berth_image::gc::UNCOMPRESSED_LABEL;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The media type of a gzip layer, what Diff writes by default.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The media type of an uncompressed layer.
pub const MEDIA_TYPE_LAYER: &str = berth_core::diff::MEDIA_TYPE_LAYER;

/// The differ: layers in and out of the content store.
pub struct DiffService {
    content: Arc<ContentService>,
    /// Where mounts and layer files go while in use.
    scratch: PathBuf,
}

/// What a Diff call asks for.
#[derive(Debug, Default)]
pub struct DiffRequest {
    /// The lower tree's mounts (none: an empty tree).
    pub lower: Vec<Mount>,
    /// The upper tree's mounts.
    pub upper: Vec<Mount>,
    /// The layer's media type (empty: gzip).
    pub media_type: String,
    /// The ingest ref (empty: a unique one).
    pub reference: String,
    /// Labels for the written blob.
    pub labels: HashMap<String, String>,
}

impl DiffService {
    /// A differ over `content`, using `scratch` for temporary mounts.
    pub fn new(content: Arc<ContentService>, scratch: PathBuf) -> Self {
        DiffService { content, scratch }
    }

    /// Applies layer `desc` to `mounts` in namespace `ns`.
    pub async fn apply(
        &self,
        ns: &str,
        lease: Option<&str>,
        desc: &Descriptor,
        mounts: &[Mount],
    ) -> Result<Descriptor> {
        let store = self.content.store(ns, lease)?;
        let applier = LocalApplier::new(Arc::new(store), self.scratch.clone());
        applier.apply(desc, mounts, HashMap::new()).await
    }

    /// Writes the layer from `req.lower` to `req.upper` into the content
    /// store and returns its descriptor.
    pub async fn diff(
        &self,
        ns: &str,
        lease: Option<&str>,
        req: DiffRequest,
    ) -> Result<Descriptor> {
        let compression = match req.media_type.as_str() {
            "" | MEDIA_TYPE_LAYER_GZIP => LayerCompression::Gzip,
            MEDIA_TYPE_LAYER => LayerCompression::Uncompressed,
            other => {
                return Err(Error::not_implemented(format!(
                    "unsupported diff media type: {other}"
                )))
            }
        };
        let media_type = if req.media_type.is_empty() {
            MEDIA_TYPE_LAYER_GZIP.to_string()
        } else {
            req.media_type.clone()
        };
        let scratch = self.scratch.clone();
        let (lower, upper) = (req.lower.clone(), req.upper.clone());
        let (file, stats) =
            blocking(move || write_layer(&scratch, &lower, &upper, compression)).await?;
        let store = self.content.store(ns, lease)?;
        let mut labels = req.labels;
        labels.insert(UNCOMPRESSED_LABEL.to_string(), stats.diff_id.to_string());
        let reference = if req.reference.is_empty() {
            unique_ref()
        } else {
            req.reference
        };
        let size = i64::try_from(stats.size).unwrap_or(i64::MAX);
        let reader = tokio::fs::File::open(file.path()).await?;
        content::write_blob(&store, &reference, reader, size, &stats.digest, labels).await?;
        drop(file);
        Ok(Descriptor {
            media_type,
            digest: stats.digest,
            size,
            annotations: HashMap::new(),
        })
    }
}

/// Mounts both trees and writes their diff to a temporary file.
fn write_layer(
    scratch: &std::path::Path,
    lower: &[Mount],
    upper: &[Mount],
    compression: LayerCompression,
) -> Result<(tempfile::NamedTempFile, berth_image::diff::CompareStats)> {
    std::fs::create_dir_all(scratch)?;
    let lower_ro: Vec<Mount> = lower.iter().map(read_only).collect();
    let upper_ro: Vec<Mount> = upper.iter().map(read_only).collect();
    let lower_mount = TempMount::new(&lower_ro, scratch)?;
    let upper_mount = match TempMount::new(&upper_ro, scratch) {
        Ok(m) => m,
        Err(e) => {
            let _ = lower_mount.unmount();
            return Err(e);
        }
    };
    let mut file = tempfile::NamedTempFile::new_in(scratch)?;
    let options = CompareOptions { compression };
    let result = compare(
        lower_mount.path(),
        upper_mount.path(),
        file.as_file_mut(),
        &options,
    );
    let cleanup = upper_mount.unmount().and(lower_mount.unmount());
    let stats = match (result, cleanup) {
        (Ok(stats), Ok(())) => stats,
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(e),
        (Err(e), Err(c)) => return Err(e.context(format!("(and unmount failed: {c})"))),
    };
    Ok((file, stats))
}

/// A mount made read-only: a differ never writes its inputs.
fn read_only(m: &Mount) -> Mount {
    let mut m = m.clone();
    m.options.retain(|o| o != "rw");
    if !m.options.iter().any(|o| o == "ro") {
        m.options.push("ro".to_string());
    }
    m
}

/// containerd's `uniqueRef`: a timestamp and some noise.
fn unique_ref() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("diff-{}-{}", now.as_nanos(), std::process::id())
}
