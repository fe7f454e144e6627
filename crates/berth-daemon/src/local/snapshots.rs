//! Snapshots: containerd's metadata snapshotter (`core/metadata/snapshot.go`)
//! over the loaded snapshotter backends.
//!
//! Clients name snapshots by (namespace, snapshotter, key); a backend
//! (overlayfs, native) has one flat key space. Each namespaced snapshot
//! gets a backend key `<namespace>/<unique>/<key>`, recorded in the
//! metadata database's `snapshots` table with its parent, kind and labels
//! (`berth_store::snapshots`). So namespaces are isolated, a lease in the
//! `containerd-lease` header holds what is prepared, viewed or committed
//! under it, and garbage collection sees every snapshot.
//!
//! # Order of writes, and removal
//!
//! A prepare or commit changes the backend first and then the database; a
//! remove changes the database first and then the backend. A crash between
//! the two can only leave a backend snapshot no row names, never a row
//! without its backend snapshot. [`Snapshots::prune`] removes such
//! unowned backend snapshots: it is containerd's snapshot garbage
//! collection, run after every collection that removed snapshot rows (the
//! GC scheduler's snapshot hook, [`Snapshots::remover`]) and by `Cleanup`.
//! Each backend has a lock: creates hold it shared, prune holds it
//! exclusively, so prune never sees a backend snapshot whose row is about
//! to be written.
//!
//! Remove answers once the row is gone and leaves the backend snapshot to a
//! prune scheduled in the background, as containerd's metadata snapshotter
//! leaves it to its garbage collector: deleting a container's rootfs
//! (`ctr run --rm`, `containers rm`) does not wait on the directory's
//! removal. Removes that land while a prune is pending share it.

use super::blocking;
use crate::events::Exchange;
use crate::gc::SnapshotRemover;
use berth_api::pb::events::{SnapshotCommit, SnapshotPrepare, SnapshotRemove};
use berth_api::typeurl::pack;
use berth_core::filters::Filter;
use berth_core::mount::Mount;
use berth_core::snapshots::{Info, Kind, Snapshotter, Usage};
use berth_core::{Error, Result};
use berth_store::snapshots::{new_snapshot, Snapshot};
use berth_store::MetadataStore;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::RwLock;

/// The snapshotter used when a request names none.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// A loaded `io.containerd.snapshotter.v1` plugin: its name and backend.
pub struct SnapshotterPlugin {
    /// The plugin id, e.g. `overlayfs`.
    pub name: String,
    /// The backend.
    pub backend: Arc<dyn Snapshotter>,
}

struct Backend {
    snapshotter: Arc<dyn Snapshotter>,
    /// Shared by creates, exclusive for prune (see the module docs).
    lock: RwLock<()>,
    /// Held across a commit's checks, backend commit and row change, so two
    /// commits to one name cannot both reach the backend: the loser would
    /// leave its active row naming a backend key that was committed away.
    commit: tokio::sync::Mutex<()>,
    /// Set while a background prune is scheduled and has not started.
    prune_pending: AtomicBool,
}

struct Shared {
    store: MetadataStore,
    events: Exchange,
    backends: HashMap<String, Backend>,
}

/// The snapshots service: every loaded snapshotter, namespaced.
#[derive(Clone)]
pub struct Snapshots {
    shared: Arc<Shared>,
}

impl Snapshots {
    /// A service over `plugins`, recording ownership in `store`.
    pub fn new(store: MetadataStore, events: Exchange, plugins: &[Arc<SnapshotterPlugin>]) -> Self {
        let backends = plugins
            .iter()
            .map(|p| {
                let backend = Backend {
                    snapshotter: p.backend.clone(),
                    lock: RwLock::new(()),
                    commit: tokio::sync::Mutex::new(()),
                    prune_pending: AtomicBool::new(false),
                };
                (p.name.clone(), backend)
            })
            .collect();
        Snapshots {
            shared: Arc::new(Shared {
                store,
                events,
                backends,
            }),
        }
    }

