//! Snapshot ownership, keyed by (namespace, snapshotter, key): containerd's
//! metadata snapshotter (`core/metadata/snapshot.go`).
//!
//! A snapshotter backend (overlayfs, native) has one flat key space and
//! knows nothing of namespaces. The daemon gives each namespaced snapshot a
//! *backend key* (`<namespace>/<unique>/<key>`, as containerd's
//! `<namespace>/<txid>/<key>`), so two namespaces can both prepare `web`,
//! and keeps here which namespace owns which backend snapshot, with its
//! parent (the namespaced parent key) and labels. Garbage collection reads
//! the parent and labels of these rows (`gc/scan.rs`); the record therefore
//! starts with exactly those two fields.

use crate::encoding::{decode, encode, Timestamp};
use crate::errors::DbResult;
use crate::leases::add_resource;
use crate::model::LeaseResource;
use crate::namespaces;
use crate::schema::{self, NAMESPACES, SNAPSHOTS};
use crate::validation::namespace_required;
use crate::MetadataStore;
use berth_core::snapshots::{apply_update, Info, Kind};
use berth_core::{labels, Error, Result};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

/// A namespaced snapshot as the metadata database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// What clients see: kind, key or name, namespaced parent, labels,
    /// times.
    pub info: Info,
    /// The key the snapshotter backend knows it by.
    pub backend_key: String,
}

/// The stored form. `parent` and `labels` must stay first (see the module
/// documentation).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotRecord {
    parent: String,
    labels: BTreeMap<String, String>,
    backend_key: String,
    kind: String,
    created: Timestamp,
    updated: Timestamp,
}

impl SnapshotRecord {
    fn from_snapshot(s: &Snapshot) -> Self {
        SnapshotRecord {
            parent: s.info.parent.clone(),
            labels: s.info.labels.clone().into_iter().collect(),
            backend_key: s.backend_key.clone(),
            kind: s.info.kind.as_str().to_owned(),
            created: s.info.created.into(),
            updated: s.info.updated.into(),
        }
    }

    fn into_snapshot(self, key: &str) -> Snapshot {
        Snapshot {
            info: Info {
                kind: Kind::parse(&self.kind).unwrap_or(Kind::Unknown),
                name: key.to_owned(),
                parent: self.parent,
                labels: self.labels.into_iter().collect(),
                created: self.created.into(),
                updated: self.updated.into(),
            },
            backend_key: self.backend_key,
        }
    }
}

/// The lease resource type of snapshots of `snapshotter`.
pub fn lease_resource_type(snapshotter: &str) -> String {
    format!("snapshots/{snapshotter}")
}

fn describe(ns: &str, snapshotter: &str, key: &str) -> String {
    format!("snapshot {key:?} of {snapshotter} in namespace {ns:?}")
}

type SnapshotTable<'t> = redb::Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>;

fn read(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static [u8]>,
    ns: &str,
    snapshotter: &str,
    key: &str,
) -> Result<Option<Snapshot>> {
    match table.get((ns, snapshotter, key)).db()? {
        Some(v) => Ok(Some(
            decode::<SnapshotRecord>(v.value())?.into_snapshot(key),
        )),
        None => Ok(None),
    }
}

fn write(table: &mut SnapshotTable<'_>, ns: &str, snapshotter: &str, s: &Snapshot) -> Result<()> {
    let bytes = encode(&SnapshotRecord::from_snapshot(s))?;
    table
        .insert((ns, snapshotter, s.info.name.as_str()), bytes.as_slice())
        .db()?;
    Ok(())
}

/// Every snapshot of `snapshotter` in `ns`, in key order.
fn all_in(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static [u8]>,
    ns: &str,
    snapshotter: &str,
) -> Result<Vec<Snapshot>> {
    let end = schema::after(snapshotter);
    let mut out = Vec::new();
    for row in table
        .range((ns, snapshotter, "")..(ns, end.as_str(), ""))
        .db()?
    {
        let (key, value) = row.db()?;
        let record = decode::<SnapshotRecord>(value.value())?;
        out.push(record.into_snapshot(key.value().2));
    }
    Ok(out)
}

