//! ListImages and ImageStatus: CRI's view of an image — its tags and
//! digests parsed out of its references, its user, and for a verbose
//! status the image config as JSON (containerd's `verboseImageInfo`).

use std::collections::HashMap;

use berth_core::{Digest, Result};
use berth_image::reference::Reference;
use berth_image::spec::ImageSpec;
use k8s_cri::v1 as cri;
use serde::Serialize;

use super::resolve::find;
use super::Image;
use crate::Cri;

impl Cri {
    /// ListImages: every image, or the one `filter.image` names.
    pub(crate) async fn list_images(
        &self,
        request: cri::ListImagesRequest,
    ) -> Result<cri::ListImagesResponse> {
        let wanted = request
            .filter
            .and_then(|f| f.image)
            .map(|spec| spec.image)
            .filter(|image| !image.is_empty());
        let all = self.all_images().await?;
        let images = match wanted {
            None => all.iter().map(to_cri).collect(),
            Some(reference) => match find(all, &reference) {
                Ok(image) => vec![to_cri(&image)],
                Err(err) if err.is_not_found() => Vec::new(),
                Err(err) => return Err(err),
            },
        };
        Ok(cri::ListImagesResponse { images })
    }

    /// ImageStatus: an image that is not there is an empty answer, not an
    /// error, as in containerd.
    pub(crate) async fn image_status(
        &self,
        request: cri::ImageStatusRequest,
    ) -> Result<cri::ImageStatusResponse> {
        let reference = request.image.map(|i| i.image).unwrap_or_default();
        let image = match self.local_image(&reference).await {
            Ok(image) => image,
            Err(err) if err.is_not_found() => return Ok(cri::ImageStatusResponse::default()),
            Err(err) => return Err(err.context(format!("can not resolve {reference:?} locally"))),
        };
        let info = if request.verbose {
            verbose_info(&image)?
        } else {
            HashMap::new()
        };
        Ok(cri::ImageStatusResponse {
            image: Some(to_cri(&image)),
            info,
        })
    }
}

/// The image as the CRI API has it.
pub(crate) fn to_cri(image: &Image) -> cri::Image {
    let (repo_tags, repo_digests) = tags_and_digests(&image.references);
    let (uid, username) = user_of(&image.config.user);
    cri::Image {
        id: image.id.clone(),
        repo_tags,
        repo_digests,
        size: image.size,
        uid: uid.map(|value| cri::Int64Value { value }),
        username,
        spec: None,
        pinned: image.pinned,
    }
}

/// The references that are tagged names and those that are digested
/// names; ids (`sha256:…`) are neither.
fn tags_and_digests(references: &[String]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for reference in references {
        if Digest::parse(reference).is_ok() {
            continue;
        }
        let Ok(parsed) = Reference::parse_normalized(reference) else {
            continue;
        };
        if parsed.digest.is_some() {
            digests.push(parsed.to_string());
        } else if parsed.tag.is_some() {
            tags.push(parsed.to_string());
        }
    }
    (tags, digests)
}

/// An image config's `User` as CRI reports it: a numeric user (before any
/// `:group`) is a uid, anything else a user name.
fn user_of(user: &str) -> (Option<i64>, String) {
    if user.is_empty() {
        return (None, String::new());
    }
    let user = user.split(':').next().unwrap_or(user);
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

/// containerd's `verboseImageInfo`.
#[derive(Serialize)]
struct VerboseInfo<'a> {
    #[serde(rename = "chainID")]
    chain_id: &'a str,
    #[serde(rename = "imageSpec")]
    image_spec: &'a ImageSpec,
}

/// The verbose status: `info` is the chain ID and image config as JSON.
fn verbose_info(image: &Image) -> Result<HashMap<String, String>> {
    let info = VerboseInfo {
        chain_id: image.chain_id.as_deref().unwrap_or_default(),
        image_spec: &image.spec,
    };
    let json = berth_image::spec::json::to_vec(&info)?;
    Ok(HashMap::from([(
        "info".to_string(),
        String::from_utf8_lossy(&json).into_owned(),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_tags_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let references = vec![
            "docker.io/library/busybox:latest".to_string(),
            format!("docker.io/library/busybox@{digest}"),
            digest.clone(),
            "127.0.0.1:5000/x:1".to_string(),
        ];
        let (tags, digests) = tags_and_digests(&references);
        assert_eq!(
            tags,
            ["docker.io/library/busybox:latest", "127.0.0.1:5000/x:1"]
        );
        assert_eq!(digests, [format!("docker.io/library/busybox@{digest}")]);
    }

    #[test]
    fn numeric_users_are_uids() {
        assert_eq!(user_of(""), (None, String::new()));
        assert_eq!(user_of("0"), (Some(0), String::new()));
        assert_eq!(user_of("1000:1000"), (Some(1000), String::new()));
        assert_eq!(user_of("nobody"), (None, "nobody".to_string()));
        assert_eq!(user_of("www:33"), (None, "www".to_string()));
    }

    #[test]
    fn a_cri_image_carries_id_size_user_and_pin() {
        let image = Image {
            id: format!("sha256:{}", "b".repeat(64)),
            references: vec!["docker.io/library/busybox:1".into()],
            size: 42,
            pinned: true,
            config: super::super::RunConfig {
                user: "nobody".into(),
                ..Default::default()
            },
            ..Image::default()
        };
        let cri = to_cri(&image);
        assert_eq!(cri.id, image.id);
        assert_eq!(cri.repo_tags, ["docker.io/library/busybox:1"]);
        assert_eq!(cri.size, 42);
        assert_eq!(cri.username, "nobody");
        assert!(cri.uid.is_none());
        assert!(cri.pinned);
    }

    #[test]
    fn verbose_info_has_chain_id_and_spec() {
        let image = Image {
            chain_id: Some("sha256:c".into()),
            spec: ImageSpec {
                architecture: "amd64".into(),
                os: "linux".into(),
                ..ImageSpec::default()
            },
            ..Image::default()
        };
        let info = verbose_info(&image).expect("info");
        let value: serde_json::Value = serde_json::from_str(&info["info"]).expect("json");
        assert_eq!(value["chainID"], "sha256:c");
        assert_eq!(value["imageSpec"]["os"], "linux");
        assert_eq!(value["imageSpec"]["architecture"], "amd64");
    }
}
