//! Namespaces: the names that partition every other object, and their labels.
//!
//! The rules are containerd's (`core/metadata/namespaces.go` and the
//! namespaces service, `plugins/services/namespaces/local.go`):
//! - a label set to the empty string is removed, never stored;
//! - an update with no field paths replaces all labels; `labels.KEY` sets or
//!   (with an empty value) removes one; berth also accepts `labels` as
//!   "replace all", which containerd refuses;
//! - updating a namespace that does not exist creates it, as containerd's
//!   `SetLabel` does (`ctr namespaces label new k=v` works there);
//! - a namespace can be deleted only when it holds no images, blobs,
//!   containers or snapshots; its leases go with it.

use crate::encoding::{decode, encode, NamespaceRecord};
use crate::errors::DbResult;
use crate::model::Namespace;
use crate::schema::{self, CONTAINERS, CONTENT, IMAGES, LEASES, NAMESPACES, SNAPSHOTS};
use crate::MetadataStore;
use berth_core::{identifiers, labels, Error, ErrorKind, Result};
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::BTreeMap;

impl MetadataStore {
    /// Creates a namespace.
    ///
    /// `InvalidArgument` for an invalid name or label; `AlreadyExists`
    /// (`namespace "x": already exists`) if it exists. Labels with empty
    /// values are dropped.
    pub fn create_namespace(&self, ns: Namespace) -> Result<Namespace> {
        identifiers::validate(&ns.name)?;
        labels::validate_all(&ns.labels).map_err(|e| e.context("namespace.Labels"))?;
        let mut record = NamespaceRecord::default();
        ns.labels
            .into_iter()
            .for_each(|(k, v)| set_label(&mut record.labels, k, v));
        let bytes = encode(&record)?;
        self.update(|tx| {
            let mut table = tx.open_table(NAMESPACES).db()?;
            if table.get(ns.name.as_str()).db()?.is_some() {
                return Err(already_exists(&ns.name));
            }
            table.insert(ns.name.as_str(), bytes.as_slice()).db()?;
            Ok(())
        })?;
        Ok(record.into_namespace(ns.name))
    }

    /// Gets a namespace; `NotFound` (`namespace "x": not found`) if absent.
    pub fn get_namespace(&self, name: &str) -> Result<Namespace> {
        self.view(|tx| {
            let table = tx.open_table(NAMESPACES).db()?;
            let row = table.get(name).db()?.ok_or_else(|| not_found(name))?;
            let record: NamespaceRecord = decode(row.value())?;
            Ok(record.into_namespace(name.to_owned()))
        })
    }

    /// Lists all namespaces, sorted by name.
    pub fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        self.view(|tx| {
            let table = tx.open_table(NAMESPACES).db()?;
            let mut out = Vec::new();
            for row in table.iter().db()? {
                let (name, value) = row.db()?;
                let record: NamespaceRecord = decode(value.value())?;
                out.push(record.into_namespace(name.value().to_owned()));
            }
            Ok(out)
        })
    }

    /// Updates a namespace's labels by field paths (`labels`, `labels.KEY`;
    /// none means replace all labels) and returns the result.
    ///
    /// An empty value removes a label. Any other path is `InvalidArgument`
    /// (`cannot update "PATH" field`, containerd's text). A namespace that
    /// does not exist is created, as containerd does.
    pub fn update_namespace(&self, ns: Namespace, paths: &[String]) -> Result<Namespace> {
        identifiers::validate(&ns.name)?;
        self.update(|tx| {
            let mut table = tx.open_table(NAMESPACES).db()?;
            let mut record = match table.get(ns.name.as_str()).db()? {
                Some(row) => decode::<NamespaceRecord>(row.value())?,
                None => NamespaceRecord::default(),
            };
            apply_paths(&mut record.labels, &ns, paths)?;
            table
                .insert(ns.name.as_str(), encode(&record)?.as_slice())
                .db()?;
            Ok(record.into_namespace(ns.name.clone()))
        })
    }

    /// Deletes an empty namespace.
    ///
    /// `FailedPrecondition` while it still holds objects (`namespace "x" must
    /// be empty, but it still has images, blobs, containers, snapshots on
    /// "overlayfs" snapshotter: failed precondition`, naming only what it
    /// holds); `NotFound` (`namespace "x": not found`) if absent.
    pub fn delete_namespace(&self, name: &str) -> Result<()> {
        self.update(|tx| {
            let held = holdings(tx, name)?;
            if !held.is_empty() {
                return Err(Error::classed(
                    ErrorKind::FailedPrecondition,
                    format_args!(
                        "namespace {name:?} must be empty, but it still has {}",
                        held.join(", ")
                    ),
                ));
            }
            if tx.open_table(NAMESPACES).db()?.remove(name).db()?.is_none() {
                return Err(not_found(name));
            }
            purge(tx, name)
        })
    }
}

