//! Walking an image in a content store, as containerd's `core/images`
//! package does: the children of a descriptor, the manifest an image has
//! for a platform, the platforms it has, its size and whether its content
//! is all there, and its root filesystem's chain ID.
//!
//! Walks are depth-first and pre-order, like containerd's `images.Walk`, so
//! results come in the same order.

use std::collections::HashMap;

use berth_core::content::{read_blob, ContentStore};
use berth_core::{Digest, Error, ErrorKind, Result};

use crate::mediatypes;
use crate::platforms::{normalize, Matcher, Platform};
use crate::spec::{parse_json, Descriptor, ImageConfig, Index, Manifest};

/// The largest manifest, index or config berth reads into memory.
pub const MAX_DOCUMENT: u64 = 16 << 20;

/// Reads a JSON document (manifest, index, config) of at most
/// [`MAX_DOCUMENT`] bytes.
pub async fn read_document(store: &dyn ContentStore, desc: &Descriptor) -> Result<Vec<u8>> {
    read_blob(store, &desc.digest, MAX_DOCUMENT).await
}

/// The descriptors `desc` refers to: a manifest's config and layers, an
/// index's manifests; nothing for layers, configs and unknown types.
pub async fn children(store: &dyn ContentStore, desc: &Descriptor) -> Result<Vec<Descriptor>> {
    if mediatypes::is_manifest(&desc.media_type) {
        let manifest = Manifest::parse(&read_document(store, desc).await?, &desc.media_type)?;
        let mut out = vec![manifest.config];
        out.extend(manifest.layers);
        return Ok(out);
    }
    if mediatypes::is_index(&desc.media_type) {
        let index = Index::parse(&read_document(store, desc).await?, &desc.media_type)?;
        return Ok(index.manifests);
    }
    Ok(Vec::new())
}

/// Keeps the descriptors without a platform or with one `matcher` accepts
/// (`images.FilterPlatforms`).
pub fn filter_platforms(children: Vec<Descriptor>, matcher: &Matcher) -> Vec<Descriptor> {
    children
        .into_iter()
        .filter(|d| d.platform.as_ref().is_none_or(|p| matcher.matches(p)))
        .collect()
}

/// Sorts an index's manifests by `matcher`'s preference, those without a
/// platform last (stable, as containerd sorts).
pub fn sort_by_preference(list: &mut [Descriptor], matcher: &Matcher) {
    list.sort_by(|a, b| match (&a.platform, &b.platform) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(pa), Some(pb)) => {
            if matcher.less(pa, pb) {
                std::cmp::Ordering::Less
            } else if matcher.less(pb, pa) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        }
    });
}

/// The platform a config says (OS and architecture, normalized).
async fn config_platform(store: &dyn ContentStore, config: &Descriptor) -> Result<Platform> {
    let bytes = read_document(store, config).await?;
    let image: ImageConfig = parse_json(&bytes, "image config")?;
    Ok(normalize(&Platform {
        os: image.os,
        architecture: image.architecture,
        ..Platform::default()
    }))
}

/// The manifest of `image` for `matcher` (`images.Manifest`): the image
/// itself if it is a manifest, else the preferred matching manifest of its
/// index. `NotFound` if there is none.
pub async fn manifest(
    store: &dyn ContentStore,
    image: &Descriptor,
    matcher: &Matcher,
) -> Result<(Descriptor, Manifest)> {
    let mut stack = vec![image.clone()];
    let mut was_index = false;
    while let Some(desc) = stack.pop() {
        if mediatypes::is_manifest(&desc.media_type) {
            let manifest =
                Manifest::parse(&read_document(store, &desc).await?, &desc.media_type)
                    .map_err(|e| e.context(format!("manifest: invalid desc {}", desc.digest)))?;
            if desc.digest != image.digest {
                let platform = match &desc.platform {
                    Some(p) => p.clone(),
                    None => config_platform(store, &manifest.config).await?,
                };
                if !matcher.matches(&platform) {
                    continue;
                }
            }
            return Ok((desc, manifest));
        } else if mediatypes::is_index(&desc.media_type) {
            let index = Index::parse(&read_document(store, &desc).await?, &desc.media_type)
                .map_err(|e| e.context(format!("manifest: invalid desc {}", desc.digest)))?;
            let mut list = filter_platforms(index.manifests, matcher);
            sort_by_preference(&mut list, matcher);
            list.truncate(1);
            was_index = true;
            stack.extend(list.into_iter().rev());
        } else {
            return Err(Error::not_found(format!(
                "unexpected media type {} for {}",
                desc.media_type, desc.digest
            )));
        }
    }
    if was_index {
        Err(Error::not_found(format!(
            "no match for platform in manifest {}",
            image.digest
        )))
    } else {
        Err(Error::not_found(format!("manifest {}", image.digest)))
    }
}

