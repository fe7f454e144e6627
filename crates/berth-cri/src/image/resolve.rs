//! Finding an image by what the kubelet calls it, as containerd's CRI
//! `localResolve` does: a full digest is an image id; otherwise the
//! reference is normalized (`busybox` → `docker.io/library/busybox:latest`)
//! and looked up among the images' names; failing that, it is taken as a
//! unique prefix of an image id's hex (`sha256:` optional).

use berth_core::{Digest, Error, Result};
use berth_image::reference::normalize;

use super::{view, Image};
use crate::Cri;

impl Cri {
    /// Every image in `k8s.io`, one per id.
    pub(crate) async fn all_images(&self) -> Result<Vec<Image>> {
        let records = berth_core::images::ImageStore::list(&self.client.images(), &[]).await?;
        Ok(view::group(&self.client.content(), &records, &self.images.targets).await)
    }

    /// The image `reference` names: a name (normalized as the kubelet
    /// sends it, `busybox` meaning `docker.io/library/busybox:latest`), an
    /// id (`sha256:…`, or a unique prefix of its hex) or a digest reference.
    /// `NotFound` if there is none.
    pub(crate) async fn local_image(&self, reference: &str) -> Result<Image> {
        find(self.all_images().await?, reference)
    }
}

/// The image of `images` that `reference` names.
pub(crate) fn find(images: Vec<Image>, reference: &str) -> Result<Image> {
    let not_found = || Error::not_found(format!("image {reference:?}"));
    if Digest::parse(reference).is_ok() {
        return images
            .into_iter()
            .find(|image| image.id == reference)
            .ok_or_else(not_found);
    }
    if let Ok(name) = normalize(reference) {
        if let Some(i) = images
            .iter()
            .position(|image| image.references.contains(&name))
        {
            return images.into_iter().nth(i).ok_or_else(not_found);
        }
    }
    by_id_prefix(images, reference)?.ok_or_else(not_found)
}

/// The image whose id's hex starts with `prefix` (which may start with
/// `sha256:`); an error if several do.
fn by_id_prefix(images: Vec<Image>, prefix: &str) -> Result<Option<Image>> {
    let hex = prefix.strip_prefix("sha256:").unwrap_or(prefix);
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let mut matching = images.into_iter().filter(|image| {
        image
            .id
            .strip_prefix("sha256:")
            .is_some_and(|id| id.starts_with(hex))
    });
    let first = matching.next();
    if matching.next().is_some() {
        return Err(Error::invalid_argument(format!(
            "image id prefix {prefix:?} is ambiguous"
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id_byte: &str, references: &[&str]) -> Image {
        Image {
            id: format!("sha256:{}", id_byte.repeat(64 / id_byte.len())),
            references: references.iter().map(|r| r.to_string()).collect(),
            ..Image::default()
        }
    }

    fn images() -> Vec<Image> {
        vec![
            image(
                "ab",
                &[
                    "docker.io/library/busybox:latest",
                    "docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                ],
            ),
            image("ac", &["127.0.0.1:5000/x/y:1"]),
        ]
    }

    #[test]
    fn a_name_is_normalized_first() {
        assert_eq!(
            find(images(), "busybox").expect("found").references.len(),
            2
        );
        assert_eq!(
            find(images(), "docker.io/library/busybox:latest")
                .expect("found")
                .id,
            images()[0].id
        );
        assert_eq!(
            find(images(), "127.0.0.1:5000/x/y:1").expect("found").id,
            images()[1].id
        );
        let digest_ref =
            "busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert_eq!(
            find(images(), digest_ref).expect("found").id,
            images()[0].id
        );
        assert!(find(images(), "busybox:2")
            .expect_err("absent")
            .is_not_found());
    }

    #[test]
    fn an_id_matches_whole_or_by_unique_prefix() {
        let id = images()[1].id.clone();
        assert_eq!(find(images(), &id).expect("found").id, id);
        assert_eq!(find(images(), &id[7..]).expect("found").id, id);
        assert_eq!(find(images(), "acac").expect("found").id, id);
        assert_eq!(find(images(), "sha256:acac").expect("found").id, id);
        let other = format!("sha256:{}", "cd".repeat(32));
        assert!(find(images(), &other).expect_err("absent").is_not_found());
    }

    #[test]
    fn an_ambiguous_prefix_is_an_error_not_a_miss() {
        let err = find(images(), "a").expect_err("ambiguous");
        assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
        assert!(find(images(), "").expect_err("empty").is_not_found());
        assert!(find(images(), "zz").expect_err("not hex").is_not_found());
    }
}
