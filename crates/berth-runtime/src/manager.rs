//! The task manager: every task the daemon knows, by namespace and id.
//!
//! Creating a task writes the bundle, starts the shim and calls its Create.
//! A monitor per task holds a `Wait` on the init process open: when it fails
//! because the connection dropped, the shim died (e.g. `kill -9`), and the
//! manager does what containerd's `cleanupAfterDeadShim` does — runs the
//! shim's `delete`, publishes `/tasks/exit` and `/tasks/delete`, removes the
//! bundle.

use crate::binary::{Resolver, ShimCommand};
use crate::bundle::Bundle;
use crate::error::is_connection_lost;
use crate::retiring::Retiring;
use crate::shim::ShimClient;
use crate::task::{CreateOpts, Exit, Status, Task};
use berth_api::pb::events::{TaskDelete, TaskExit};
use berth_api::typeurl::pack;
use berth_core::{Error, ErrorKind, Result};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Publishes an event: namespace, topic, event.
pub type Publisher = Arc<dyn Fn(&str, &str, prost_types::Any) + Send + Sync>;

type Key = (String, String);

/// Where the daemon is, for the shims it starts.
#[derive(Debug, Clone)]
pub struct DaemonAddresses {
    /// The gRPC socket.
    pub address: PathBuf,
    /// The ttrpc socket for events.
    pub ttrpc_address: PathBuf,
    /// The publish binary (berthd).
    pub publish_binary: PathBuf,
}

/// Every task, with what is needed to start more.
pub struct TaskManager {
    dir: PathBuf,
    resolver: Resolver,
    daemon: DaemonAddresses,
    publisher: Publisher,
    /// Tasks by (namespace, id). A std mutex: held only for map operations.
    tasks: Mutex<HashMap<Key, Arc<Task>>>,
    /// Ids being created, so two creates of one id cannot both start shims.
    creating: Mutex<HashSet<Key>>,
    /// Shims of deleted tasks still shutting down (their `runc delete` may
    /// be running), by (namespace, id): a new task of the same id waits
    /// for its predecessor's, and the daemon for all of them as it stops.
    retiring: Mutex<HashMap<Key, tokio::task::JoinHandle<()>>>,
    /// The same shims on disk, so a daemon that dies before their
    /// Shutdown still finds them on its next start.
    records: Retiring,
}

impl TaskManager {
    /// A manager keeping bundles in `dir` (`<state>/io.containerd.runtime.v2.task`).
    pub fn new(
        dir: PathBuf,
        resolver: Resolver,
        daemon: DaemonAddresses,
        publisher: Publisher,
    ) -> Arc<TaskManager> {
        Arc::new(TaskManager {
            records: Retiring::new(&dir),
            dir,
            resolver,
            daemon,
            publisher,
            tasks: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
            retiring: Mutex::new(HashMap::new()),
        })
    }