/// The platforms `image` has (`images.Platforms`): those its index names,
/// or the one its config says.
pub async fn platforms(store: &dyn ContentStore, image: &Descriptor) -> Result<Vec<Platform>> {
    let mut out = Vec::new();
    let mut stack = vec![image.clone()];
    while let Some(desc) = stack.pop() {
        if let Some(p) = &desc.platform {
            out.push(p.clone());
            continue;
        }
        if mediatypes::is_config(&desc.media_type)
            && matches!(
                desc.media_type.as_str(),
                mediatypes::DOCKER_CONFIG | mediatypes::OCI_CONFIG
            )
        {
            out.push(config_platform(store, &desc).await?);
        }
        stack.extend(children(store, &desc).await?.into_iter().rev());
    }
    Ok(out)
}

/// The size of `image` for `matcher` (`Image.Size`): the index, the
/// preferred manifest, its config and layers. On failure the error comes
/// with the size summed so far, which ctr prints anyway.
pub async fn size(
    store: &dyn ContentStore,
    image: &Descriptor,
    matcher: &Matcher,
) -> (i64, Result<()>) {
    let mut total = 0i64;
    let mut stack = vec![image.clone()];
    while let Some(desc) = stack.pop() {
        if desc.size < 0 {
            let err = Error::invalid_argument(format!(
                "invalid size {} in {} ({})",
                desc.size, desc.digest, desc.media_type
            ));
            return (total, Err(err));
        }
        total += desc.size;
        let mut list = match children(store, &desc).await {
            Ok(list) => filter_platforms(list, matcher),
            Err(err) => return (total, Err(err)),
        };
        if mediatypes::is_index(&desc.media_type) {
            sort_by_preference(&mut list, matcher);
            if list.is_empty() {
                return (
                    total,
                    Err(Error::not_found("no match for platform in manifest")),
                );
            }
            list.truncate(1);
        }
        stack.extend(list.into_iter().rev());
    }
    (total, Ok(()))
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// Whether the manifest for the platform could be read.
    pub available: bool,
    /// The config and layers the image needs.
    pub required: Vec<Descriptor>,
    /// Those present in the store.
    pub present: Vec<Descriptor>,
    /// Those missing.
    pub missing: Vec<Descriptor>,
}

/// Which of `image`'s config and layers are in the store (`images.Check`).
pub async fn check(
    store: &dyn ContentStore,
    image: &Descriptor,
    matcher: &Matcher,
) -> Result<Check> {
    let manifest = match manifest(store, image, matcher).await {
        Ok((_, m)) => m,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Ok(Check {
                available: false,
                required: vec![image.clone()],
                present: Vec::new(),
                missing: vec![image.clone()],
            })
        }
        Err(err) => return Err(err.context(format!("failed to check image {}", image.digest))),
    };
    let mut result = Check {
        available: true,
        ..Check::default()
    };
    result.required.push(manifest.config);
    result.required.extend(manifest.layers);
    for desc in &result.required {
        match store.info(&desc.digest).await {
            Ok(_) => result.present.push(desc.clone()),
            Err(err) if err.kind() == ErrorKind::NotFound => result.missing.push(desc.clone()),
            Err(err) => return Err(err.context(format!("failed to check image {}", desc.digest))),
        }
    }
    Ok(result)
}

/// The uncompressed layer digests (diff IDs) of `image`'s config for
/// `matcher` (`Image.RootFS`).
pub async fn diff_ids(
    store: &dyn ContentStore,
    image: &Descriptor,
    matcher: &Matcher,
) -> Result<Vec<Digest>> {
    let (_, manifest) = manifest(store, image, matcher).await?;
    let bytes = read_document(store, &manifest.config).await?;
    let config: ImageConfig = parse_json(&bytes, "image config")?;
    config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect()
}

/// The chain ID of a layer stack (the name of its top snapshot):
/// `chain(L0) = diff(L0)`, `chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))`.
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let mut iter = diff_ids.iter();
    let mut chain = iter.next()?.clone();
    for diff in iter {
        chain = Digest::sha256_of(format!("{chain} {diff}").as_bytes());
    }
    Some(chain)
}

/// Labels as a `HashMap` with one entry.
pub fn label(key: impl Into<String>, value: impl Into<String>) -> HashMap<String, String> {
    HashMap::from([(key.into(), value.into())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_follows_the_oci_definition() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(std::slice::from_ref(&a)), Some(a.clone()));
        assert_eq!(
            chain_id(&[a.clone(), b.clone()]),
            Some(Digest::sha256_of(format!("{a} {b}").as_bytes()))
        );
    }
}
