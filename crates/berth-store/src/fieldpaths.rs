//! Field paths: how an update names the parts of a record it changes.
//!
//! An update carries a full record and a list of field paths (protobuf's
//! `FieldMask`); only the named fields are copied from the request onto the
//! stored record. The rules are containerd's `containerStore.Update`
//! (`core/metadata/containers.go`).

use crate::model::Container;
use crate::validation::invalid;
use berth_core::Result;

/// The fields a container update with no paths replaces.
const CONTAINER_FULL_REPLACE: [&str; 5] = ["labels", "spec", "extensions", "image", "snapshotkey"];

/// Copies the fields of `from` named by `paths` onto `stored`.
///
/// - no paths: replace labels, spec, extensions, image and snapshot key; the
///   snapshotter and runtime name are immutable, so a request that differs in
///   them is refused rather than silently ignored;
/// - `labels`, `spec`, `extensions`, `image`, `snapshotkey`: replace that field;
/// - `labels.KEY`: set one label (to the empty string, which removes it on
///   write, when the request lacks it);
/// - `extensions.KEY`: set one extension, or remove it when the request lacks
///   it (containerd would store an empty `Any`);
/// - anything else (`runtime`, `snapshotter`, `sandbox`, …) is `InvalidArgument`.
pub(crate) fn apply_to_container(
    stored: &mut Container,
    from: &Container,
    paths: &[String],
) -> Result<()> {
    if paths.is_empty() {
        if stored.snapshotter != from.snapshotter {
            return Err(invalid("container.Snapshotter field is immutable"));
        }
        if stored.runtime.name != from.runtime.name {
            return Err(invalid("container.Runtime.Name field is immutable"));
        }
        return CONTAINER_FULL_REPLACE
            .iter()
            .try_for_each(|path| apply_one(stored, from, path));
    }
    paths
        .iter()
        .try_for_each(|path| apply_one(stored, from, path))
}

fn apply_one(stored: &mut Container, from: &Container, path: &str) -> Result<()> {
    if let Some(key) = path.strip_prefix("labels.") {
        let value = from.labels.get(key).cloned().unwrap_or_default();
        stored.labels.insert(key.to_owned(), value);
        return Ok(());
    }
    if let Some(key) = path.strip_prefix("extensions.") {
        match from.extensions.get(key) {
            Some(ext) => stored.extensions.insert(key.to_owned(), ext.clone()),
            None => stored.extensions.remove(key),
        };
        return Ok(());
    }
    match path {
        "labels" => stored.labels = from.labels.clone(),
        "spec" => stored.spec = from.spec.clone(),
        "extensions" => stored.extensions = from.extensions.clone(),
        "image" => stored.image = from.image.clone(),
        "snapshotkey" => stored.snapshot_key = from.snapshot_key.clone(),
        _ => {
            return Err(invalid(format_args!(
                "cannot update {path:?} field on {:?}",
                from.id
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::Any;
    use crate::testutil::{container, paths};

    #[test]
    fn labels_key_sets_one_label_and_keeps_the_others() {
        let mut stored = container("c");
        stored.labels.insert("keep".into(), "1".into());
        stored.labels.insert("gone".into(), "1".into());
        let mut from = container("c");
        from.labels.insert("new".into(), "2".into());
        apply_to_container(&mut stored, &from, &paths(&["labels.new", "labels.gone"])).unwrap();
        assert_eq!(stored.labels["keep"], "1");
        assert_eq!(stored.labels["new"], "2");
        assert_eq!(stored.labels["gone"], "", "removed on write");
    }

    #[test]
    fn extensions_key_sets_or_removes_one_extension() {
        let mut stored = container("c");
        stored.extensions.insert("old".into(), Any::default());
        let mut from = container("c");
        from.extensions.insert("new".into(), Any::default());
        apply_to_container(
            &mut stored,
            &from,
            &paths(&["extensions.new", "extensions.old"]),
        )
        .unwrap();
        assert!(stored.extensions.contains_key("new"));
        assert!(!stored.extensions.contains_key("old"));
    }

    #[test]
    fn full_replace_keeps_immutable_fields_and_sandbox() {
        let mut stored = container("c");
        stored.sandbox = "pod".into();
        let mut from = container("c");
        from.image = "other".into();
        from.snapshot_key = "k2".into();
        from.labels.insert("a".into(), "b".into());
        apply_to_container(&mut stored, &from, &[]).unwrap();
        assert_eq!(stored.image, "other");
        assert_eq!(stored.snapshot_key, "k2");
        assert_eq!(stored.labels["a"], "b");
        assert_eq!(stored.sandbox, "pod");
    }

    #[test]
    fn unknown_path_is_invalid_argument() {
        let mut stored = container("c");
        for path in ["runtime", "snapshotter", "sandbox", "id"] {
            let err =
                apply_to_container(&mut stored, &container("c"), &paths(&[path])).unwrap_err();
            assert_eq!(
                err.message(),
                format!("cannot update \"{path}\" field on \"c\": invalid argument")
            );
        }
    }
}