    /// The bundles directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Task>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(namespace: &str, id: &str) -> Key {
        (namespace.to_string(), id.to_string())
    }

    /// containerd's `NotFound` for a task it does not have.
    fn not_found(id: &str) -> Error {
        Error::new(ErrorKind::NotFound, format!("task {id} not found"))
    }

    /// The task `id`, or containerd's "no running task" `NotFound`.
    pub fn get(&self, namespace: &str, id: &str) -> Result<Arc<Task>> {
        self.lock()
            .get(&Self::key(namespace, id))
            .cloned()
            .ok_or_else(|| Self::not_found(id))
    }

    /// Whether `task` is still the task listed under `key` (not deleted,
    /// its shim not found dead, no newer task of the same id).
    fn is_current(&self, key: &Key, task: &Arc<Task>) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, task))
    }

    /// Every task in `namespace`.
    pub fn list(&self, namespace: &str) -> Vec<Arc<Task>> {
        let mut tasks: Vec<_> = self
            .lock()
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, t)| t.clone())
            .collect();
        tasks.sort_by(|a, b| a.id.cmp(&b.id));
        tasks
    }

    /// Every task in every namespace, by namespace and id.
    pub fn all(&self) -> Vec<Arc<Task>> {
        let mut tasks: Vec<_> = self.lock().values().cloned().collect();
        tasks.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
        tasks
    }

    fn command(&self, binary: PathBuf, bundle: &Bundle) -> ShimCommand {
        ShimCommand {
            binary,
            namespace: bundle.namespace.clone(),
            id: bundle.id.clone(),
            bundle: bundle.path.clone(),
            address: self.daemon.address.clone(),
            ttrpc_address: self.daemon.ttrpc_address.clone(),
            publish_binary: self.daemon.publish_binary.clone(),
            debug: false,
        }
    }

    /// Creates a task: bundle, shim, Create. `spec` is the container's OCI
    /// spec JSON; `runtime` the container's runtime name.
    pub async fn create(
        self: &Arc<Self>,
        namespace: &str,
        id: &str,
        runtime: &str,
        spec: &[u8],
        opts: CreateOpts,
    ) -> Result<Arc<Task>> {
        let key = Self::key(namespace, id);
        {
            let tasks = self.lock();
            let mut creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
            if tasks.contains_key(&key) || !creating.insert(key.clone()) {
                return Err(Error::already_exists(format!("task {id}")));
            }
        }
        self.wait_retired(&key).await;
        let result = self.create_inner(namespace, id, runtime, spec, opts).await;
        self.creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let task = result?;
        self.lock().insert(key, task.clone());
        self.monitor(task.clone());
        Ok(task)
    }

    async fn create_inner(
        &self,
        namespace: &str,
        id: &str,
        runtime: &str,
        spec: &[u8],
        opts: CreateOpts,
    ) -> Result<Arc<Task>> {
        let began = std::time::Instant::now();
        let binary = self.resolver.resolve(runtime)?;
        let (dir, ns, cid, spec_bytes) = (
            self.dir.clone(),
            namespace.to_string(),
            id.to_string(),
            spec.to_vec(),
        );
        let bundle = blocking(move || Bundle::create(&dir, &ns, &cid, &spec_bytes)).await?;
        let command = self.command(binary.clone(), &bundle);
        let log = crate::log::follow(&bundle)?.abort_handle();
        let started = async {
            bundle.write_shim_binary(&binary)?;
            let options = opts.options.as_ref().map(Message::encode_to_vec);
            tracing::debug!(id, elapsed = ?began.elapsed(), "bundle written");
            let started = command.start(options).await?;
            tracing::debug!(id, elapsed = ?began.elapsed(), "shim started");
            let (shim, _) =
                ShimClient::connect(&started.address, namespace, id, started.version).await?;
            tracing::debug!(id, elapsed = ?began.elapsed(), "shim connected");
            let task = Arc::new(Task::new(bundle.clone(), shim, command.clone(), 0));
            task.set_log(log.clone());
            match task.create(opts).await {
                Ok(_) => {
                    tracing::debug!(id, elapsed = ?began.elapsed(), "task created");
                    Ok(task)
                }
                Err(err) => {
                    task.shutdown().await;
                    // containerd's wording (runtime/v2/manager.go), which
                    // clients such as dockerd show.
                    Err(err.context("failed to create shim task"))
                }
            }
        }
        .await;
        match started {
            Ok(task) => Ok(task),
            Err(err) => {
                log.abort();
                // Cleans up whatever `start` left: a shim, its socket, mounts.
                if let Err(cleanup) = command.delete().await {
                    tracing::debug!(error = %cleanup, id, "shim delete after failed create");
                }
                if let Err(cleanup) = bundle.delete() {
                    return Err(err.context(format!("(cleanup also failed: {cleanup})")));
                }
                Err(err)
            }
        }
    }

    /// Deletes a stopped task: the shim's Delete, then the bundle; the
    /// shim's Shutdown goes on in the background (see [`TaskManager::retire`]).
    ///
    /// Deletes of one task take turns (other tasks are not held up): a
    /// delete that waited for another finds the task gone and answers
    /// containerd's "task not found" `NotFound`, as containerd does once its
    /// first delete removed the task; if the first failed (the task still
    /// runs), the second tries in its turn.
    pub async fn delete(&self, namespace: &str, id: &str) -> Result<Exit> {
        let began = std::time::Instant::now();
        let task = self.get(namespace, id)?;
        let _turn = task.deleting.lock().await;
        let key = Self::key(namespace, id);
        if !self.is_current(&key, &task) {
            return Err(Self::not_found(id));
        }
        let exit = task.shim_delete("").await?;
        tracing::debug!(id, elapsed = ?began.elapsed(), "shim deleted the task");
        self.lock().remove(&key);
        task.stop_log();
        // The shim is done with the bundle once Delete returned (its socket
        // lives elsewhere, its rootfs is unmounted).
        let bundle = task.bundle.clone();
        let records = self.records.clone();
        let removed = blocking(move || {
            if let Ok(address) = bundle.address() {
                records.record(&bundle.namespace, &bundle.id, &address)?;
            }
            bundle.delete()
        })
        .await;
        self.retire(key, task.clone());
        removed?;
        tracing::debug!(id, elapsed = ?began.elapsed(), "task deleted");
        Ok(exit)
    }

    /// Shuts a deleted task's shim down in the background. The shim answers
    /// Shutdown once its `runc delete` is over (it starts when the init
    /// exits), which the client need not wait for: only a new task of the
    /// same id must (runc refuses an id it still has), and it does, in
    /// [`TaskManager::create`].
    fn retire(&self, key: Key, task: Arc<Task>) {
        let records = self.records.clone();
        let (namespace, id) = key.clone();
        let delay = retire_delay();
        let shutdown = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            task.shutdown().await;
            records.forget(&namespace, &id);
        });
        let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        retiring.retain(|_, handle| !handle.is_finished());
        retiring.insert(key, shutdown);
    }

    /// Waits until the shim of a deleted task `key` has shut down.
    async fn wait_retired(&self, key: &Key) {
        let pending = self
            .retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if let Some(shutdown) = pending {
            let _ = shutdown.await;
        }
    }

    /// Waits for every deleted task's shim to shut down: the daemon calls it
    /// as it stops, so no shim is left without its Shutdown.
    pub async fn settle(&self) {
        let pending: Vec<_> = self
            .retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, handle)| handle)
            .collect();
        for shutdown in pending {
            let _ = shutdown.await;
        }
    }

    /// Watches the task's shim; a dropped connection means a dead shim.
    fn monitor(self: &Arc<Self>, task: Arc<Task>) {
        let manager = Arc::downgrade(self);
        tokio::spawn(async move {
            let result = task.wait_ttrpc("").await;
            let Some(manager) = manager.upgrade() else {
                return;
            };
            match result {
                Ok(_) => {}
                Err(err) if is_connection_lost(&err) => manager.shim_died(&task).await,
                Err(err) => tracing::debug!(id = %task.id, error = %err, "wait ended"),
            }
        });
    }

    /// containerd's `cleanupAfterDeadShim`: report the exit, clean up.
    async fn shim_died(&self, task: &Arc<Task>) {
        let key = Self::key(&task.namespace, &task.id);
        let still_ours = {
            let mut tasks = self.lock();
            match tasks.get(&key) {
                Some(current) if Arc::ptr_eq(current, task) => tasks.remove(&key).is_some(),
                _ => false,
            }
        };
        if !still_ours {
            return;
        }
        tracing::warn!(namespace = %task.namespace, id = %task.id, "shim died: cleaning up");
        task.stop_log();
        self.cleanup_dead(&task.command, &task.bundle, task.pid())
            .await;
    }

    async fn cleanup_dead(&self, command: &ShimCommand, bundle: &Bundle, pid: u32) {
        let exit = match command.delete().await {
            Ok(reply) => Exit {
                pid: if reply.pid == 0 { pid } else { reply.pid },
                status: reply.exit_status,
                exited_at: crate::convert::timestamp_from_shim(&reply.exited_at),
            },
            Err(err) => {
                tracing::warn!(id = %bundle.id, error = %err, "shim delete failed");
                Exit {
                    pid,
                    status: 128 + 9,
                    exited_at: Some(SystemTime::now()),
                }
            }
        };
        self.publish_exit(&bundle.namespace, &bundle.id, &bundle.id, exit);
        let stamp = exit.exited_at.map(prost_types::Timestamp::from);
        let event = TaskDelete {
            container_id: bundle.id.clone(),
            pid: exit.pid,
            exit_status: exit.status,
            exited_at: stamp,
            id: String::new(),
        };
        (self.publisher)(&bundle.namespace, "/tasks/delete", pack(&event));
        let bundle = bundle.clone();
        if let Err(err) = blocking(move || bundle.delete()).await {
            tracing::warn!(error = %err, "remove bundle of dead shim");
        }
    }

    fn publish_exit(&self, namespace: &str, container: &str, id: &str, exit: Exit) {
        let event = TaskExit {
            container_id: container.to_string(),
            id: id.to_string(),
            pid: exit.pid,
            exit_status: exit.status,
            exited_at: exit.exited_at.map(prost_types::Timestamp::from),
        };
        (self.publisher)(namespace, "/tasks/exit", pack(&event));
    }

    /// After a daemon restart: reconnects every live shim below the bundles
    /// directory and cleans up the bundles of dead ones. Returns how many
    /// tasks were adopted.
    /// Shuts down the shims of tasks deleted by a daemon that died before
    /// their Shutdown (see [`crate::retiring`]); returns how many answered.
    async fn shut_down_orphans(&self) -> usize {
        let records = self.records.clone();
        let listed = blocking(move || Ok(records.list()))
            .await
            .unwrap_or_default();
        let mut stopped = 0;
        for record in listed {
            let key = Self::key(&record.namespace, &record.id);
            // A task of the same id adopted just now is a newer shim.
            if !self.lock().contains_key(&key) {
                let (ns, id) = (&record.namespace, &record.id);
                if let Ok((shim, _)) = ShimClient::connect(&record.address, ns, id, None).await {
                    crate::task::shutdown_shim(&shim, id).await;
                    tracing::info!(namespace = %ns, %id, "orphaned shim of a deleted task shut down");
                    stopped += 1;
                }
            }
            self.records.forget(&record.namespace, &record.id);
        }
        stopped
    }

    pub async fn recover(self: &Arc<Self>) -> usize {
        let dir = self.dir.clone();
        let bundles = blocking(move || Ok(Bundle::list(&dir)))
            .await
            .unwrap_or_default();
        let mut adopted = 0;
        for bundle in bundles {
            match self.adopt(&bundle).await {
                Ok(()) => adopted += 1,
                Err(err) => {
                    tracing::info!(namespace = %bundle.namespace, id = %bundle.id, error = %err, "shim gone: cleaning up bundle");
                    let binary = bundle.shim_binary().unwrap_or_default();
                    let command = self.command(binary, &bundle);
                    self.cleanup_dead(&command, &bundle, 0).await;
                }
            }
        }
        self.shut_down_orphans().await;
        adopted
    }

    async fn adopt(self: &Arc<Self>, bundle: &Bundle) -> Result<()> {
        let address = bundle.address()?;
        let log = crate::log::follow(bundle)?.abort_handle();
        let connected = ShimClient::connect(&address, &bundle.namespace, &bundle.id, None).await;
        let (shim, connected) = connected.inspect_err(|_| log.abort())?;
        let binary = bundle.shim_binary().unwrap_or_default();
        let command = self.command(binary, bundle);
        let task = Arc::new(Task::new(bundle.clone(), shim, command, connected.task_pid));
        task.set_log(log);
        let state = match task.state("").await {
            Ok(state) => state,
            Err(err) => {
                // The shim lives but has no task: the daemon died between
                // starting it and its Create. The caller cleans up as for a
                // dead shim (`shim delete`, the bundle); without this the
                // shim itself would idle forever with nothing pointing at it.
                // Not `now`: a shim that serves other containers of its
                // group (a pod's) stays for them.
                crate::task::shutdown_shim(&task.shim, &bundle.id).await;
                task.stop_log();
                return Err(err);
            }
        };
        if state.status == Status::Stopped {
            // The exit happened while no daemon listened.
            let exit = Exit {
                pid: state.pid,
                status: state.exit_status,
                exited_at: state.exited_at,
            };
            self.publish_exit(&bundle.namespace, &bundle.id, &bundle.id, exit);
        }
        tracing::info!(namespace = %bundle.namespace, id = %bundle.id, pid = state.pid, "task adopted");
        self.lock()
            .insert(Self::key(&bundle.namespace, &bundle.id), task.clone());
        self.monitor(task);
        Ok(())
    }
}

/// A pause before a deleted task's shim is sent Shutdown: none, unless the
/// test hook `BERTH_TEST_RETIRE_DELAY_MS` asks for one, so a test can kill
/// the daemon inside that window (see [`crate::retiring`]).
fn retire_delay() -> std::time::Duration {
    std::env::var("BERTH_TEST_RETIRE_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or_default()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("blocking task failed: {e}")))?
}
