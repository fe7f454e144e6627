//! containerd's garbage-collection labels and what each one means.
//!
//! A label's key says what kind of edge it is and its value names the other
//! end (`core/metadata/gc.go`):
//!
//! | key | on | meaning |
//! |---|---|---|
//! | `containerd.io/gc.root` (any value) | content, snapshots | the object is a root |
//! | `containerd.io/gc.ref.content[.name]` = digest | content, images, containers, snapshots | the object references that blob |
//! | `containerd.io/gc.ref.image[.name]` = name | same | … that image |
//! | `containerd.io/gc.ref.snapshot.<snapshotter>[/name]` = key | same | … that snapshot |
//! | `containerd.io/gc.bref.content[.name]` = digest | content, images, containers, snapshots | *back* reference: whatever keeps that blob keeps this object |
//! | `containerd.io/gc.bref.image[.name]`, `….bref.container[.name]`, `….bref.snapshot.<snapshotter>[/name]` | same | back reference to that image, container, snapshot |
//! | `containerd.io/gc.expire` = RFC 3339 time | leases, images | after it, the object holds nothing and is removed |
//! | `containerd.io/gc.flat` (any value) | leases | hold only the named objects, not what they reference |
//!
//! In `gc.ref.content` and friends, a name after the prefix must start with
//! `.` or `/` (`gc.ref.content.l.0`, `gc.ref.content/config`); a key that
//! merely starts with the prefix (`gc.ref.contentx`) is not a reference.

use super::graph::Kind;

/// Marks an object as a root of the collection.
pub const LABEL_ROOT: &str = "containerd.io/gc.root";
/// Expiry of a lease or an image (RFC 3339).
pub const LABEL_EXPIRE: &str = "containerd.io/gc.expire";
/// A lease that holds only what it names.
pub const LABEL_FLAT: &str = "containerd.io/gc.flat";
/// Reference to a blob; the value is its digest.
pub const LABEL_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// Reference to an image; the value is its name.
pub const LABEL_REF_IMAGE: &str = "containerd.io/gc.ref.image";
/// Reference to a snapshot: `…snapshot.<snapshotter>`; the value is its key.
pub const LABEL_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
/// Back reference to a blob.
pub const LABEL_BREF_CONTENT: &str = "containerd.io/gc.bref.content";
/// Back reference to an image.
pub const LABEL_BREF_IMAGE: &str = "containerd.io/gc.bref.image";
/// Back reference to a container.
pub const LABEL_BREF_CONTAINER: &str = "containerd.io/gc.bref.container";
/// Back reference to a snapshot: `…snapshot.<snapshotter>`.
pub const LABEL_BREF_SNAPSHOT: &str = "containerd.io/gc.bref.snapshot.";

/// What one label means to the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edge {
    /// The labelled object is a root.
    Root,
    /// The labelled object references (kind, key).
    Ref(Kind, String),
    /// Whatever reaches (kind, key) reaches the labelled object too.
    BackRef(Kind, String),
}

/// The edge label `key` = `value` stands for, if any.
pub(crate) fn edge(key: &str, value: &str) -> Option<Edge> {
    if !key.starts_with("containerd.io/gc.") {
        return None;
    }
    if key.starts_with(LABEL_ROOT) {
        return Some(Edge::Root);
    }
    if let Some(target) = target(
        key,
        value,
        LABEL_REF_CONTENT,
        LABEL_REF_IMAGE,
        LABEL_REF_SNAPSHOT,
    ) {
        return Some(Edge::Ref(target.0, target.1));
    }
    target(
        key,
        value,
        LABEL_BREF_CONTENT,
        LABEL_BREF_IMAGE,
        LABEL_BREF_SNAPSHOT,
    )
    .or_else(|| named(key, LABEL_BREF_CONTAINER).then(|| (Kind::Container, value.to_owned())))
    .map(|(kind, key)| Edge::BackRef(kind, key))
}

/// The (kind, key) a content, image or snapshot (back) reference names.
fn target(
    key: &str,
    value: &str,
    content: &str,
    image: &str,
    snapshot: &str,
) -> Option<(Kind, String)> {
    if named(key, content) {
        return Some((Kind::Content, value.to_owned()));
    }
    if named(key, image) {
        return Some((Kind::Image, value.to_owned()));
    }
    let rest = key.strip_prefix(snapshot)?;
    let snapshotter = rest.split('/').next().unwrap_or_default();
    (!snapshotter.is_empty()).then(|| (Kind::Snapshot, format!("{snapshotter}/{value}")))
}

/// Whether `key` is `prefix` itself or `prefix` followed by a `.` or `/`
/// name.
fn named(key: &str, prefix: &str) -> bool {
    match key.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_labels_name_their_targets() {
        let d = "sha256:abc";
        for key in [
            "containerd.io/gc.ref.content",
            "containerd.io/gc.ref.content.l.0",
            "containerd.io/gc.ref.content/config",
        ] {
            assert_eq!(
                edge(key, d),
                Some(Edge::Ref(Kind::Content, d.into())),
                "{key}"
            );
        }
        assert_eq!(edge("containerd.io/gc.ref.contentx", d), None);
        assert_eq!(
            edge("containerd.io/gc.ref.snapshot.overlayfs", "sha256:chain"),
            Some(Edge::Ref(Kind::Snapshot, "overlayfs/sha256:chain".into()))
        );
        assert_eq!(
            edge("containerd.io/gc.ref.snapshot.native/extra", "k"),
            Some(Edge::Ref(Kind::Snapshot, "native/k".into()))
        );
        assert_eq!(edge("containerd.io/gc.ref.snapshot.", "k"), None);
        assert_eq!(
            edge("containerd.io/gc.ref.image.base", "docker.io/x:1"),
            Some(Edge::Ref(Kind::Image, "docker.io/x:1".into()))
        );
    }

    #[test]
    fn back_references_and_roots() {
        assert_eq!(
            edge("containerd.io/gc.bref.container", "web"),
            Some(Edge::BackRef(Kind::Container, "web".into()))
        );
        assert_eq!(
            edge("containerd.io/gc.bref.content.sig", "sha256:m"),
            Some(Edge::BackRef(Kind::Content, "sha256:m".into()))
        );
        assert_eq!(
            edge("containerd.io/gc.bref.snapshot.overlayfs/x", "k"),
            Some(Edge::BackRef(Kind::Snapshot, "overlayfs/k".into()))
        );
        assert_eq!(edge("containerd.io/gc.bref.containers", "web"), None);
        assert_eq!(edge(LABEL_ROOT, ""), Some(Edge::Root));
        assert_eq!(edge(LABEL_EXPIRE, "2000-01-01T00:00:00Z"), None);
        assert_eq!(edge("app", "web"), None);
    }
}
