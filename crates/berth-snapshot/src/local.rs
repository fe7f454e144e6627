//! What the overlayfs and native snapshotters share: the metadata rules
//! (containerd's `core/snapshots/storage`) and the crash-safe order of
//! directory and metadata changes. A [`Driver`] supplies the two things
//! that differ: how a new snapshot directory is filled and which mounts
//! assemble a snapshot.
//!
//! # Crash safety
//!
//! Snapshot `<id>` lives in `snapshots/<id>`; the metadata file says which
//! ids exist. Every change orders its steps so that a crash at any point
//! leaves the metadata consistent, and at worst a directory nobody owns,
//! which [`Snapshots::open`] and `cleanup` remove:
//!
//! - prepare/view: fill `snapshots/new-<id>`, rename it to `snapshots/<id>`,
//!   then save the metadata naming it;
//! - commit: only the metadata changes (one atomic file replace), so a
//!   kill mid-commit leaves the active snapshot as it was or the committed
//!   one complete — never a half-committed snapshot;
//! - remove: save the metadata without it, then rename the directory to
//!   `snapshots/rm-<id>` and delete that.

use crate::fsutil;
use crate::metastore::{io_error, now_nanos, MetaStore, Record, State};
use berth_core::filters::Filter;
use berth_core::mount::Mount;
use berth_core::snapshots::{apply_update, Info, Kind, Snapshotter, Usage};
use berth_core::{labels, Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What differs between snapshotters.
pub trait Driver: Send + Sync + 'static {
    /// Fills the new snapshot directory `dir` (already created): `fs` and
    /// whatever else the driver needs, given the parent's `fs` if any.
    fn create(&self, dir: &Path, kind: Kind, parent_fs: Option<&Path>) -> std::io::Result<()>;
    /// The mounts of a snapshot of `kind` in `dir` whose parents' `fs`
    /// directories are `parents`, nearest first.
    fn mounts(&self, dir: &Path, kind: Kind, parents: &[PathBuf]) -> Vec<Mount>;
    /// The mounts of an active snapshot in `dir` waiting to be rebased, or
    /// `None` if this layout cannot rebase (its snapshots depend on their
    /// parents' contents).
    fn rebase_mounts(&self, dir: &Path) -> Option<Vec<Mount>> {
        let _ = dir;
        None
    }
}

/// A snapshotter over one root directory, using driver `D`.
pub struct Snapshots<D> {
    inner: Arc<Inner<D>>,
}

impl<D> std::fmt::Debug for Snapshots<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

struct Inner<D> {
    root: PathBuf,
    driver: D,
    meta: MetaStore,
    /// The state as last saved. Held briefly by every call, never while a
    /// directory is filled or measured, so `stat` and `mounts` (which run on
    /// the async runtime) never wait for a copy.
    state: Mutex<State>,
}

impl<D: Driver> Snapshots<D> {
    /// Opens (creating) the snapshotter rooted at `root`, removing
    /// directories a crash left behind.
    pub fn open(root: &Path, driver: D) -> Result<Self> {
        let dirs = root.join("snapshots");
        std::fs::create_dir_all(&dirs).map_err(|e| io_error(&dirs, e))?;
        let meta = MetaStore::new(root);
        let state = meta.load()?;
        let inner = Inner {
            root: root.to_path_buf(),
            driver,
            meta,
            state: Mutex::new(state),
        };
        inner.cleanup()?;
        Ok(Snapshots {
            inner: Arc::new(inner),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner<D>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| Error::internal(format!("snapshotter task failed: {e}")))?
    }
}

impl<D: Driver> Inner<D> {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    fn fs(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// Saves `next` and makes it the current state.
    fn save(&self, state: &mut State, next: State) -> Result<()> {
        self.meta.save(&next)?;
        *state = next;
        Ok(())
    }

    fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: &str,
        labels_: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create_as(kind, key, parent, labels_, false)
    }

