//! The garbage-collection labels an image's content carries.
//!
//! containerd's collector follows labels, not documents: a blob labelled
//! `containerd.io/gc.ref.content.<suffix>=<digest>` keeps `<digest>`
//! alive. Clients set them as they walk an image they pull or import
//! (`images.SetChildrenLabels`): an index names its manifests with
//! `…m.<i>`, a manifest names its config with `…config` and its layers with
//! `…l.<i>`, anything else gets `…<i>`. An image record keeps its target;
//! the labels keep the rest.

use std::collections::HashMap;

use berth_core::content::{ContentStore, Info};
use berth_core::{Digest, Result};

use crate::mediatypes;
use crate::spec::Descriptor;

/// The prefix of every content reference label.
pub const CONTENT_REF_PREFIX: &str = "containerd.io/gc.ref.content.";
/// The label on a compressed blob naming its uncompressed digest.
pub const UNCOMPRESSED_LABEL: &str = "containerd.io/uncompressed";

/// The label key (or key prefix, ending in `.`) that links a parent to
/// `child` (`images.ChildGCLabels`).
pub fn child_label(child: &Descriptor) -> &'static str {
    let mt = child.media_type.as_str();
    if mediatypes::is_config(mt) {
        "containerd.io/gc.ref.content.config"
    } else if mediatypes::is_manifest(mt) {
        "containerd.io/gc.ref.content.m."
    } else if mediatypes::is_layer(mt) {
        "containerd.io/gc.ref.content.l."
    } else {
        CONTENT_REF_PREFIX
    }
}

/// The labels that link a parent to `children`: prefixes are numbered per
/// prefix from 0, a repeated full key gets a number from 1.
pub fn children_labels(children: &[Descriptor]) -> Vec<(String, String)> {
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    children
        .iter()
        .map(|child| {
            let key = child_label(child);
            let index = counts.entry(key).or_insert(0);
            let label = if *index > 0 || key.ends_with('.') {
                format!("{key}{index}")
            } else {
                key.to_string()
            };
            *index += 1;
            (label, child.digest.to_string())
        })
        .collect()
}

/// Sets the labels linking `parent` to `children` on `parent`'s blob,
/// leaving its other labels alone.
pub async fn set_children_labels(
    store: &dyn ContentStore,
    parent: &Digest,
    children: &[Descriptor],
) -> Result<()> {
    let labels = children_labels(children);
    if labels.is_empty() {
        return Ok(());
    }
    let paths: Vec<String> = labels.iter().map(|(k, _)| format!("labels.{k}")).collect();
    let now = std::time::SystemTime::now();
    let info = Info {
        digest: parent.clone(),
        size: 0,
        created_at: now,
        updated_at: now,
        labels: labels.into_iter().collect(),
    };
    store.update(info, &paths).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(media_type: &str, c: u8) -> Descriptor {
        Descriptor::new(media_type, Digest::sha256_of(&[c]), 1)
    }

    #[test]
    fn labels_follow_containerd_numbering() {
        let children = [
            desc(mediatypes::DOCKER_CONFIG, 0),
            desc(mediatypes::DOCKER_LAYER, 1),
            desc(mediatypes::OCI_LAYER_GZIP, 2),
            desc(mediatypes::OCI_MANIFEST, 3),
            desc("application/x-other", 4),
            desc(mediatypes::OCI_CONFIG, 5),
        ];
        let keys: Vec<String> = children_labels(&children)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "containerd.io/gc.ref.content.config",
                "containerd.io/gc.ref.content.l.0",
                "containerd.io/gc.ref.content.l.1",
                "containerd.io/gc.ref.content.m.0",
                "containerd.io/gc.ref.content.0",
                "containerd.io/gc.ref.content.config1",
            ]
        );
    }
}
