//! How filters see records: containerd's `adaptContainer`
//! (`core/metadata/adaptors.go`).
//!
//! A field is present only when it is non-empty, and a label is looked up by
//! the rest of the path joined with `.` (so `labels."a.b"` and `labels.a.b`
//! name the same label).

use crate::model::{Container, Lease};
use berth_core::filters::{labels_field, Adaptor};

impl Adaptor for Container {
    /// Fields: `id`, `image`, `runtime.name`, `labels.KEY`. Anything else —
    /// including `runtime` alone and `snapshotter`, which containerd does not
    /// expose either — is absent.
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("id", _) => non_empty(&self.id),
            ("image", _) => non_empty(&self.image),
            ("runtime", [name, ..]) if name == "name" => non_empty(&self.runtime.name),
            ("labels", key) => labels_field(&self.labels, key),
            _ => None,
        }
    }
}

impl Adaptor for Lease {
    /// Fields: `id`, `labels.KEY` (containerd's `adaptLease`).
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("id", _) => non_empty(&self.id),
            ("labels", key) => labels_field(&self.labels, key),
            _ => None,
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::container;

    fn field(c: &Container, path: &[&str]) -> Option<String> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        c.field(&path)
    }

    #[test]
    fn exposes_containerds_fields() {
        let mut c = container("web");
        c.labels.insert("a.b".into(), "x".into());
        assert_eq!(field(&c, &["id"]).as_deref(), Some("web"));
        assert_eq!(
            field(&c, &["image"]).as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            field(&c, &["runtime", "name"]).as_deref(),
            Some("io.containerd.runc.v2")
        );
        assert_eq!(field(&c, &["labels", "a", "b"]).as_deref(), Some("x"));
        assert_eq!(field(&c, &["labels", "a.b"]).as_deref(), Some("x"));
    }

    #[test]
    fn empty_and_unknown_fields_are_absent() {
        let mut c = container("web");
        c.image.clear();
        assert_eq!(field(&c, &["image"]), None);
        assert_eq!(field(&c, &["runtime"]), None);
        assert_eq!(field(&c, &["runtime", "options"]), None);
        assert_eq!(field(&c, &["snapshotter"]), None);
        assert_eq!(field(&c, &["labels", "missing"]), None);
        assert_eq!(field(&c, &[]), None);
    }
}