    /// Snapshotter `name` (empty = the default) as namespace `ns` sees it,
    /// leasing what it creates under `lease`.
    pub fn namespaced(&self, ns: &str, name: &str, lease: Option<String>) -> Result<Namespaced> {
        let name = if name.is_empty() {
            DEFAULT_SNAPSHOTTER
        } else {
            name
        };
        if !self.shared.backends.contains_key(name) {
            return Err(Error::invalid_argument(format!(
                "snapshotter not loaded: {name}: invalid argument"
            )));
        }
        if ns.is_empty() {
            return Err(Error::failed_precondition(
                "namespace is required: failed precondition",
            ));
        }
        Ok(Namespaced {
            shared: self.shared.clone(),
            ns: ns.to_owned(),
            name: name.to_owned(),
            lease,
        })
    }

    /// The GC scheduler's snapshot hook: after a collection removed the row
    /// of a snapshot, remove every backend snapshot of that snapshotter no
    /// row owns. Runs on the collector's blocking thread.
    pub fn remover(&self) -> SnapshotRemover {
        let service = self.clone();
        Arc::new(move |removed| {
            let handle = tokio::runtime::Handle::current();
            handle
                .block_on(service.prune(&removed.snapshotter))
                .map(|_| ())
        })
    }

    /// Removes the backend snapshots of `name` that no metadata row owns,
    /// children first, and returns how many went.
    pub async fn prune(&self, name: &str) -> Result<usize> {
        let backend = self.shared.backend(name)?;
        let _exclusive = backend.lock.write().await;
        // From here on, a remove whose row goes later schedules another prune.
        backend.prune_pending.store(false, Ordering::SeqCst);
        let store = self.shared.store.clone();
        let owner = name.to_owned();
        let keep = blocking(move || store.snapshot_backend_keys(&owner)).await?;
        prune_unowned(backend.snapshotter.as_ref(), &keep).await
    }

    /// Makes the metadata and backend `name` agree after a crash: removes
    /// rows whose backend snapshot is missing (a commit killed between the
    /// backend's commit and the row's, which leaves the active row naming a
    /// backend key that is gone), then prunes. Returns the rows removed.
    pub async fn reconcile(&self, name: &str) -> Result<usize> {
        let backend = self.shared.backend(name)?;
        let dangling = {
            let _exclusive = backend.lock.write().await;
            let present: HashSet<String> = backend
                .snapshotter
                .walk(&[])
                .await?
                .into_iter()
                .map(|i| i.name)
                .collect();
            let (store, owner) = (self.shared.store.clone(), name.to_owned());
            let rows = blocking(move || store.snapshots_of(&owner)).await?;
            let mut dangling = 0;
            for (ns, row) in rows
                .into_iter()
                .filter(|(_, r)| !present.contains(&r.backend_key))
            {
                tracing::warn!(namespace = %ns, key = %row.info.name, snapshotter = name,
                    "removing snapshot whose backend snapshot is missing (interrupted commit)");
                let (store, owner) = (self.shared.store.clone(), name.to_owned());
                let key = row.info.name.clone();
                blocking(move || store.remove_snapshot(&ns, &owner, &key)).await?;
                dangling += 1;
            }
            dangling
        };
        self.prune(name).await?;
        Ok(dangling)
    }

