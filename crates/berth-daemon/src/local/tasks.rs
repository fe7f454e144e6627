//! Tasks: containerd's `plugins/services/tasks/local.go`. A task belongs to a
//! container record; its spec and runtime come from there, the process is the
//! runtime's (`berth-runtime`).

use super::blocking;
use super::network::{NetworkRequest, Networking};
use crate::convert::any_to_wire;
use berth_core::filters::{Adaptor, Filter};
use berth_core::{Error, Result};
use berth_runtime::{CreateOpts, ExecOpts, Exit, ProcessState, Task, TaskManager};
use berth_store::{Container, MetadataStore};
use std::collections::HashMap;
use std::sync::Arc;

/// containerd's plugin type for the runtime v2 task manager.
pub const RUNTIME_PLUGIN: &str = "io.containerd.runtime.v2";

/// What a task create asks for, besides the container.
#[derive(Debug, Default)]
pub struct CreateRequest {
    /// The container id.
    pub container_id: String,
    /// Rootfs mounts and stdio, as the client sent them.
    pub opts: CreateOpts,
    /// A checkpoint to restore from (not supported).
    pub checkpoint: bool,
}

/// The tasks service.
pub struct Tasks {
    store: MetadataStore,
    manager: Arc<TaskManager>,
    network: Arc<Networking>,
}

/// A task's fields for containerd's filters (`id`, `namespace`).
struct TaskFields<'a>(&'a Task);

impl Adaptor for TaskFields<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [f] if f == "id" => Some(self.0.id.clone()),
            [f] if f == "namespace" => Some(self.0.namespace.clone()),
            _ => None,
        }
    }
}

impl Tasks {
    /// A service over the metadata store, the task manager and networking.
    pub fn new(store: MetadataStore, manager: Arc<TaskManager>, network: Arc<Networking>) -> Self {
        Tasks {
            store,
            manager,
            network,
        }
    }

    async fn container(&self, namespace: &str, id: &str) -> Result<Container> {
        let (store, ns, id) = (self.store.clone(), namespace.to_string(), id.to_string());
        blocking(move || store.get_container(&ns, &id)).await
    }

    /// The task of a container that exists (containerd checks the container
    /// first, so a missing container is its own `NotFound`).
    pub async fn task(&self, namespace: &str, id: &str) -> Result<Arc<Task>> {
        self.container(namespace, id).await?;
        self.manager.get(namespace, id)
    }

    /// Creates the task of a container; returns its init pid.
    pub async fn create(&self, namespace: &str, mut request: CreateRequest) -> Result<u32> {
        if request.checkpoint {
            return Err(Error::not_implemented(
                "restoring a task from a checkpoint is not supported",
            ));
        }
        let id = request.container_id.clone();
        let container = self.container(namespace, &id).await?;
        if self.manager.get(namespace, &id).is_ok() {
            return Err(Error::already_exists(format!("task {id}")));
        }
        let mut spec = container
            .spec
            .as_ref()
            .map(|s| s.value.clone())
            .ok_or_else(|| Error::invalid_argument(format!("container {id:?} has no spec")))?;
        // containerd: task options, else the container's runtime options.
        if request.opts.options.is_none() {
            request.opts.options = container.runtime.options.clone().map(any_to_wire);
        }
        // Step 5 of the flow: the network namespace and its CNI network,
        // ready before runc creates the task inside it (once the network of
        // a deleted task of the same id is gone: same namespace path, same
        // cache entry).
        let network = NetworkRequest::from_labels(&container.labels)?;
        let publishes = network.as_ref().is_some_and(|n| !n.ports.is_empty());
        self.network.wait_detached(namespace, &id, publishes).await;
        if let Some(network) = &network {
            spec = self
                .network
                .setup(namespace, &container, network, &spec)
                .await?;
        }
        let created = self
            .manager
            .create(namespace, &id, &container.runtime.name, &spec, request.opts)
            .await;
        match created {
            Ok(task) => Ok(task.pid()),
            Err(err) if network.is_some() => match self.network.teardown(namespace, &id).await {
                Ok(()) => Err(err),
                Err(cleanup) => Err(Error::new(
                    err.kind(),
                    format!("{}; network cleanup also failed: {cleanup}", err.message()),
                )),
            },
            Err(err) => Err(err),
        }
    }

    /// Starts init or an exec; returns the pid.
    pub async fn start(&self, namespace: &str, id: &str, exec_id: &str) -> Result<u32> {
        self.task(namespace, id).await?.start(exec_id).await
    }

