//! Image names for imported manifests (containerd's
//! `core/images/archive/reference.go`).

use std::collections::BTreeMap;

use berth_core::Digest;

use crate::spec::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};

/// How an OCI `ref.name` annotation becomes an image name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RefTranslator {
    /// Used as it is.
    #[default]
    Identity,
    /// A bare tag becomes `PREFIX:tag`; a full reference is kept
    /// (`archive.AddRefPrefix`, ctr without `--base-name`).
    AddPrefix(String),
    /// A bare tag becomes `PREFIX:tag`; a full reference is kept only if it
    /// names `PREFIX` (`archive.FilterRefPrefix`, ctr's `--base-name`).
    FilterPrefix(String),
}

impl RefTranslator {
    /// The image name for `reference`, or `None` to skip it.
    pub fn translate(&self, reference: &str) -> Option<String> {
        let (prefix, check) = match self {
            RefTranslator::Identity => return Some(reference.to_string()),
            RefTranslator::AddPrefix(p) => (p, false),
            RefTranslator::FilterPrefix(p) => (p, true),
        };
        if reference.contains(['/', ':', '@']) {
            if check && !has_image_prefix(reference, prefix) {
                return None;
            }
            return Some(reference.to_string());
        }
        Some(format!("{prefix}:{reference}"))
    }
}

/// Whether `s` is `prefix` or `prefix` followed by `/`, `:` or `@`.
fn has_image_prefix(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', ':', '@']),
        None => false,
    }
}

/// `PREFIX@DIGEST` (`archive.DigestTranslator`).
pub fn digest_ref(prefix: &str, digest: &Digest) -> String {
    format!("{prefix}@{digest}")
}

/// The name an index entry gives its image: `io.containerd.image.name` as
/// it is, else the translated `org.opencontainers.image.ref.name`; empty
/// when neither gives one.
pub fn image_name(annotations: &BTreeMap<String, String>, translator: &RefTranslator) -> String {
    if let Some(name) = annotations
        .get(ANNOTATION_IMAGE_NAME)
        .filter(|n| !n.is_empty())
    {
        return name.clone();
    }
    match annotations
        .get(ANNOTATION_REF_NAME)
        .filter(|n| !n.is_empty())
    {
        Some(reference) => translator.translate(reference).unwrap_or_default(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translators_match_ctr() {
        let add = RefTranslator::AddPrefix("import-2024-01-02".into());
        assert_eq!(
            add.translate("latest").as_deref(),
            Some("import-2024-01-02:latest")
        );
        assert_eq!(
            add.translate("docker.io/x:1").as_deref(),
            Some("docker.io/x:1")
        );
        let filter = RefTranslator::FilterPrefix("foo/bar".into());
        assert_eq!(
            filter.translate("latest").as_deref(),
            Some("foo/bar:latest")
        );
        assert_eq!(filter.translate("foo/bar:1").as_deref(), Some("foo/bar:1"));
        assert_eq!(filter.translate("foo/barn:1"), None);
        assert_eq!(filter.translate("other/x:1"), None);
    }

    #[test]
    fn image_name_prefers_the_containerd_annotation() {
        let mut a = BTreeMap::new();
        a.insert(ANNOTATION_REF_NAME.to_string(), "latest".to_string());
        let t = RefTranslator::AddPrefix("p".into());
        assert_eq!(image_name(&a, &t), "p:latest");
        a.insert(
            ANNOTATION_IMAGE_NAME.to_string(),
            "docker.io/library/x:1".to_string(),
        );
        assert_eq!(image_name(&a, &t), "docker.io/library/x:1");
        assert_eq!(image_name(&BTreeMap::new(), &t), "");
    }
}