    /// [`Inner::create`], marking the snapshot for a later rebase.
    fn create_as(
        &self,
        kind: Kind,
        key: &str,
        parent: &str,
        labels_: HashMap<String, String>,
        rebase: bool,
    ) -> Result<Vec<Mount>> {
        if key.is_empty() {
            return Err(Error::invalid_argument(
                "snapshot key must not be empty: invalid argument",
            ));
        }
        labels::validate_all(&labels_)?;
        let (id, parent_fs) = self.reserve(key, parent)?;
        // Filling the directory (a full copy for native) runs without the
        // lock; the reservation keeps the key taken and the parent alive.
        let built = self.make_dir(id, kind, parent_fs.as_deref());
        let mut state = self.lock();
        state.pending.remove(key);
        built?;
        let now = now_nanos();
        let record = Record {
            id,
            kind: kind.as_str().to_owned(),
            parent: parent.to_owned(),
            labels: labels_.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
            created: now,
            updated: now,
            usage: None,
            rebase,
        };
        let mut next = state.clone();
        next.snapshots.insert(key.to_owned(), record.clone());
        if let Err(err) = self.save(&mut state, next) {
            let _ = fsutil::remove_all(&self.dir(id));
            return Err(err);
        }
        self.mounts_of(&state, &record)
    }

    /// Checks `key` is free and `parent` committed, then takes an id and
    /// marks `key` pending. Returns the id and the parent's `fs`.
    fn reserve(&self, key: &str, parent: &str) -> Result<(u64, Option<PathBuf>)> {
        let mut state = self.lock();
        if state.taken(key) {
            return Err(Error::already_exists(format_args!("snapshot {key:?}")));
        }
        let parent_fs = if parent.is_empty() {
            None
        } else {
            let p = state.get(parent).map_err(|e| e.context("parent"))?;
            if p.kind() != Kind::Committed {
                return Err(Error::invalid_argument(format!(
                    "parent {parent:?} is not a committed snapshot: invalid argument"
                )));
            }
            Some(self.fs(p.id))
        };
        let id = state.next_id;
        state.next_id += 1;
        state
            .pending
            .insert(key.to_owned(), (parent.to_owned(), id));
        Ok((id, parent_fs))
    }

    /// Builds `snapshots/<id>` under a temporary name and renames it into
    /// place, replacing a directory a crash left under that id.
    fn make_dir(&self, id: u64, kind: Kind, parent_fs: Option<&Path>) -> Result<()> {
        let tmp = self.root.join("snapshots").join(format!("new-{id}"));
        let dir = self.dir(id);
        let build = || -> std::io::Result<()> {
            fsutil::remove_all(&tmp)?;
            std::fs::create_dir(&tmp)?;
            self.driver.create(&tmp, kind, parent_fs)?;
            fsutil::remove_all(&dir)?;
            std::fs::rename(&tmp, &dir)
        };
        build().map_err(|e| {
            let _ = fsutil::remove_all(&tmp);
            io_error(&dir, e)
        })
    }

    fn mounts_of(&self, state: &State, record: &Record) -> Result<Vec<Mount>> {
        if record.rebase {
            return self
                .driver
                .rebase_mounts(&self.dir(record.id))
                .ok_or_else(|| Error::not_implemented("snapshotter cannot rebase"));
        }
        let parents: Vec<PathBuf> = state
            .parent_ids(record)?
            .into_iter()
            .map(|id| self.fs(id))
            .collect();
        Ok(self
            .driver
            .mounts(&self.dir(record.id), record.kind(), &parents))
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let state = self.lock();
        let record = state.get(key)?;
        if record.kind() == Kind::Committed {
            return Err(Error::failed_precondition(format!(
                "snapshot {key:?} is not active: failed precondition"
            )));
        }
        self.mounts_of(&state, record)
    }

    fn commit(&self, name: &str, key: &str, labels_: HashMap<String, String>) -> Result<()> {
        self.commit_onto(name, key, None, labels_)
    }