impl NamespaceRecord {
    fn into_namespace(self, name: String) -> Namespace {
        Namespace {
            name,
            labels: self.labels.into_iter().collect(),
        }
    }
}

/// Records namespace `ns` in `table` if it is not there yet: objects created
/// in an unknown namespace create it, as in containerd.
pub(crate) fn ensure(table: &mut Table<'_, &'static str, &'static [u8]>, ns: &str) -> Result<()> {
    if table.get(ns).db()?.is_none() {
        table
            .insert(ns, encode(&NamespaceRecord::default())?.as_slice())
            .db()?;
    }
    Ok(())
}

/// Applies an update's field paths to a namespace's labels.
fn apply_paths(
    labels: &mut BTreeMap<String, String>,
    ns: &Namespace,
    paths: &[String],
) -> Result<()> {
    if paths.is_empty() {
        return replace_labels(labels, ns);
    }
    for path in paths {
        if path == "labels" {
            replace_labels(labels, ns)?;
        } else if let Some(key) = path.strip_prefix("labels.") {
            let value = ns.labels.get(key).cloned().unwrap_or_default();
            labels::validate(key, &value).map_err(|e| e.context("namespace.Labels"))?;
            set_label(labels, key.to_owned(), value);
        } else {
            // containerd's service answers with a bare status here, without
            // the class suffix.
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot update {path:?} field"),
            ));
        }
    }
    Ok(())
}

fn replace_labels(labels: &mut BTreeMap<String, String>, ns: &Namespace) -> Result<()> {
    labels::validate_all(&ns.labels).map_err(|e| e.context("namespace.Labels"))?;
    labels.clear();
    for (k, v) in &ns.labels {
        set_label(labels, k.clone(), v.clone());
    }
    Ok(())
}

/// Sets a label, or removes it when `value` is empty (containerd's `SetLabel`).
fn set_label(labels: &mut BTreeMap<String, String>, key: String, value: String) {
    if value.is_empty() {
        labels.remove(&key);
    } else {
        labels.insert(key, value);
    }
}

/// The kinds of object namespace `ns` still holds, in containerd's words and
/// order.
fn holdings(tx: &WriteTransaction, ns: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (table, what) in [
        (IMAGES, "images"),
        (CONTENT, "blobs"),
        (CONTAINERS, "containers"),
    ] {
        if schema::has_rows(&tx.open_table(table).db()?, ns)? {
            out.push(what.to_owned());
        }
    }
    let snapshots = tx.open_table(SNAPSHOTS).db()?;
    for snapshotter in schema::snapshotters_in(&snapshots, ns)? {
        out.push(format!("snapshots on {snapshotter:?} snapshotter"));
    }
    Ok(out)
}

/// Removes the rows of namespace `ns` that do not keep it alive.
fn purge(tx: &WriteTransaction, ns: &str) -> Result<()> {
    let end = schema::after(ns);
    let mut leases = tx.open_table(LEASES).db()?;
    leases
        .retain_in(schema::ns_range(ns, &end), |_, _| false)
        .db()?;
    let mut resources = tx.open_table(crate::schema::LEASE_RESOURCES).db()?;
    resources
        .retain_in((ns, "", "", "")..(end.as_str(), "", "", ""), |_, _| false)
        .db()
}

fn already_exists(name: &str) -> Error {
    Error::already_exists(format_args!("namespace {name:?}"))
}