/// Leases `key` under `lease`, if given, in `tx`.
fn lease(
    tx: &WriteTransaction,
    ns: &str,
    snapshotter: &str,
    key: &str,
    lease: Option<&str>,
) -> Result<()> {
    match lease {
        Some(id) => add_resource(
            tx,
            ns,
            id,
            &LeaseResource {
                id: key.to_owned(),
                kind: lease_resource_type(snapshotter),
            },
        ),
        None => Ok(()),
    }
}

impl MetadataStore {
    /// The snapshot `key` of `snapshotter` in `ns`; `NotFound` if absent.
    pub fn get_snapshot(&self, ns: &str, snapshotter: &str, key: &str) -> Result<Snapshot> {
        namespace_required(ns)?;
        self.view(|tx| {
            let table = tx.open_table(SNAPSHOTS).db()?;
            read(&table, ns, snapshotter, key)?
                .ok_or_else(|| Error::not_found(describe(ns, snapshotter, key)))
        })
    }

    /// Every snapshot of `snapshotter` in `ns`, in key order.
    pub fn list_snapshots(&self, ns: &str, snapshotter: &str) -> Result<Vec<Snapshot>> {
        namespace_required(ns)?;
        self.view(|tx| all_in(&tx.open_table(SNAPSHOTS).db()?, ns, snapshotter))
    }

    /// Records a new active snapshot or view (creating the namespace), and
    /// leases it under `lease` in the same transaction. `AlreadyExists` if
    /// the key is taken; `NotFound` / `InvalidArgument` if the parent is
    /// missing or not committed.
    pub fn create_snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        snapshot: &Snapshot,
        lease_id: Option<&str>,
    ) -> Result<()> {
        namespace_required(ns)?;
        labels::validate_all(&snapshot.info.labels)?;
        self.update(|tx| {
            namespaces::ensure(&mut tx.open_table(NAMESPACES).db()?, ns)?;
            let mut table = tx.open_table(SNAPSHOTS).db()?;
            let key = snapshot.info.name.as_str();
            if read(&table, ns, snapshotter, key)?.is_some() {
                return Err(Error::already_exists(describe(ns, snapshotter, key)));
            }
            check_parent(&table, ns, snapshotter, &snapshot.info.parent)?;
            write(&mut table, ns, snapshotter, snapshot)?;
            lease(tx, ns, snapshotter, key, lease_id)
        })
    }

    /// Replaces active snapshot `key` by committed `committed` (whose
    /// name is its key) and leases the name under `lease`.
    pub fn commit_snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
        committed: &Snapshot,
        lease_id: Option<&str>,
    ) -> Result<()> {
        namespace_required(ns)?;
        labels::validate_all(&committed.info.labels)?;
        self.update(|tx| {
            let mut table = tx.open_table(SNAPSHOTS).db()?;
            let name = committed.info.name.as_str();
            // Name first, then key, as containerd checks them.
            if read(&table, ns, snapshotter, name)?.is_some() {
                return Err(Error::already_exists(describe(ns, snapshotter, name)));
            }
            let active = read(&table, ns, snapshotter, key)?
                .ok_or_else(|| Error::not_found(describe(ns, snapshotter, key)))?;
            check_active(&active, ns, snapshotter)?;
            table.remove((ns, snapshotter, key)).db()?;
            write(&mut table, ns, snapshotter, committed)?;
            lease(tx, ns, snapshotter, name, lease_id)
        })
    }

    /// Removes the row of `key` and returns it; `FailedPrecondition` while
    /// a snapshot has it as parent. The backend snapshot is the caller's.
    pub fn remove_snapshot(&self, ns: &str, snapshotter: &str, key: &str) -> Result<Snapshot> {
        namespace_required(ns)?;
        self.update(|tx| {
            let mut table = tx.open_table(SNAPSHOTS).db()?;
            let snapshot = read(&table, ns, snapshotter, key)?
                .ok_or_else(|| Error::not_found(describe(ns, snapshotter, key)))?;
            if all_in(&table, ns, snapshotter)?
                .iter()
                .any(|s| s.info.parent == key)
            {
                return Err(Error::failed_precondition(format!(
                    "cannot remove {} with children: failed precondition",
                    describe(ns, snapshotter, key)
                )));
            }
            table.remove((ns, snapshotter, key)).db()?;
            self.mark_dirty();
            Ok(snapshot)
        })
    }

    /// Updates the labels of `info.name` by field paths (see
    /// [`apply_update`]) and returns the result.
    pub fn update_snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        info: &Info,
        paths: &[String],
    ) -> Result<Snapshot> {
        namespace_required(ns)?;
        self.update(|tx| {
            let mut table = tx.open_table(SNAPSHOTS).db()?;
            let key = info.name.as_str();
            let mut snapshot = read(&table, ns, snapshotter, key)?
                .ok_or_else(|| Error::not_found(describe(ns, snapshotter, key)))?;
            apply_update(&mut snapshot.info, info, paths)?;
            write(&mut table, ns, snapshotter, &snapshot)?;
            Ok(snapshot)
        })
    }

    /// The backend keys of every snapshot of `snapshotter`, in every
    /// namespace: what a backend may keep when it prunes.
    pub fn snapshot_backend_keys(&self, snapshotter: &str) -> Result<HashSet<String>> {
        Ok(self
            .snapshots_of(snapshotter)?
            .into_iter()
            .map(|(_, s)| s.backend_key)
            .collect())
    }

    /// Every snapshot of `snapshotter` in every namespace, with its
    /// namespace.
    pub fn snapshots_of(&self, snapshotter: &str) -> Result<Vec<(String, Snapshot)>> {
        self.view(|tx| {
            let table = tx.open_table(SNAPSHOTS).db()?;
            let mut out = Vec::new();
            for row in table.iter().db()? {
                let (key, value) = row.db()?;
                let (ns, owner, name) = key.value();
                if owner == snapshotter {
                    let record = decode::<SnapshotRecord>(value.value())?;
                    out.push((ns.to_owned(), record.into_snapshot(name)));
                }
            }
            Ok(out)
        })
    }
}