    /// Commits `key` as `name`; with `rebase`, `key` must have been
    /// prepared for a rebase and its parent becomes `rebase` (which must be
    /// committed, or empty for none).
    fn commit_onto(
        &self,
        name: &str,
        key: &str,
        rebase: Option<&str>,
        labels_: HashMap<String, String>,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(Error::invalid_argument(
                "snapshot name must not be empty: invalid argument",
            ));
        }
        labels::validate_all(&labels_)?;
        let id = self.check_commit(&self.lock(), name, key, rebase)?.id;
        // Measuring a big layer takes a while: do it without the lock, then
        // check again that nothing changed meanwhile.
        let fs = self.fs(id);
        let usage = fsutil::disk_usage(&fs).map_err(|e| io_error(&fs, e))?;
        let mut state = self.lock();
        let record = self.check_commit(&state, name, key, rebase)?.clone();
        if record.id != id {
            return Err(Error::new(
                berth_core::ErrorKind::Aborted,
                format!("snapshot {key:?} changed during commit: aborted"),
            ));
        }
        let mut next = state.clone();
        next.snapshots.remove(key);
        let now = now_nanos();
        let mut committed = Record {
            kind: Kind::Committed.as_str().to_owned(),
            created: now,
            updated: now,
            usage: Some((usage.size, usage.inodes)),
            parent: rebase.map_or(record.parent.clone(), str::to_owned),
            rebase: false,
            ..record
        };
        committed.set_labels(labels_.into_iter().filter(|(_, v)| !v.is_empty()).collect());
        next.snapshots.insert(name.to_owned(), committed);
        self.save(&mut state, next)
    }

