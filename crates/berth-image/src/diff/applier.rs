//! The local [`Applier`]: a layer blob from a content store, applied to a
//! snapshot's mounts (containerd's walking differ, `apply_linux.go`).
//!
//! As in containerd, a single overlay mount is not mounted at all: the
//! layer goes straight into its `upperdir`, whiteouts become overlay
//! whiteouts, and new parent directories copy their attributes from the
//! `lowerdir`s. A single writable bind mount (the first layer's snapshot)
//! is applied to its source. Anything else is mounted on a scratch
//! directory for the apply and unmounted afterwards, on every path.

use super::apply::{apply, ApplyOptions, Whiteouts};
use berth_core::content::{ContentReader, ContentStore};
use berth_core::diff::{Applier, MEDIA_TYPE_LAYER};
use berth_core::mount::{Mount, TempMount};
use berth_core::{Descriptor, Error, Result};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Applies layers from `content` (one namespace's store).
pub struct LocalApplier {
    content: Arc<dyn ContentStore>,
    scratch: PathBuf,
}

impl std::fmt::Debug for LocalApplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalApplier")
            .field("scratch", &self.scratch)
            .finish()
    }
}

impl LocalApplier {
    /// An applier reading layers from `content`, mounting under `scratch`
    /// when it has to mount.
    pub fn new(content: Arc<dyn ContentStore>, scratch: impl Into<PathBuf>) -> Self {
        LocalApplier {
            content,
            scratch: scratch.into(),
        }
    }
}

#[async_trait::async_trait]
impl Applier for LocalApplier {
    async fn apply(
        &self,
        desc: &Descriptor,
        mounts: &[Mount],
        _payloads: HashMap<String, Vec<u8>>,
    ) -> Result<Descriptor> {
        let reader = self.content.reader(&desc.digest, 0).await?;
        let blocking = BlockingReader {
            handle: tokio::runtime::Handle::current(),
            inner: reader,
        };
        let mounts = mounts.to_vec();
        let scratch = self.scratch.clone();
        let stats =
            tokio::task::spawn_blocking(move || apply_to_mounts(blocking, &mounts, &scratch))
                .await
                .map_err(|e| Error::internal(format!("apply task: {e}")))?
                .map_err(|e| e.context(format!("failed to extract layer {}", desc.digest)))?;
        Ok(Descriptor {
            media_type: MEDIA_TYPE_LAYER.to_string(),
            digest: stats.diff_id,
            size: i64::try_from(stats.size).unwrap_or(i64::MAX),
            annotations: HashMap::new(),
        })
    }
}

/// Applies `layer` to `mounts`, choosing how as the module doc says.
pub fn apply_to_mounts(
    layer: impl Read + Send,
    mounts: &[Mount],
    scratch: &Path,
) -> Result<super::ApplyStats> {
    let mut options = ApplyOptions::default();
    if let [m] = mounts {
        if m.mount_type == "overlay" {
            if let Some(upper) = option(m, "upperdir") {
                options.whiteouts = Whiteouts::Overlay {
                    user_xattr: m.options.iter().any(|o| o == "userxattr"),
                };
                options.parents = option(m, "lowerdir")
                    .map(|l| l.split(':').map(PathBuf::from).collect())
                    .unwrap_or_default();
                return apply(layer, Path::new(upper), &options);
            }
        }
        let bind = m.mount_type == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind");
        if bind && !m.read_only() {
            return apply(layer, Path::new(&m.source), &options);
        }
    }
    let target = TempMount::new(mounts, scratch)?;
    let result = apply(layer, target.path(), &options);
    match (result, target.unmount()) {
        (Ok(stats), Ok(())) => Ok(stats),
        (Err(err), Ok(())) => Err(err),
        (Ok(_), Err(cleanup)) => Err(cleanup),
        (Err(err), Err(cleanup)) => Err(err.context(format!("(and cleanup failed: {cleanup})"))),
    }
}

/// The value of `key=` among a mount's options.
fn option<'m>(m: &'m Mount, key: &str) -> Option<&'m str> {
    m.options
        .iter()
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
}

/// An async content reader read from a plain thread.
struct BlockingReader {
    handle: tokio::runtime::Handle,
    inner: ContentReader,
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.handle.block_on(self.inner.read(buf))
    }
}
