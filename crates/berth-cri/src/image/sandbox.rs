//! The sandbox (pause) image every pod starts from: the configured
//! `sandbox_image` if it is here, else pulled — within a short time, so a
//! machine without a registry does not hang RunPodSandbox — and pinned
//! (containerd 1.7's `io.cri-containerd.pinned=pinned` on its records), so
//! the kubelet's image GC keeps it. If it cannot be had, pods start from
//! berth's built-in pause image.

use std::collections::HashMap;
use std::time::Duration;

use berth_core::{Error, Result};

use super::{Image, PINNED_LABEL, PINNED_VALUE};
use crate::Cri;

/// How long a pull of the sandbox image may take before the built-in
/// pause image is used instead.
const SANDBOX_PULL_TIMEOUT: Duration = Duration::from_secs(10);

impl Cri {
    /// The sandbox image, pulled and pinned if absent; berth's built-in
    /// pause image if it cannot be had.
    pub(crate) async fn sandbox_image(&self) -> Result<Image> {
        match self.configured_sandbox_image().await {
            Ok(image) => Ok(image),
            Err(err) => {
                tracing::warn!(
                    image = %self.config.sandbox_image,
                    "sandbox image cannot be had, using berth's built-in pause image: {err}"
                );
                self.builtin_pause_image().await
            }
        }
    }

    /// The configured sandbox image, here or pulled, pinned.
    async fn configured_sandbox_image(&self) -> Result<Image> {
        let reference = &self.config.sandbox_image;
        let image = match self.local_image(reference).await {
            Err(err) if err.is_not_found() => {
                tokio::time::timeout(SANDBOX_PULL_TIMEOUT, self.pull(reference, None))
                    .await
                    .map_err(|_| {
                        Error::unavailable(format!(
                            "pulling {reference:?} took more than {SANDBOX_PULL_TIMEOUT:?}"
                        ))
                    })??
            }
            other => other?,
        };
        self.pin(image).await
    }

    /// Labels every record of `image` pinned.
    pub(crate) async fn pin(&self, mut image: Image) -> Result<Image> {
        if image.pinned {
            return Ok(image);
        }
        let images = self.client.images();
        for name in &image.references {
            let labels = HashMap::from([(PINNED_LABEL.to_string(), PINNED_VALUE.to_string())]);
            match images.set_labels(name, labels).await {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
        }
        image.pinned = true;
        Ok(image)
    }
}
