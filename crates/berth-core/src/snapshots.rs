//! Snapshotters: containerd's model of layered filesystems
//! (`core/snapshots/snapshotter.go`).
//!
//! A snapshot is a filesystem tree with a *kind*:
//!
//! - **Active**: writable, created by [`Snapshotter::prepare`] under a
//!   *key*, optionally on top of a committed *parent*. Its
//!   [`Snapshotter::mounts`] give a tree to change (unpack a layer into,
//!   run a container on).
//! - **Committed**: made by [`Snapshotter::commit`] from an active snapshot,
//!   under a *name* (for image layers, the chain ID). Read-only and
//!   immutable; it can only be a parent or be removed.
//! - **View**: a read-only active snapshot from [`Snapshotter::view`], for
//!   looking at a committed tree; it cannot be committed.
//!
//! Importing a layer is therefore `prepare(key, parent)` → mount → apply the
//! tar → unmount → `commit(chainID, key)`. Keys and names share one space per
//! snapshotter: a committed name and an active key can never be equal. A
//! snapshot with children cannot be removed.
//!
//! Implementations: the overlayfs and native snapshotters in
//! `berth-snapshot` (one per directory, unaware of namespaces), the daemon's
//! namespaced wrapper over them, and the remote one in `berth-client`. All of
//! them run `testsuite` (behind the `testsuite` feature).

#[cfg(feature = "testsuite")]
pub mod testsuite;

use crate::filters::{labels_field, Adaptor};
use crate::mount::Mount;
use crate::{labels, Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

/// The kind of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// Not known (never stored).
    #[default]
    Unknown,
    /// A read-only active snapshot.
    View,
    /// A writable snapshot that may be committed.
    Active,
    /// An immutable snapshot that may be a parent.
    Committed,
}

impl Kind {
    /// containerd's spelling: `View`, `Active`, `Committed`, `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unknown => "Unknown",
            Kind::View => "View",
            Kind::Active => "Active",
            Kind::Committed => "Committed",
        }
    }

    /// Parses containerd's spelling, case-insensitively.
    pub fn parse(s: &str) -> Result<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "view" => Ok(Kind::View),
            "active" => Ok(Kind::Active),
            "committed" => Ok(Kind::Committed),
            _ => Err(Error::invalid_argument(format!(
                "unknown snapshot kind {s:?}: invalid argument"
            ))),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a snapshotter knows about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Active, view or committed.
    pub kind: Kind,
    /// The key (active, view) or name (committed).
    pub name: String,
    /// The parent's name; empty for none.
    pub parent: String,
    /// Labels (`containerd.io/gc.ref.*` take part in garbage collection).
    pub labels: HashMap<String, String>,
    /// When it was created (or committed).
    pub created: SystemTime,
    /// When it last changed.
    pub updated: SystemTime,
}

impl Default for Info {
    fn default() -> Self {
        Info {
            kind: Kind::Unknown,
            name: String::new(),
            parent: String::new(),
            labels: HashMap::new(),
            created: SystemTime::UNIX_EPOCH,
            updated: SystemTime::UNIX_EPOCH,
        }
    }
}

impl Adaptor for Info {
    /// containerd's `adaptSnapshot`: `kind`, `name`, `parent`, `labels.KEY`.
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match first.as_str() {
            "kind" => Some(self.kind.as_str().to_ascii_lowercase()),
            "name" => Some(self.name.clone()),
            "parent" => Some(self.parent.clone()),
            "labels" => labels_field(&self.labels, rest),
            _ => None,
        }
    }
}

/// Disk used by a snapshot itself (not its parents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes used.
    pub size: i64,
    /// Inodes used.
    pub inodes: i64,
}

impl Usage {
    /// Adds another usage to this one.
    pub fn add(&mut self, other: Usage) {
        self.size += other.size;
        self.inodes += other.inodes;
    }
}