fn check_parent(
    table: &SnapshotTable<'_>,
    ns: &str,
    snapshotter: &str,
    parent: &str,
) -> Result<()> {
    if parent.is_empty() {
        return Ok(());
    }
    let found = read(table, ns, snapshotter, parent)?
        .ok_or_else(|| Error::not_found(format!("parent {}", describe(ns, snapshotter, parent))))?;
    if found.info.kind != Kind::Committed {
        return Err(Error::invalid_argument(format!(
            "parent {} is not committed: invalid argument",
            describe(ns, snapshotter, parent)
        )));
    }
    Ok(())
}

fn check_active(s: &Snapshot, ns: &str, snapshotter: &str) -> Result<()> {
    if s.info.kind == Kind::Active {
        return Ok(());
    }
    Err(Error::failed_precondition(format!(
        "{} is not active: failed precondition",
        describe(ns, snapshotter, &s.info.name)
    )))
}

/// A new snapshot record: `kind`, `key`, `parent`, `labels`, created now.
pub fn new_snapshot(
    kind: Kind,
    key: &str,
    parent: &str,
    labels: HashMap<String, String>,
    backend_key: String,
) -> Snapshot {
    let now = SystemTime::now();
    Snapshot {
        info: Info {
            kind,
            name: key.to_owned(),
            parent: parent.to_owned(),
            labels: labels.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
            created: now,
            updated: now,
        },
        backend_key,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::{expect_err, store};
    use crate::Lease;
    use berth_core::ErrorKind;

    fn snap(kind: Kind, key: &str, parent: &str) -> Snapshot {
        new_snapshot(kind, key, parent, HashMap::new(), format!("b/{key}"))
    }

    #[test]
    fn namespaces_are_isolated_and_keys_unique() {
        let (_dir, store) = store();
        store
            .create_snapshot("a", "overlayfs", &snap(Kind::Active, "k", ""), None)
            .unwrap();
        store
            .create_snapshot("b", "overlayfs", &snap(Kind::Active, "k", ""), None)
            .unwrap();
        let err =
            expect_err(store.create_snapshot("a", "overlayfs", &snap(Kind::Active, "k", ""), None));
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(store.list_snapshots("a", "overlayfs").unwrap().len(), 1);
        assert!(store.list_snapshots("a", "native").unwrap().is_empty());
        let err = expect_err(store.get_snapshot("c", "overlayfs", "k"));
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn commit_replaces_the_active_row_and_children_block_removal() {
        let (_dir, store) = store();
        store
            .create_snapshot("ns", "o", &snap(Kind::Active, "k", ""), None)
            .unwrap();
        store
            .commit_snapshot("ns", "o", "k", &snap(Kind::Committed, "c", ""), None)
            .unwrap();
        assert_eq!(
            expect_err(store.get_snapshot("ns", "o", "k")).kind(),
            ErrorKind::NotFound
        );
        // A taken name is reported before a missing key, as containerd does.
        let taken = snap(Kind::Committed, "c", "");
        let err = expect_err(store.commit_snapshot("ns", "o", "gone", &taken, None));
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        let fresh = snap(Kind::Committed, "c2", "");
        let err = expect_err(store.commit_snapshot("ns", "o", "gone", &fresh, None));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        store
            .create_snapshot("ns", "o", &snap(Kind::Active, "child", "c"), None)
            .unwrap();
        let err = expect_err(store.remove_snapshot("ns", "o", "c"));
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        let err =
            expect_err(store.create_snapshot("ns", "o", &snap(Kind::Active, "x", "child"), None));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        store.remove_snapshot("ns", "o", "child").unwrap();
        assert_eq!(
            store.remove_snapshot("ns", "o", "c").unwrap().backend_key,
            "b/c"
        );
        assert!(store.snapshot_backend_keys("o").unwrap().is_empty());
    }

    #[test]
    fn a_lease_holds_what_was_prepared_under_it() {
        let (_dir, store) = store();
        let lease = Lease {
            id: "l".into(),
            created_at: SystemTime::UNIX_EPOCH,
            labels: HashMap::new(),
        };
        store.create_lease("ns", lease).unwrap();
        store
            .create_snapshot("ns", "o", &snap(Kind::Active, "k", ""), Some("l"))
            .unwrap();
        store
            .commit_snapshot("ns", "o", "k", &snap(Kind::Committed, "c", ""), Some("l"))
            .unwrap();
        let held: Vec<_> = store
            .list_lease_resources("ns", "l")
            .unwrap()
            .into_iter()
            .map(|r| (r.kind, r.id))
            .collect();
        assert!(
            held.contains(&("snapshots/o".into(), "c".into())),
            "{held:?}"
        );
        let err = expect_err(store.create_snapshot(
            "ns",
            "o",
            &snap(Kind::Active, "z", ""),
            Some("nope"),
        ));
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn gc_removes_unreferenced_snapshots_and_keeps_gc_ref_targets() {
        let (_dir, store) = store();
        store
            .create_snapshot("ns", "o", &snap(Kind::Active, "a", ""), None)
            .unwrap();
        store
            .commit_snapshot("ns", "o", "a", &snap(Kind::Committed, "base", ""), None)
            .unwrap();
        let mut rooted = snap(Kind::Committed, "root", "");
        rooted
            .info
            .labels
            .insert("containerd.io/gc.root".into(), "x".into());
        rooted
            .info
            .labels
            .insert("containerd.io/gc.ref.snapshot.o".into(), "base".into());
        store
            .create_snapshot("ns", "o", &snap(Kind::Active, "r", ""), None)
            .unwrap();
        store
            .commit_snapshot("ns", "o", "r", &rooted, None)
            .unwrap();
        store
            .create_snapshot("ns", "o", &snap(Kind::Active, "lonely", ""), None)
            .unwrap();
        let report = store.garbage_collect().unwrap();
        let removed: Vec<_> = report
            .removed
            .snapshots
            .iter()
            .map(|s| s.key.as_str())
            .collect();
        assert_eq!(removed, ["lonely"]);
        assert_eq!(store.list_snapshots("ns", "o").unwrap().len(), 2);
    }
}