    /// The record of active `key`, if `name` is free to commit it to.
    /// With `rebase`, also that `key` awaits a rebase and the new parent
    /// is committed.
    fn check_commit<'s>(
        &self,
        state: &'s State,
        name: &str,
        key: &str,
        rebase: Option<&str>,
    ) -> Result<&'s Record> {
        let record = state.get(key)?;
        if record.kind() != Kind::Active {
            return Err(Error::failed_precondition(format!(
                "snapshot {key:?} is not active: failed precondition"
            )));
        }
        if let Some(parent) = rebase {
            if !record.rebase {
                return Err(Error::failed_precondition(format!(
                    "snapshot {key:?} was not prepared for a rebase: failed precondition"
                )));
            }
            if !parent.is_empty() && state.get(parent)?.kind() != Kind::Committed {
                return Err(Error::invalid_argument(format!(
                    "parent {parent:?} is not a committed snapshot: invalid argument"
                )));
            }
        }
        if state.taken(name) {
            return Err(Error::already_exists(format_args!("snapshot {name:?}")));
        }
        Ok(record)
    }

    fn remove(&self, key: &str) -> Result<()> {
        let mut state = self.lock();
        let id = state.get(key)?.id;
        if state.has_children(key) {
            return Err(Error::failed_precondition(format!(
                "cannot remove snapshot {key:?} with children: failed precondition"
            )));
        }
        let mut next = state.clone();
        next.snapshots.remove(key);
        self.save(&mut state, next)?;
        drop(state);
        self.remove_dir(id);
        Ok(())
    }

    /// Renames a removed snapshot's directory out of the way and deletes
    /// it; a failure leaves it for `cleanup`.
    fn remove_dir(&self, id: u64) {
        let gone = self.root.join("snapshots").join(format!("rm-{id}"));
        let result = std::fs::rename(self.dir(id), &gone).and_then(|()| fsutil::remove_all(&gone));
        if let Err(err) = result {
            tracing::warn!(id, error = %err, "removing snapshot directory; cleanup retries");
        }
    }

    fn update(&self, info: Info, paths: &[String]) -> Result<Info> {
        let mut state = self.lock();
        let record = state.get(&info.name)?;
        let mut current = record.info(&info.name);
        apply_update(&mut current, &info, paths)?;
        let mut next = state.clone();
        if let Some(r) = next.snapshots.get_mut(&info.name) {
            r.set_labels(current.labels.clone());
            r.updated = now_nanos();
        }
        self.save(&mut state, next)?;
        Ok(state.get(&info.name)?.info(&info.name))
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        let (id, stored) = {
            let state = self.lock();
            let record = state.get(key)?;
            (record.id, record.usage())
        };
        match stored {
            Some(usage) => Ok(usage),
            None => {
                let fs = self.fs(id);
                fsutil::disk_usage(&fs).map_err(|e| io_error(&fs, e))
            }
        }
    }

    fn walk(&self, filters: &[String]) -> Result<Vec<Info>> {
        let filter = Filter::parse_all(filters)?;
        let state = self.lock();
        Ok(state
            .snapshots
            .iter()
            .map(|(name, r)| r.info(name))
            .filter(|info| filter.matches(info))
            .collect())
    }

    /// Removes every directory under `snapshots/` that no snapshot owns.
    fn cleanup(&self) -> Result<()> {
        let state = self.lock();
        let mut live: std::collections::HashSet<String> =
            state.snapshots.values().map(|r| r.id.to_string()).collect();
        for (_, id) in state.pending.values() {
            live.insert(id.to_string());
            live.insert(format!("new-{id}"));
        }
        let dirs = self.root.join("snapshots");
        let entries = std::fs::read_dir(&dirs).map_err(|e| io_error(&dirs, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&dirs, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) {
                tracing::info!(dir = %entry.path().display(), "removing unowned snapshot directory");
                fsutil::remove_all(&entry.path()).map_err(|e| io_error(&entry.path(), e))?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<D: Driver> Snapshotter for Snapshots<D> {
    async fn stat(&self, key: &str) -> Result<Info> {
        let state = self.inner.lock();
        Ok(state.get(key)?.info(key))
    }

    async fn update(&self, info: Info, paths: &[String]) -> Result<Info> {
        let paths = paths.to_vec();
        self.run(move |s| s.update(info, &paths)).await
    }

    async fn usage(&self, key: &str) -> Result<Usage> {
        let key = key.to_owned();
        self.run(move |s| s.usage(&key)).await
    }

    async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.inner.mounts(key)
    }

    async fn prepare(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let (key, parent) = (key.to_owned(), parent.to_owned());
        self.run(move |s| s.create(Kind::Active, &key, &parent, labels))
            .await
    }

    async fn view(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let (key, parent) = (key.to_owned(), parent.to_owned());
        self.run(move |s| s.create(Kind::View, &key, &parent, labels))
            .await
    }

    async fn commit(&self, name: &str, key: &str, labels: HashMap<String, String>) -> Result<()> {
        let (name, key) = (name.to_owned(), key.to_owned());
        self.run(move |s| s.commit(&name, &key, labels)).await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.run(move |s| s.remove(&key)).await
    }

    async fn walk(&self, filters: &[String]) -> Result<Vec<Info>> {
        self.inner.walk(filters)
    }

    async fn cleanup(&self) -> Result<()> {
        self.run(|s| s.cleanup()).await
    }

    fn can_rebase(&self) -> bool {
        self.inner.driver.rebase_mounts(Path::new("")).is_some()
    }

    async fn prepare_rebase(
        &self,
        key: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        if !self.can_rebase() {
            return Err(Error::not_implemented("snapshotter cannot rebase"));
        }
        let key = key.to_owned();
        self.run(move |s| s.create_as(Kind::Active, &key, "", labels, true))
            .await
    }

    async fn commit_rebase(
        &self,
        name: &str,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let (name, key, parent) = (name.to_owned(), key.to_owned(), parent.to_owned());
        self.run(move |s| s.commit_onto(&name, &key, Some(&parent), labels))
            .await
    }
}
