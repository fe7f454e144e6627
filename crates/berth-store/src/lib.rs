//! berth's persistent state.
//!
//! [`MetadataStore`] is the metadata database (an embedded redb file) holding
//! containerd's namespaced model: namespaces, containers, images, leases and
//! the content and snapshots each namespace owns (see [`schema`] for the
//! layout), and the garbage collector over it ([`gc`]). Its API is synchronous:
//! every mutating call is one redb write transaction, committed at the end
//! with redb's default (immediate, fsynced) durability, so a crash leaves
//! either the old or the new state. Reads are redb read transactions, which
//! never wait for a writer. The daemon calls it from `spawn_blocking`.
//!
//! The rules — validation, error kinds and messages, field-path updates —
//! are containerd's (`core/metadata/*.go` and the namespaces service), so a
//! client sees the same answers from berth as from containerd.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod adaptors;
mod containers;
pub mod content;
mod encoding;
mod errors;
mod fieldpaths;
pub mod gc;
pub mod images;
mod leases;
pub mod model;
mod namespaces;
pub mod schema;
pub mod snapshots;
mod validation;

pub use model::{Any, Container, Lease, LeaseResource, Namespace, Runtime};
pub use schema::SCHEMA_VERSION;

use berth_core::Result;
use errors::DbResult;
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The metadata database: a cheap-to-clone handle on one redb file.
///
/// Clones share the open database, so one handle can be given to every
/// service. redb allows one write transaction at a time (others wait) and
/// any number of readers alongside it.
#[derive(Clone)]
pub struct MetadataStore {
    db: Arc<Database>,
    mutations: Arc<Mutations>,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore").finish_non_exhaustive()
    }
}

/// A function told after every committed write whether a deletion has
/// happened since the last garbage collection (containerd's mutation
/// callback).
pub type MutationCallback = Box<dyn Fn(bool) + Send + Sync>;

/// What the garbage collector's scheduler learns about writes.
#[derive(Default)]
struct Mutations {
    /// Deletions since the last collection (containerd's `dirty`).
    dirty: AtomicU64,
    callbacks: RwLock<Vec<MutationCallback>>,
}

impl MetadataStore {
    /// Opens (creating if needed) the database file at `path`, creating any
    /// missing table and checking the schema version.
    ///
    /// Fails with `Unavailable` if another process has the file open, and
    /// `FailedPrecondition` if the file has a schema version this build does
    /// not know.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)
            .db()
            .map_err(|e| e.context(format_args!("opening {}", path.display())))?;
        let store = MetadataStore {
            db: Arc::new(db),
            mutations: Arc::default(),
        };
        store.update(schema::init)?;
        Ok(store)
    }

    /// Runs `f` in a read transaction.
    fn view<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_read().db()?;
        f(&tx)
    }

    /// Runs `f` in a write transaction and commits if it succeeds; on error
    /// nothing `f` wrote is kept.
    ///
    /// Every write goes through here: it bumps the database generation
    /// (which garbage collection compares to know whether its mark, taken
    /// without the write lock, is still current) and tells the mutation
    /// callbacks once committed.
    fn update<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_write().db()?;
        match f(&tx).and_then(|out| schema::bump_generation(&tx).map(|()| out)) {
            Ok(out) => {
                tx.commit().db()?;
                self.mutated();
                Ok(out)
            }
            Err(err) => {
                // The caller's error is the one that matters; an abort failure
                // only means redb could not release the pages early.
                if let Err(abort) = tx.abort() {
                    tracing::warn!(error = %abort, "aborting metadata transaction");
                }
                Err(err)
            }
        }
    }

    /// Registers `callback` to run after every committed write, told
    /// whether something was deleted since the last garbage collection.
    /// Callbacks must be quick (send on a channel).
    pub fn register_mutation_callback(&self, callback: MutationCallback) {
        let mut callbacks = match self.mutations.callbacks.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        callbacks.push(callback);
    }

    /// Records a deletion: the next mutation callbacks say "dirty", so the
    /// garbage collector is scheduled soon. Every delete of an image, lease,
    /// lease resource, container, blob or snapshot calls it.
    pub(crate) fn mark_dirty(&self) {
        self.mutations.dirty.fetch_add(1, Ordering::Relaxed);
    }

    fn mutated(&self) {
        let dirty = self.mutations.dirty.load(Ordering::Relaxed) > 0;
        let callbacks = match self.mutations.callbacks.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        callbacks.iter().for_each(|callback| callback(dirty));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testutil {
    //! A store in a temporary directory, and container records to put in it.

    use super::*;
    use std::collections::HashMap;

    /// A store in a fresh temporary directory (kept alive by the returned guard).
    pub(crate) fn store() -> (tempfile::TempDir, MetadataStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
        (dir, store)
    }

    /// The error of a call expected to fail (without printing a huge `Ok`).
    pub(crate) fn expect_err<T>(result: berth_core::Result<T>) -> berth_core::Error {
        match result {
            Ok(_) => panic!("expected an error, got Ok"),
            Err(err) => err,
        }
    }

    /// Field paths from string literals.
    pub(crate) fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    /// A container that passes validation.
    pub(crate) fn container(id: &str) -> Container {
        Container {
            id: id.to_owned(),
            labels: HashMap::new(),
            image: "docker.io/library/busybox:latest".to_owned(),
            runtime: Runtime {
                name: "io.containerd.runc.v2".to_owned(),
                options: None,
            },
            spec: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_owned(),
                value: b"{}".to_vec(),
            }),
            snapshotter: "overlayfs".to_owned(),
            snapshot_key: id.to_owned(),
            ..Container::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::testutil::{container, store};
    use super::*;
    use berth_core::filters::Filter;
    use berth_core::ErrorKind;
    use std::collections::HashMap;

    #[test]
    fn reopening_sees_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.redb");
        let created = {
            let store = MetadataStore::open(&path).unwrap();
            store
                .create_namespace(Namespace {
                    name: "prod".into(),
                    labels: HashMap::from([("team".into(), "a".into())]),
                })
                .unwrap();
            store.create_container("prod", container("web")).unwrap()
        };
        let store = MetadataStore::open(&path).unwrap();
        assert_eq!(store.get_container("prod", "web").unwrap(), created);
        assert_eq!(
            store.get_namespace("prod").unwrap().labels["team"],
            "a".to_string()
        );
        let all = Filter::always();
        assert_eq!(store.list_containers("prod", &all).unwrap(), vec![created]);
    }

    #[test]
    fn second_open_of_the_same_file_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.redb");
        let _first = MetadataStore::open(&path).unwrap();
        let err = MetadataStore::open(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    }

    #[test]
    fn newer_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(schema::META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let err = MetadataStore::open(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.message().contains("schema version 2"), "{err}");
    }

    #[test]
    fn clones_share_one_database() {
        let (_dir, store) = store();
        let clone = store.clone();
        clone.create_container("default", container("c1")).unwrap();
        assert_eq!(store.get_container("default", "c1").unwrap().id, "c1");
    }

    #[test]
    fn concurrent_creates_of_distinct_ids_all_land() {
        let (_dir, store) = store();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        store
                            .create_container("default", container(&format!("t{t}-c{i}")))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = Filter::always();
        let listed = store.list_containers("default", &all).unwrap();
        assert_eq!(listed.len(), 200);
        let mut ids: Vec<_> = listed.iter().map(|c| c.id.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 200);
    }
}
