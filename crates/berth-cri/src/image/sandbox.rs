//! The sandbox (pause) image every pod starts from: the configured
//! `sandbox_image` if it is here, else pulled — within a short time, so a
//! machine without a registry does not hang RunPodSandbox — and pinned
//! (containerd 1.7's `io.cri-containerd.pinned=pinned` on its records), so
//! the kubelet's image GC keeps it. If it cannot be had, pods start from
//! berth's built-in pause image; after a failed pull, for a minute, at
//! once (pods do not each wait for a registry that just failed). A
//! `sandbox_image` naming the built-in image itself is never pulled.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use berth_core::{Error, Result};

use super::{Image, PINNED_LABEL, PINNED_VALUE};
use crate::Cri;

/// How long a pull of the sandbox image may take before the built-in
/// pause image is used instead.
const SANDBOX_PULL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a failed pull of the sandbox image it is not tried again.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// When a pull of the sandbox image last failed.
#[derive(Debug, Default)]
pub(crate) struct Backoff(Mutex<Option<Instant>>);

impl Backoff {
    fn last_failure(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a pull failed less than `RETRY_AFTER` ago.
    fn waiting(&self) -> bool {
        self.last_failure()
            .is_some_and(|t| t.elapsed() < RETRY_AFTER)
    }

    /// Records the outcome of a pull.
    fn record(&self, succeeded: bool) {
        *self.last_failure() = (!succeeded).then(Instant::now);
    }
}

impl Cri {
    /// The sandbox image, pulled and pinned if absent; berth's built-in
    /// pause image if it cannot be had.
    pub(crate) async fn sandbox_image(&self) -> Result<Image> {
        if self.config.sandbox_image == crate::pause::BUILTIN_PAUSE_IMAGE {
            return self.builtin_pause_image().await;
        }
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
            Err(err) if err.is_not_found() => self.pull_sandbox_image(reference).await?,
            other => other?,
        };
        self.pin(image).await
    }

    /// Pulls the sandbox image within `SANDBOX_PULL_TIMEOUT`, unless a
    /// pull failed less than `RETRY_AFTER` ago.
    async fn pull_sandbox_image(&self, reference: &str) -> Result<Image> {
        let backoff = &self.images.sandbox_pulls;
        if backoff.waiting() {
            return Err(Error::unavailable(format!(
                "a pull of {reference:?} failed less than {RETRY_AFTER:?} ago"
            )));
        }
        let result = tokio::time::timeout(SANDBOX_PULL_TIMEOUT, self.pull(reference, None))
            .await
            .unwrap_or_else(|_| {
                Err(Error::unavailable(format!(
                    "pulling {reference:?} took more than {SANDBOX_PULL_TIMEOUT:?}"
                )))
            });
        backoff.record(result.is_ok());
        result
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pause::BUILTIN_PAUSE_IMAGE;
    use crate::{CriConfig, CriOptions};
    use berth_core::images::ImageStore;
    use berth_testkit::{block_on, require_registry, require_root, Daemon, Registry};
    use std::sync::Arc;

    /// A CRI plugin of its own over `daemon`, with `sandbox_image`.
    fn cri(daemon: &Daemon, sandbox_image: &str) -> Arc<Cri> {
        let dir = daemon.dir().join("sandbox-image-test");
        Cri::new(CriOptions {
            config: CriConfig {
                sandbox_image: sandbox_image.into(),
                ..CriConfig::default()
            },
            address: daemon.address().into(),
            root: dir.join("root"),
            state: dir.join("state"),
            netns_dir: dir.join("netns"),
            cni_cache_dir: dir.join("cni-cache"),
        })
        .expect("cri")
    }

    /// Whether `result` is berth's built-in pause image — or, before it is
    /// built, the attempt to get it.
    fn is_builtin(result: &Result<Image>) -> bool {
        match result {
            Ok(image) => image.references.iter().any(|r| r == BUILTIN_PAUSE_IMAGE),
            Err(err) => err.message().contains("built-in pause image"),
        }
    }

    #[test]
    fn a_failed_pull_is_not_retried_for_a_while() {
        let backoff = Backoff::default();
        assert!(!backoff.waiting());
        backoff.record(false);
        assert!(backoff.waiting());
        *backoff.last_failure() = Instant::now().checked_sub(RETRY_AFTER);
        assert!(!backoff.waiting(), "long enough ago");
        backoff.record(false);
        backoff.record(true);
        assert!(!backoff.waiting());
    }

    #[test]
    fn the_sandbox_image_is_pulled_once_and_pinned() {
        require_root!();
        require_registry!();
        let mut registry = Registry::start().expect("registry");
        let reference = registry.push_busybox("pause/pause:3.9").expect("push");
        let daemon = Daemon::start().expect("daemon");
        block_on(async {
            let cri = cri(&daemon, &reference);
            let image = cri.sandbox_image().await.expect("sandbox image");
            assert!(image.pinned);
            assert!(image.references.contains(&reference), "{image:?}");
            let records = cri.client.images().list(&[]).await.expect("records");
            assert_eq!(records.len(), 3, "tag, digest and id: {records:?}");
            for record in &records {
                assert_eq!(
                    record.labels.get(PINNED_LABEL).map(String::as_str),
                    Some(PINNED_VALUE)
                );
            }
            // Now it is here: no registry needed.
            registry.stop();
            let again = cri.sandbox_image().await.expect("local sandbox image");
            assert_eq!(again.id, image.id);
            assert!(again.pinned);
        })
        .expect("runtime");
    }

    #[test]
    fn an_unpullable_sandbox_image_falls_back_to_the_builtin_pause_image() {
        let daemon = Daemon::start().expect("daemon");
        block_on(async {
            // Nothing listens on port 1: the pull fails at once.
            let cri = cri(&daemon, "127.0.0.1:1/pause:3.9");
            assert!(is_builtin(&cri.sandbox_image().await));
            assert!(
                cri.images.sandbox_pulls.waiting(),
                "the failure is remembered"
            );
            assert!(is_builtin(&cri.sandbox_image().await));
        })
        .expect("runtime");
    }

    #[test]
    fn a_registry_that_never_answers_does_not_hang_the_sandbox_image() {
        // Connections are accepted (into the backlog) and never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = silent.local_addr().expect("address").port();
        let daemon = Daemon::start().expect("daemon");
        block_on(async {
            let cri = cri(&daemon, &format!("127.0.0.1:{port}/pause:3.9"));
            assert!(is_builtin(&cri.sandbox_image().await));
        })
        .expect("runtime");
        drop(silent);
    }
}