    /// Removes the rows of unpacks a previous daemon left half done: active
    /// snapshots under containerd's unpack key `extract-<unique> <chainID>`.
    /// A layer is applied to such a snapshot and committed under its chain
    /// ID in one client call sequence; when the daemon dies in between, the
    /// apply died with it, so the tree is partial and no client can finish
    /// it. containerd keeps them until the unpacking client's lease expires
    /// (a day); berth drops them at start, before any client is served, so
    /// none of them is ever visible. The backend snapshots go with the
    /// next prune (reconcile, at start). Returns the rows removed.
    pub fn remove_interrupted_unpacks(&self) -> Result<usize> {
        let mut removed = 0;
        for name in self.shared.backends.keys() {
            for (ns, row) in self.shared.store.snapshots_of(name)? {
                if row.info.kind != Kind::Active || !is_unpack_key(&row.info.name) {
                    continue;
                }
                tracing::warn!(namespace = %ns, key = %row.info.name, snapshotter = %name,
                    "removing snapshot of an unpack interrupted by a daemon exit");
                self.shared
                    .store
                    .remove_snapshot(&ns, name, &row.info.name)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Reconciles every snapshotter in the background (at daemon start).
    pub fn reconcile_all_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for name in self.shared.backends.keys() {
            let (service, name) = (self.clone(), name.clone());
            runtime.spawn(async move {
                if let Err(err) = service.reconcile(&name).await {
                    tracing::warn!(snapshotter = %name, error = %err, "reconciling snapshots");
                }
            });
        }
    }
}

/// Whether `key` is containerd's unpack key, `extract-<unique> <chainID>`
/// (`snapshots.UnpackKeyFormat`).
fn is_unpack_key(key: &str) -> bool {
    key.strip_prefix("extract-")
        .and_then(|rest| rest.split_once(' '))
        .is_some_and(|(unique, chain)| !unique.is_empty() && chain.starts_with("sha256:"))
}

/// Removes backend snapshots not in `keep` whose children are all gone,
/// repeating until none is left to remove.
async fn prune_unowned(backend: &dyn Snapshotter, keep: &HashSet<String>) -> Result<usize> {
    let mut removed = 0;
    loop {
        let infos = backend.walk(&[]).await?;
        let parents: HashSet<&str> = infos.iter().map(|i| i.parent.as_str()).collect();
        let leaves: Vec<&Info> = infos
            .iter()
            .filter(|i| !keep.contains(&i.name) && !parents.contains(i.name.as_str()))
            .collect();
        if leaves.is_empty() {
            return Ok(removed);
        }
        for leaf in leaves {
            backend.remove(&leaf.name).await?;
            tracing::debug!(key = %leaf.name, "removed unowned backend snapshot");
            removed += 1;
        }
    }
}

impl Shared {
    fn backend(&self, name: &str) -> Result<&Backend> {
        self.backends.get(name).ok_or_else(|| {
            Error::invalid_argument(format!("snapshotter not loaded: {name}: invalid argument"))
        })
    }

    fn publish(&self, ns: &str, topic: &str, event: prost_types::Any) {
        if let Err(err) = self.events.publish(ns, topic, event) {
            tracing::debug!(error = %err, topic, "publishing snapshot event");
        }
    }
}

/// One snapshotter as one namespace sees it; a [`Snapshotter`] itself, so
/// the conformance suite runs against it.
pub struct Namespaced {
    shared: Arc<Shared>,
    ns: String,
    name: String,
    lease: Option<String>,
}

impl Namespaced {
    /// The snapshotter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn backend(&self) -> Result<&Backend> {
        self.shared.backend(&self.name)
    }

    /// Removes, in the background, the backend snapshots whose rows are
    /// gone (see the module docs); one prune serves every remove made
    /// before it starts.
    fn schedule_prune(&self, backend: &Backend) {
        if backend.prune_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let service = Snapshots {
            shared: self.shared.clone(),
        };
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(err) = service.prune(&name).await {
                // Left for the next prune (GC, Cleanup or a restart).
                tracing::warn!(snapshotter = %name, error = %err, "pruning removed snapshots");
            }
        });
    }

    async fn get(&self, key: &str) -> Result<Snapshot> {
        let (store, ns, name, key) = self.owned(key);
        blocking(move || store.get_snapshot(&ns, &name, &key)).await
    }

    fn owned(&self, key: &str) -> (MetadataStore, String, String, String) {
        (
            self.shared.store.clone(),
            self.ns.clone(),
            self.name.clone(),
            key.to_owned(),
        )
    }

    /// A backend key for namespaced `key`, unique even if `key` is reused
    /// while the old backend snapshot is still being removed.
    fn backend_key(&self, key: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{}/{nanos:x}{n:x}/{key}", self.ns)
    }

    /// The backend key of committed `parent` (empty for none), checked the
    /// way the backend would, with namespaced names in the errors.
    async fn parent_backend_key(&self, parent: &str) -> Result<String> {
        if parent.is_empty() {
            return Ok(String::new());
        }
        let p = self.get(parent).await.map_err(|e| e.context("parent"))?;
        if p.info.kind != Kind::Committed {
            return Err(Error::invalid_argument(format!(
                "parent {parent:?} is not a committed snapshot: invalid argument"
            )));
        }
        Ok(p.backend_key)
    }

    /// Commits `key` as `name`; with `rebase`, onto that parent (which
    /// must be committed) through the backend's `commit_rebase`.
    async fn commit_onto(
        &self,
        name: &str,
        key: &str,
        rebase: Option<&str>,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(Error::invalid_argument(
                "snapshot name must not be empty: invalid argument",
            ));
        }
        berth_core::labels::validate_all(&labels)?;
        let backend = self.backend()?;
        let _shared = backend.lock.read().await;
        let _committing = backend.commit.lock().await;
        // The name is checked before the key, as containerd's metadata
        // store does: committing a missing key to a taken name is
        // AlreadyExists.
        if self.get(name).await.is_ok() {
            return Err(Error::already_exists(format_args!("snapshot {name:?}")));
        }
        let active = self.get(key).await?;
        if active.info.kind != Kind::Active {
            return Err(Error::failed_precondition(format!(
                "snapshot {key:?} is not active: failed precondition"
            )));
        }
        let backend_name = self.backend_key(name);
        match rebase {
            Some(parent) => {
                let backend_parent = self.parent_backend_key(parent).await?;
                backend
                    .snapshotter
                    .commit_rebase(
                        &backend_name,
                        &active.backend_key,
                        &backend_parent,
                        HashMap::new(),
                    )
                    .await?
            }
            None => {
                backend
                    .snapshotter
                    .commit(&backend_name, &active.backend_key, HashMap::new())
                    .await?
            }
        }
        let committed = new_snapshot(
            Kind::Committed,
            name,
            rebase.unwrap_or(&active.info.parent),
            labels,
            backend_name,
        );
        let (store, ns, ss, lease) = (
            self.shared.store.clone(),
            self.ns.clone(),
            self.name.clone(),
            self.lease.clone(),
        );
        let key_owned = key.to_owned();
        blocking(move || store.commit_snapshot(&ns, &ss, &key_owned, &committed, lease.as_deref()))
            .await?;
        let event = SnapshotCommit {
            key: key.to_owned(),
            name: name.to_owned(),
            snapshotter: self.name.clone(),
        };
        self.shared
            .publish(&self.ns, "/snapshot/commit", pack(&event));
        Ok(())
    }

    /// Creates `key`; with `rebase`, through the backend's
    /// `prepare_rebase` (its parent is chosen at commit).
    async fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
        rebase: bool,
    ) -> Result<Vec<Mount>> {
        if key.is_empty() {
            return Err(Error::invalid_argument(
                "snapshot key must not be empty: invalid argument",
            ));
        }
        berth_core::labels::validate_all(&labels)?;
        let backend = self.backend()?;
        let _shared = backend.lock.read().await;
        if self.get(key).await.is_ok() {
            return Err(Error::already_exists(format_args!("snapshot {key:?}")));
        }
        let parent_key = self.parent_backend_key(parent).await?;
        let backend_key = self.backend_key(key);
        let none = HashMap::new();
        let mounts = match kind {
            _ if rebase => {
                backend
                    .snapshotter
                    .prepare_rebase(&backend_key, none)
                    .await?
            }
            Kind::View => {
                backend
                    .snapshotter
                    .view(&backend_key, &parent_key, none)
                    .await?
            }
            _ => {
                backend
                    .snapshotter
                    .prepare(&backend_key, &parent_key, none)
                    .await?
            }
        };
        let snapshot = new_snapshot(kind, key, parent, labels, backend_key.clone());
        let (store, ns, name, lease) = (
            self.shared.store.clone(),
            self.ns.clone(),
            self.name.clone(),
            self.lease.clone(),
        );
        let recorded =
            blocking(move || store.create_snapshot(&ns, &name, &snapshot, lease.as_deref())).await;
        if let Err(err) = recorded {
            if let Err(undo) = backend.snapshotter.remove(&backend_key).await {
                tracing::warn!(key = %backend_key, error = %undo, "undoing backend snapshot");
            }
            return Err(err);
        }
        if kind == Kind::Active {
            let event = SnapshotPrepare {
                key: key.to_owned(),
                parent: parent.to_owned(),
                snapshotter: self.name.clone(),
            };
            self.shared
                .publish(&self.ns, "/snapshot/prepare", pack(&event));
        }
        Ok(mounts)
    }
}

