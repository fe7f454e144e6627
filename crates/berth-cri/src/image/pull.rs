//! PullImage, as containerd's CRI pulls: the reference is normalized
//! (`busybox` → `docker.io/library/busybox:latest`), pulled and unpacked
//! into the configured snapshotter by the daemon's transfer service, with
//! the request's credentials and the configured `hosts.toml` directory;
//! then the image gets the records CRI keeps for it — the tag, the digest
//! reference (`name@sha256:…` of the target) and the id (`sha256:<config>`)
//! — all labelled `io.cri-containerd.image=managed`. The sandbox image's
//! records are also pinned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use berth_client::transfer::{CredentialsFn, PullOptions, RegistryOptions};
use berth_core::images::{Image as Record, ImageStore};
use berth_core::{Descriptor, Error, ErrorKind, Result};
use berth_image::reference::Reference;
use k8s_cri::v1 as cri;

use super::{auth, view, Image, MANAGED_LABEL, MANAGED_VALUE, PINNED_LABEL, PINNED_VALUE};
use crate::Cri;

impl Cri {
    /// PullImage: answers the image's id.
    pub(crate) async fn pull_image(
        &self,
        request: cri::PullImageRequest,
    ) -> Result<cri::PullImageResponse> {
        let reference = request.image.map(|i| i.image).unwrap_or_default();
        let image = self.pull(&reference, request.auth.as_ref()).await?;
        Ok(cri::PullImageResponse {
            image_ref: image.id,
        })
    }

    /// Pulls and unpacks `reference`, makes CRI's records for it, and
    /// returns the image.
    pub(crate) async fn pull(
        &self,
        reference: &str,
        auth: Option<&cri::AuthConfig>,
    ) -> Result<Image> {
        let parsed = Reference::parse_normalized(reference).map_err(|err| {
            Error::invalid_argument(format!(
                "failed to parse image reference {reference:?}: {}",
                err.message()
            ))
        })?;
        let name = berth_image::reference::normalize(reference)?;
        let registry = self.registry_options(&parsed, auth)?;
        let options = PullOptions {
            name: Some(name.clone()),
            unpack: Some(self.config.containerd.snapshotter.clone()),
            labels: HashMap::from([(MANAGED_LABEL.to_string(), MANAGED_VALUE.to_string())]),
            ..PullOptions::default()
        };
        self.client
            .transfer()
            .pull(&name, &registry, &options, None)
            .await
            .map_err(|err| err.context(format!("failed to pull and unpack image {name:?}")))?;
        let target = self.client.images().get(&name).await?.target;
        let id = view::image_id(&self.client.content(), &target).await?;
        let pinned = self.is_sandbox_image(&name);
        for record in cri_references(&parsed, &target, &id) {
            self.create_reference(&record, &target, pinned)
                .await
                .map_err(|err| {
                    err.context(format!("failed to create image reference {record:?}"))
                })?;
        }
        tracing::debug!(reference, id, "pulled image");
        self.local_image(&id).await
    }

    /// How the daemon reaches the registry: the `hosts.toml` directory and
    /// the request's credentials.
    fn registry_options(
        &self,
        reference: &Reference,
        auth: Option<&cri::AuthConfig>,
    ) -> Result<RegistryOptions> {
        let mut options = RegistryOptions {
            hosts_dir: self.hosts_dir(),
            ..RegistryOptions::default()
        };
        let Some(auth) = auth.cloned() else {
            return Ok(options);
        };
        // Checked now, so a malformed config fails the pull with its reason.
        let for_host = auth::credentials(&auth, &reference.domain)?;
        if for_host.is_none() && !auth.registry_token.is_empty() {
            tracing::warn!("AuthConfig.registry_token is not supported; pulling anonymously");
        }
        let answer: CredentialsFn =
            Arc::new(move |host, _| auth::credentials(&auth, host).ok().flatten());
        options.credentials = Some(answer);
        Ok(options)
    }

    /// `registry.config_path` as the daemon takes it: one directory
    /// (containerd accepts a `:`-separated list; berth uses the first).
    fn hosts_dir(&self) -> Option<String> {
        let path = self.config.registry_config_path.as_ref()?;
        let path = path.to_string_lossy();
        let mut dirs = path.split(':').filter(|d| !d.is_empty());
        let first = dirs.next()?.to_string();
        if dirs.next().is_some() {
            tracing::warn!(
                first,
                "registry config_path lists several directories; only the first is used"
            );
        }
        Some(first)
    }

    /// Whether `name` (normalized) is the configured sandbox image.
    fn is_sandbox_image(&self, name: &str) -> bool {
        berth_image::reference::normalize(&self.config.sandbox_image).is_ok_and(|s| s == name)
    }

    /// Points record `name` at `target` with the managed label (and the
    /// pinned one): created, or updated where it exists and differs.
    async fn create_reference(&self, name: &str, target: &Descriptor, pinned: bool) -> Result<()> {
        let mut labels = HashMap::from([(MANAGED_LABEL.to_string(), MANAGED_VALUE.to_string())]);
        if pinned {
            labels.insert(PINNED_LABEL.to_string(), PINNED_VALUE.to_string());
        }
        let record = Record {
            name: name.to_string(),
            labels: labels.clone(),
            target: target.clone(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
        };
        let images = self.client.images();
        match images.create(record.clone()).await {
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            other => return other.map(|_| ()),
        }
        let old = images.get(name).await?;
        if old.target.digest == target.digest
            && labels.iter().all(|(k, v)| old.labels.get(k) == Some(v))
        {
            return Ok(());
        }
        let mut paths = vec!["target".to_string()];
        paths.extend(labels.keys().map(|k| format!("labels.{k}")));
        images.update(record, &paths).await.map(|_| ())
    }
}

/// The records CRI keeps for an image pulled as `reference` (containerd's
/// `getRepoDigestAndTag` plus the id): the id, the tag if the reference
/// has one, and the digest reference — the one asked for, or the name at
/// the target's digest.
fn cri_references(reference: &Reference, target: &Descriptor, id: &str) -> Vec<String> {
    let mut out = vec![id.to_string()];
    if reference.digest.is_none() {
        let tagged = reference.clone().tag_name_only();
        out.push(tagged.to_string());
        out.push(format!("{}@{}", reference.name(), target.digest));
    } else {
        let mut digested = reference.clone();
        digested.tag = None;
        out.push(digested.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::Digest;

    #[test]
    fn a_tag_gets_a_digest_reference_and_an_id() {
        let target = Descriptor {
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            digest: Digest::sha256_of(b"index"),
            size: 5,
            annotations: HashMap::new(),
        };
        let id = Digest::sha256_of(b"config").to_string();
        let busybox = Reference::parse_normalized("busybox").expect("ref");
        assert_eq!(
            cri_references(&busybox, &target, &id),
            [
                id.clone(),
                "docker.io/library/busybox:latest".to_string(),
                format!("docker.io/library/busybox@{}", target.digest),
            ]
        );
        let pinned = format!("127.0.0.1:5000/x:1@{}", Digest::sha256_of(b"m"));
        let by_digest = Reference::parse_normalized(&pinned).expect("ref");
        assert_eq!(
            cri_references(&by_digest, &target, &id),
            [
                id.clone(),
                format!("127.0.0.1:5000/x@{}", Digest::sha256_of(b"m"))
            ]
        );
    }
}