fn not_found(name: &str) -> Error {
    Error::not_found(format_args!("namespace {name:?}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::{container, expect_err, paths, store};
    use redb::{ReadableDatabase, TableDefinition};
    use std::collections::HashMap;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        ns("x", pairs).labels
    }

    /// Writes a raw row into one of the reserved tables, as later features will.
    fn put(
        store: &MetadataStore,
        table: TableDefinition<'static, schema::NsKey, &[u8]>,
        ns: &str,
        key: &str,
    ) {
        let tx = store.db.begin_write().unwrap();
        tx.open_table(table)
            .unwrap()
            .insert((ns, key), &[1u8][..])
            .unwrap();
        tx.commit().unwrap();
    }

    fn put_snapshot(store: &MetadataStore, ns: &str, snapshotter: &str, key: &str) {
        let tx = store.db.begin_write().unwrap();
        tx.open_table(SNAPSHOTS)
            .unwrap()
            .insert((ns, snapshotter, key), &[1u8][..])
            .unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn create_then_get_drops_empty_label_values() {
        let (_dir, store) = store();
        let created = store
            .create_namespace(ns("prod", &[("team", "a"), ("empty", "")]))
            .unwrap();
        assert_eq!(created.labels, labels(&[("team", "a")]));
        assert_eq!(store.get_namespace("prod").unwrap(), created);
    }

    #[test]
    fn create_existing_is_already_exists() {
        let (_dir, store) = store();
        store.create_namespace(ns("prod", &[])).unwrap();
        let err = store.create_namespace(ns("prod", &[])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(err.message(), r#"namespace "prod": already exists"#);
    }

    #[test]
    fn create_with_invalid_name_is_invalid_argument() {
        let (_dir, store) = store();
        for name in ["", "-leading-dash", "has space", "UPPER/slash"] {
            let err = expect_err(store.create_namespace(ns(name, &[])));
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name:?}: {err}");
        }
        assert!(store.list_namespaces().unwrap().is_empty());
    }

    #[test]
    fn create_with_oversized_label_is_invalid_argument() {
        let (_dir, store) = store();
        let big = "v".repeat(5000);
        let err = expect_err(store.create_namespace(ns("prod", &[("k", big.as_str())])));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().starts_with("namespace.Labels: "), "{err}");
    }

    #[test]
    fn get_missing_is_not_found() {
        let (_dir, store) = store();
        let err = store.get_namespace("ghost").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), r#"namespace "ghost": not found"#);
    }

    #[test]
    fn list_is_sorted_by_name() {
        let (_dir, store) = store();
        for name in ["zeta", "alpha", "default", "alpha2"] {
            store.create_namespace(ns(name, &[])).unwrap();
        }
        let names: Vec<_> = store
            .list_namespaces()
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["alpha", "alpha2", "default", "zeta"]);
    }

    #[test]
    fn update_without_paths_replaces_all_labels() {
        let (_dir, store) = store();
        store
            .create_namespace(ns("prod", &[("old", "1"), ("keep", "1")]))
            .unwrap();
        let updated = store
            .update_namespace(ns("prod", &[("keep", "2"), ("new", "3"), ("e", "")]), &[])
            .unwrap();
        assert_eq!(updated.labels, labels(&[("keep", "2"), ("new", "3")]));
        assert_eq!(store.get_namespace("prod").unwrap(), updated);
    }

    #[test]
    fn update_labels_path_replaces_all_labels() {
        let (_dir, store) = store();
        store.create_namespace(ns("prod", &[("old", "1")])).unwrap();
        let updated = store
            .update_namespace(ns("prod", &[("new", "3")]), &paths(&["labels"]))
            .unwrap();
        assert_eq!(updated.labels, labels(&[("new", "3")]));
    }

    #[test]
    fn update_label_key_sets_one_and_empty_value_deletes() {
        let (_dir, store) = store();
        store
            .create_namespace(ns("prod", &[("a", "1"), ("b", "1"), ("c", "1")]))
            .unwrap();
        let updated = store
            .update_namespace(
                ns("prod", &[("a", "2"), ("c", "ignored")]),
                &paths(&["labels.a", "labels.b"]),
            )
            .unwrap();
        assert_eq!(updated.labels, labels(&[("a", "2"), ("c", "1")]));
        assert_eq!(store.get_namespace("prod").unwrap(), updated);
    }

    #[test]
    fn update_other_path_is_invalid_argument_and_changes_nothing() {
        let (_dir, store) = store();
        store.create_namespace(ns("prod", &[("a", "1")])).unwrap();
        let err = store
            .update_namespace(ns("prod", &[("a", "2")]), &paths(&["labels.a", "name"]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.message(), r#"cannot update "name" field"#);
        assert_eq!(store.get_namespace("prod").unwrap().labels["a"], "1");
    }

    #[test]
    fn update_with_oversized_label_is_invalid_argument() {
        let (_dir, store) = store();
        store.create_namespace(ns("prod", &[])).unwrap();
        let big = "v".repeat(5000);
        let err = expect_err(
            store.update_namespace(ns("prod", &[("k", big.as_str())]), &paths(&["labels.k"])),
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().starts_with("namespace.Labels: "), "{err}");
    }

    #[test]
    fn update_of_missing_namespace_creates_it() {
        let (_dir, store) = store();
        store
            .update_namespace(ns("fresh", &[("a", "1")]), &paths(&["labels.a"]))
            .unwrap();
        assert_eq!(store.get_namespace("fresh").unwrap().labels["a"], "1");
    }

    #[test]
    fn delete_removes_namespace() {
        let (_dir, store) = store();
        store.create_namespace(ns("prod", &[])).unwrap();
        store.delete_namespace("prod").unwrap();
        assert!(store.get_namespace("prod").unwrap_err().is_not_found());
        store.create_namespace(ns("prod", &[])).unwrap();
    }

    #[test]
    fn delete_missing_is_not_found() {
        let (_dir, store) = store();
        let err = store.delete_namespace("ghost").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), r#"namespace "ghost": not found"#);
    }

    #[test]
    fn delete_with_containers_is_failed_precondition() {
        let (_dir, store) = store();
        store.create_container("prod", container("web")).unwrap();
        let err = store.delete_namespace("prod").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(
            err.message(),
            r#"namespace "prod" must be empty, but it still has containers: failed precondition"#
        );
        store.delete_container("prod", "web").unwrap();
        store.delete_namespace("prod").unwrap();
    }

    #[test]
    fn delete_names_everything_the_namespace_still_holds() {
        let (_dir, store) = store();
        store.create_container("prod", container("web")).unwrap();
        put(&store, IMAGES, "prod", "docker.io/library/busybox:latest");
        put(&store, CONTENT, "prod", "sha256:abc");
        put_snapshot(&store, "prod", "overlayfs", "k1");
        put_snapshot(&store, "prod", "overlayfs", "k2");
        put_snapshot(&store, "prod", "native", "k1");
        // Rows of neighbouring namespaces must not count.
        put_snapshot(&store, "prod2", "zfs", "k");
        put_snapshot(&store, "pro", "btrfs", "k");
        let err = store.delete_namespace("prod").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(
            err.message(),
            "namespace \"prod\" must be empty, but it still has images, blobs, containers, \
             snapshots on \"native\" snapshotter, snapshots on \"overlayfs\" snapshotter: \
             failed precondition"
        );
    }

    #[test]
    fn delete_takes_the_namespaces_leases_with_it() {
        let (_dir, store) = store();
        store.create_namespace(ns("prod", &[])).unwrap();
        store.create_namespace(ns("prod2", &[])).unwrap();
        put(&store, LEASES, "prod", "lease-1");
        put(&store, LEASES, "prod2", "lease-2");
        store.delete_namespace("prod").unwrap();
        let tx = store.db.begin_read().unwrap();
        let leases = tx.open_table(LEASES).unwrap();
        assert!(!schema::has_rows(&leases, "prod").unwrap());
        assert!(schema::has_rows(&leases, "prod2").unwrap());
    }

    #[test]
    fn creating_a_container_creates_its_namespace() {
        let (_dir, store) = store();
        store.create_container("newns", container("web")).unwrap();
        let names: Vec<_> = store
            .list_namespaces()
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["newns"]);
        // An existing namespace keeps its labels.
        store
            .update_namespace(ns("newns", &[("a", "1")]), &[])
            .unwrap();
        store.create_container("newns", container("web2")).unwrap();
        assert_eq!(store.get_namespace("newns").unwrap().labels["a"], "1");
    }
}