#[async_trait::async_trait]
impl Snapshotter for Namespaced {
    async fn stat(&self, key: &str) -> Result<Info> {
        Ok(self.get(key).await?.info)
    }

    async fn update(&self, info: Info, paths: &[String]) -> Result<Info> {
        let (store, ns, name, _) = self.owned("");
        let paths = paths.to_vec();
        let updated = blocking(move || store.update_snapshot(&ns, &name, &info, &paths)).await?;
        Ok(updated.info)
    }

    async fn usage(&self, key: &str) -> Result<Usage> {
        let snapshot = self.get(key).await?;
        self.backend()?
            .snapshotter
            .usage(&snapshot.backend_key)
            .await
    }

    async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let snapshot = self.get(key).await?;
        if snapshot.info.kind == Kind::Committed {
            return Err(Error::failed_precondition(format!(
                "snapshot {key:?} is not active: failed precondition"
            )));
        }
        self.backend()?
            .snapshotter
            .mounts(&snapshot.backend_key)
            .await
    }

    async fn prepare(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent, labels, false).await
    }

    async fn view(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent, labels, false).await
    }

    async fn commit(&self, name: &str, key: &str, labels: HashMap<String, String>) -> Result<()> {
        self.commit_onto(name, key, None, labels).await
    }

    fn can_rebase(&self) -> bool {
        self.backend()
            .map(|b| b.snapshotter.can_rebase())
            .unwrap_or(false)
    }

    async fn prepare_rebase(
        &self,
        key: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, "", labels, true).await
    }

    async fn commit_rebase(
        &self,
        name: &str,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        self.commit_onto(name, key, Some(parent), labels).await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        let backend = self.backend()?;
        let _shared = backend.lock.read().await;
        let (store, ns, name, key_owned) = self.owned(key);
        blocking(move || store.remove_snapshot(&ns, &name, &key_owned)).await?;
        self.schedule_prune(backend);
        let event = SnapshotRemove {
            key: key.to_owned(),
            snapshotter: self.name.clone(),
        };
        self.shared
            .publish(&self.ns, "/snapshot/remove", pack(&event));
        Ok(())
    }

    async fn walk(&self, filters: &[String]) -> Result<Vec<Info>> {
        let filter = Filter::parse_all(filters)?;
        let (store, ns, name, _) = self.owned("");
        let all = blocking(move || store.list_snapshots(&ns, &name)).await?;
        Ok(all
            .into_iter()
            .map(|s| s.info)
            .filter(|info| filter.matches(info))
            .collect())
    }

    async fn cleanup(&self) -> Result<()> {
        let service = Snapshots {
            shared: self.shared.clone(),
        };
        service.prune(&self.name).await?;
        self.backend()?.snapshotter.cleanup().await
    }
}