    /// Deletes a stopped task, then its network (if it had one), in the
    /// background (see [`Networking::teardown_in_background`]). A task that
    /// is gone already (its shim died) still has its network removed.
    pub async fn delete(&self, namespace: &str, id: &str) -> Result<Exit> {
        let container = self.container(namespace, id).await?;
        let exit = self.manager.delete(namespace, id).await;
        let gone = match &exit {
            Ok(_) => true,
            Err(err) => err.is_not_found(),
        };
        if gone && NetworkRequest::from_labels(&container.labels).is_ok_and(|r| r.is_some()) {
            self.network.teardown_in_background(namespace, id);
        }
        exit
    }

    /// Deletes an exited exec.
    pub async fn delete_process(&self, namespace: &str, id: &str, exec_id: &str) -> Result<Exit> {
        if exec_id.is_empty() {
            return Err(Error::invalid_argument(
                "exec id must be set to delete a process",
            ));
        }
        self.task(namespace, id)
            .await?
            .delete_process(exec_id)
            .await
    }

    /// The state of init or an exec.
    pub async fn get(&self, namespace: &str, id: &str, exec_id: &str) -> Result<ProcessState> {
        self.task(namespace, id).await?.state(exec_id).await
    }

    /// The state of every task in the namespace passing `filter`.
    pub async fn list(&self, namespace: &str, filter: &str) -> Result<Vec<(String, ProcessState)>> {
        let filter = if filter.is_empty() {
            Filter::always()
        } else {
            Filter::parse(filter)?
        };
        let mut states = Vec::new();
        for task in self.manager.list(namespace) {
            if !filter.matches(&TaskFields(&task)) {
                continue;
            }
            match task.state("").await {
                Ok(state) => states.push((task.id.clone(), state)),
                Err(err) => tracing::warn!(id = %task.id, error = %err, "task state"),
            }
        }
        Ok(states)
    }

    /// Signals init or an exec.
    pub async fn kill(
        &self,
        namespace: &str,
        id: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<()> {
        self.task(namespace, id)
            .await?
            .kill(exec_id, signal, all)
            .await
    }

    /// Adds an exec process.
    pub async fn exec(&self, namespace: &str, id: &str, opts: ExecOpts) -> Result<()> {
        if opts.exec_id.is_empty() {
            return Err(Error::invalid_argument("exec id must be set"));
        }
        self.task(namespace, id).await?.exec(opts).await
    }

    /// Resizes a terminal.
    pub async fn resize_pty(
        &self,
        namespace: &str,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        self.task(namespace, id)
            .await?
            .resize_pty(exec_id, width, height)
            .await
    }

    /// Closes stdin.
    pub async fn close_io(
        &self,
        namespace: &str,
        id: &str,
        exec_id: &str,
        stdin: bool,
    ) -> Result<()> {
        self.task(namespace, id)
            .await?
            .close_io(exec_id, stdin)
            .await
    }

    /// Freezes the task.
    pub async fn pause(&self, namespace: &str, id: &str) -> Result<()> {
        self.task(namespace, id).await?.pause().await
    }

    /// Thaws the task.
    pub async fn resume(&self, namespace: &str, id: &str) -> Result<()> {
        self.task(namespace, id).await?.resume().await
    }

    /// The task's processes.
    pub async fn pids(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Vec<berth_api::pb::types::v1::ProcessInfo>> {
        self.task(namespace, id).await?.pids().await
    }

    /// Updates resources.
    pub async fn update(
        &self,
        namespace: &str,
        id: &str,
        resources: Option<prost_types::Any>,
        annotations: HashMap<String, String>,
    ) -> Result<()> {
        self.task(namespace, id)
            .await?
            .update(resources, annotations)
            .await
    }

    /// Checkpoints are not supported: containerd writes them to the content
    /// store as an image, and criu cannot dump on the kernels berth targets.
    pub async fn checkpoint(&self, namespace: &str, id: &str) -> Result<()> {
        self.task(namespace, id).await?;
        Err(Error::not_implemented(
            "checkpointing a task is not supported",
        ))
    }

    /// Metrics of every task passing `filters`: (id, cgroup metrics `Any`).
    pub async fn metrics(
        &self,
        namespace: &str,
        filters: &[String],
    ) -> Result<Vec<(String, prost_types::Any)>> {
        let filter = Filter::parse_all(filters)?;
        let mut metrics = Vec::new();
        for task in self.manager.list(namespace) {
            if !filter.matches(&TaskFields(&task)) {
                continue;
            }
            match task.stats().await {
                Ok(Some(data)) => metrics.push((task.id.clone(), data)),
                Ok(None) => {}
                Err(err) => tracing::warn!(id = %task.id, error = %err, "task metrics"),
            }
        }
        Ok(metrics)
    }

    /// Waits for init or an exec to exit.
    pub async fn wait(&self, namespace: &str, id: &str, exec_id: &str) -> Result<Exit> {
        self.task(namespace, id).await?.wait(exec_id).await
    }
}