/// A snapshotter, scoped (for the namespaced implementations) to one
/// namespace. See the module documentation for the model.
#[async_trait::async_trait]
pub trait Snapshotter: Send + Sync {
    /// Info of `key`; `NotFound` if absent.
    async fn stat(&self, key: &str) -> Result<Info>;
    /// Updates the labels of `info.name` by field paths (`labels`,
    /// `labels.KEY`; none = replace all labels). Other paths are
    /// `InvalidArgument`.
    async fn update(&self, info: Info, paths: &[String]) -> Result<Info>;
    /// Disk usage of `key` alone.
    async fn usage(&self, key: &str) -> Result<Usage>;
    /// The mounts of an active or view snapshot; `FailedPrecondition` for a
    /// committed one.
    async fn mounts(&self, key: &str) -> Result<Vec<Mount>>;
    /// Creates active snapshot `key` on `parent` (empty for none), which
    /// must be committed. `AlreadyExists` if `key` is taken.
    async fn prepare(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>>;
    /// Creates read-only view `key` of `parent`.
    async fn view(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>>;
    /// Commits active snapshot `key` as `name` with `labels`; the active
    /// snapshot is gone afterwards.
    async fn commit(&self, name: &str, key: &str, labels: HashMap<String, String>) -> Result<()>;
    /// Removes `key`; `FailedPrecondition` while it has children.
    async fn remove(&self, key: &str) -> Result<()>;
    /// Every snapshot passing `filters` (containerd's filter syntax over
    /// `kind`, `name`, `parent`, `labels.KEY`), ordered by name.
    async fn walk(&self, filters: &[String]) -> Result<Vec<Info>>;
    /// Removes whatever is on disk that no snapshot owns (left by a crash).
    async fn cleanup(&self) -> Result<()> {
        Ok(())
    }
    /// Whether [`Snapshotter::prepare_rebase`] and
    /// [`Snapshotter::commit_rebase`] work: containerd 2.x's `rebase`
    /// capability, which lets an unpack apply every layer of an image at
    /// once and chain them afterwards (an overlay layer's directory needs
    /// nothing from the layers below it).
    fn can_rebase(&self) -> bool {
        false
    }
    /// Creates active snapshot `key` with no parent yet, to be committed
    /// onto one by [`Snapshotter::commit_rebase`]. Its mounts are those of
    /// a layer over lower layers not yet known (overlay: an `overlay` mount
    /// with `upperdir` and no `lowerdir`, which appliers write directly and
    /// which is never mounted). `NotImplemented` unless
    /// [`Snapshotter::can_rebase`].
    async fn prepare_rebase(
        &self,
        key: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let _ = (key, labels);
        Err(Error::not_implemented("snapshotter cannot rebase"))
    }
    /// Commits active `key` as `name` on top of committed `parent` (empty
    /// for none): containerd's `Commit` with `WithParent`.
    /// `NotImplemented` unless [`Snapshotter::can_rebase`].
    async fn commit_rebase(
        &self,
        name: &str,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let _ = (name, key, parent, labels);
        Err(Error::not_implemented("snapshotter cannot rebase"))
    }
}

/// Applies an update to `current` the way containerd's snapshot stores do:
/// with no paths, `new`'s labels replace all; `labels` does the same;
/// `labels.KEY` sets (or, for a value that is absent or empty, removes) one
/// label. Other paths are `InvalidArgument`. Validates the result.
pub fn apply_update(current: &mut Info, new: &Info, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        current.labels = new.labels.clone();
    }
    for path in paths {
        if path == "labels" {
            current.labels = new.labels.clone();
        } else if let Some(key) = path.strip_prefix("labels.") {
            match new.labels.get(key) {
                Some(value) if !value.is_empty() => {
                    current.labels.insert(key.to_owned(), value.clone());
                }
                _ => {
                    current.labels.remove(key);
                }
            }
        } else {
            return Err(Error::invalid_argument(format!(
                "cannot update {path:?} field on snapshot {:?}: invalid argument",
                current.name
            )));
        }
    }
    current.labels.retain(|_, v| !v.is_empty());
    labels::validate_all(&current.labels)?;
    current.updated = SystemTime::now();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(labels: &[(&str, &str)]) -> Info {
        Info {
            name: "k".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Info::default()
        }
    }

    #[test]
    fn update_by_label_path_sets_and_removes_one_label() {
        let mut current = info(&[("a", "1"), ("b", "2")]);
        let new = info(&[("a", "9"), ("c", "3")]);
        apply_update(&mut current, &new, &["labels.a".into(), "labels.b".into()]).unwrap();
        assert_eq!(current.labels, info(&[("a", "9")]).labels);
    }

    #[test]
    fn update_without_paths_replaces_labels_and_unknown_paths_fail() {
        let mut current = info(&[("a", "1")]);
        apply_update(&mut current, &info(&[("c", "3")]), &[]).unwrap();
        assert_eq!(current.labels, info(&[("c", "3")]).labels);
        let err = apply_update(&mut current, &info(&[]), &["parent".into()]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
    }

    #[test]
    fn kind_filters_use_lowercase() {
        let f = crate::filters::Filter::parse("kind==committed").unwrap();
        let mut i = info(&[]);
        i.kind = Kind::Committed;
        assert!(f.matches(&i));
        assert_eq!(Kind::parse("Active").unwrap(), Kind::Active);
    }
}
