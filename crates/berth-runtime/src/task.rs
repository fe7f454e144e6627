//! A task handle: one container's init process and its execs, behind a shim.

use crate::binary::ShimCommand;
use crate::bundle::Bundle;
use crate::convert::{from_shim, timestamp_from_shim, to_shim};
use crate::error::from_ttrpc;
use crate::shim::ShimClient;
use berth_api::pb::types::Mount;
use berth_core::Result;
use containerd_shim_protos::api;
use protobuf::well_known_types::empty::Empty;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

/// How long a shim gets to answer `Shutdown` before the daemon moves on.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// containerd's task status numbers (`containerd.v1.types.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Unknown.
    Unknown = 0,
    /// Created, not started.
    Created = 1,
    /// Running.
    Running = 2,
    /// Exited.
    Stopped = 3,
    /// Frozen.
    Paused = 4,
    /// Being frozen.
    Pausing = 5,
}

impl Status {
    fn from_i32(value: i32) -> Status {
        match value {
            1 => Status::Created,
            2 => Status::Running,
            3 => Status::Stopped,
            4 => Status::Paused,
            5 => Status::Pausing,
            _ => Status::Unknown,
        }
    }
}

/// A process's state as the shim reports it.
#[derive(Debug, Clone)]
pub struct ProcessState {
    /// The process id in the task: the container id for init, else the exec id.
    pub id: String,
    /// The host pid (0 before start for execs).
    pub pid: u32,
    /// The status.
    pub status: Status,
    /// Stdio paths.
    pub stdin: String,
    /// Stdio paths.
    pub stdout: String,
    /// Stdio paths.
    pub stderr: String,
    /// Whether it has a terminal.
    pub terminal: bool,
    /// The exit status once stopped.
    pub exit_status: u32,
    /// When it exited.
    pub exited_at: Option<SystemTime>,
}

/// A process's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The pid that exited.
    pub pid: u32,
    /// Its exit status (128 + signal for a signalled process).
    pub status: u32,
    /// When.
    pub exited_at: Option<SystemTime>,
}

/// What a task is created with.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    /// Rootfs mounts the shim mounts on `<bundle>/rootfs` (empty: the spec's root path).
    pub rootfs: Vec<Mount>,
    /// Stdio paths (FIFOs or log URIs).
    pub stdin: String,
    /// Stdio paths.
    pub stdout: String,
    /// Stdio paths.
    pub stderr: String,
    /// Allocate a terminal.
    pub terminal: bool,
    /// Task options for the shim (e.g. runc options).
    pub options: Option<prost_types::Any>,
}

/// What an exec is created with.
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    /// The exec id.
    pub exec_id: String,
    /// Stdio paths.
    pub stdin: String,
    /// Stdio paths.
    pub stdout: String,
    /// Stdio paths.
    pub stderr: String,
    /// Allocate a terminal.
    pub terminal: bool,
    /// The OCI process spec.
    pub spec: Option<prost_types::Any>,
}

/// A running (or stopped, not yet deleted) task.
#[derive(Debug)]
pub struct Task {
    /// The namespace.
    pub namespace: String,
    /// The task (container) id.
    pub id: String,
    /// The bundle.
    pub bundle: Bundle,
    pub(crate) shim: ShimClient,
    pub(crate) command: ShimCommand,
    pid: AtomicU32,
    /// Copies the shim's log FIFO into the daemon log; aborted on delete.
    pub(crate) log: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// Held by the delete in progress, so a second delete of this task
    /// waits for the first's outcome instead of racing it to the shim (see
    /// [`crate::TaskManager::delete`]).
    pub(crate) deleting: tokio::sync::Mutex<()>,
}

fn any(
    value: Option<prost_types::Any>,
) -> Result<protobuf::MessageField<protobuf::well_known_types::any::Any>> {
    Ok(match value {
        Some(a) => protobuf::MessageField::some(to_shim(&a)?),
        None => protobuf::MessageField::none(),
    })
}

impl Task {
    pub(crate) fn new(bundle: Bundle, shim: ShimClient, command: ShimCommand, pid: u32) -> Task {
        Task {
            namespace: bundle.namespace.clone(),
            id: bundle.id.clone(),
            bundle,
            shim,
            command,
            pid: AtomicU32::new(pid),
            log: std::sync::Mutex::new(None),
            deleting: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn set_log(&self, log: tokio::task::AbortHandle) {
        let mut slot = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(log) {
            old.abort();
        }
    }

    pub(crate) fn stop_log(&self) {
        if let Some(log) = self.log.lock().unwrap_or_else(|e| e.into_inner()).take() {
            log.abort();
        }
    }

    /// The init process's pid.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// The shim's task API (`containerd.task.v2.Task` or v3).
    pub fn api(&self) -> &'static str {
        self.shim.service()
    }

    pub(crate) async fn create(&self, opts: CreateOpts) -> Result<u32> {
        let rootfs = opts
            .rootfs
            .iter()
            .map(to_shim)
            .collect::<Result<Vec<_>>>()?;
        let request = api::CreateTaskRequest {
            id: self.id.clone(),
            bundle: self.bundle.path.to_string_lossy().into_owned(),
            rootfs,
            terminal: opts.terminal,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            options: any(opts.options)?,
            ..Default::default()
        };
        let reply: api::CreateTaskResponse = self.shim.call("Create", &request).await?;
        self.pid.store(reply.pid, Ordering::Relaxed);
        Ok(reply.pid)
    }

    /// Starts init (`exec_id` empty) or an exec; returns its pid.
    pub async fn start(&self, exec_id: &str) -> Result<u32> {
        let request = api::StartRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let reply: api::StartResponse = self.shim.call("Start", &request).await?;
        if exec_id.is_empty() {
            self.pid.store(reply.pid, Ordering::Relaxed);
        }
        Ok(reply.pid)
    }

    /// The state of init or an exec.
    pub async fn state(&self, exec_id: &str) -> Result<ProcessState> {
        let request = api::StateRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let reply: api::StateResponse = self
            .shim
            .call("State", &request)
            .await
            .map_err(|err| crate::error::gone_as_not_found(err, &self.id))?;
        Ok(ProcessState {
            id: if exec_id.is_empty() {
                self.id.clone()
            } else {
                exec_id.to_string()
            },
            pid: reply.pid,
            status: Status::from_i32(reply.status.value()),
            stdin: reply.stdin,
            stdout: reply.stdout,
            stderr: reply.stderr,
            terminal: reply.terminal,
            exit_status: reply.exit_status,
            exited_at: timestamp_from_shim(&reply.exited_at),
        })
    }

    /// Signals init or an exec (`all`: every process in the container).
    pub async fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let request = api::KillRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            signal,
            all,
            ..Default::default()
        };
        self.shim.call::<_, Empty>("Kill", &request).await.map(drop)
    }

    /// Adds an exec process (started with [`Task::start`]).
    pub async fn exec(&self, opts: ExecOpts) -> Result<()> {
        let request = api::ExecProcessRequest {
            id: self.id.clone(),
            exec_id: opts.exec_id,
            terminal: opts.terminal,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            spec: any(opts.spec)?,
            ..Default::default()
        };
        self.shim.call::<_, Empty>("Exec", &request).await.map(drop)
    }

    /// Waits for init or an exec to exit.
    pub async fn wait(&self, exec_id: &str) -> Result<Exit> {
        self.wait_ttrpc(exec_id).await.map_err(from_ttrpc)
    }

    /// [`Task::wait`] keeping the ttrpc error, so the daemon's monitor can
    /// tell a dead shim from the shim's answer.
    pub(crate) async fn wait_ttrpc(&self, exec_id: &str) -> ttrpc::Result<Exit> {
        let request = api::WaitRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let reply: api::WaitResponse = self.shim.call_ttrpc("Wait", &request).await?;
        Ok(Exit {
            pid: 0,
            status: reply.exit_status,
            exited_at: timestamp_from_shim(&reply.exited_at),
        })
    }

    /// Deletes an exited exec process.
    pub async fn delete_process(&self, exec_id: &str) -> Result<Exit> {
        self.shim_delete(exec_id).await
    }

    pub(crate) async fn shim_delete(&self, exec_id: &str) -> Result<Exit> {
        let request = api::DeleteRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let reply: api::DeleteResponse = self.shim.call("Delete", &request).await?;
        Ok(Exit {
            pid: reply.pid,
            status: reply.exit_status,
            exited_at: timestamp_from_shim(&reply.exited_at),
        })
    }

    /// Asks the shim to exit; it may close the connection before answering.
    pub(crate) async fn shutdown(&self) {
        shutdown_shim(&self.shim, &self.id).await
    }

    /// Freezes the container.
    pub async fn pause(&self) -> Result<()> {
        let request = api::PauseRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        self.shim
            .call::<_, Empty>("Pause", &request)
            .await
            .map(drop)
    }

    /// Thaws the container.
    pub async fn resume(&self) -> Result<()> {
        let request = api::ResumeRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        self.shim
            .call::<_, Empty>("Resume", &request)
            .await
            .map(drop)
    }

    /// The container's processes (containerd's `ProcessInfo` messages).
    pub async fn pids(&self) -> Result<Vec<berth_api::pb::types::v1::ProcessInfo>> {
        let request = api::PidsRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        let reply: api::PidsResponse = self.shim.call("Pids", &request).await?;
        reply.processes.iter().map(from_shim).collect()
    }

    /// Closes the stdin of init or an exec.
    pub async fn close_io(&self, exec_id: &str, stdin: bool) -> Result<()> {
        let request = api::CloseIORequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            stdin,
            ..Default::default()
        };
        self.shim
            .call::<_, Empty>("CloseIO", &request)
            .await
            .map(drop)
    }

    /// Resizes the terminal of init or an exec.
    pub async fn resize_pty(&self, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let request = api::ResizePtyRequest {
            id: self.id.clone(),
            exec_id: exec_id.to_string(),
            width,
            height,
            ..Default::default()
        };
        self.shim
            .call::<_, Empty>("ResizePty", &request)
            .await
            .map(drop)
    }

    /// Updates the container's resources.
    pub async fn update(
        &self,
        resources: Option<prost_types::Any>,
        annotations: std::collections::HashMap<String, String>,
    ) -> Result<()> {
        let request = api::UpdateTaskRequest {
            id: self.id.clone(),
            resources: any(resources)?,
            annotations,
            ..Default::default()
        };
        self.shim
            .call::<_, Empty>("Update", &request)
            .await
            .map(drop)
    }

    /// Checkpoints the container to `path` (needs criu in the shim's runtime).
    pub async fn checkpoint(&self, path: &str, options: Option<prost_types::Any>) -> Result<()> {
        let request = api::CheckpointTaskRequest {
            id: self.id.clone(),
            path: path.to_string(),
            options: any(options)?,
            ..Default::default()
        };
        self.shim
            .call::<_, Empty>("Checkpoint", &request)
            .await
            .map(drop)
    }

    /// The container's metrics (a cgroups `Metrics` message as an `Any`).
    pub async fn stats(&self) -> Result<Option<prost_types::Any>> {
        let request = api::StatsRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        let reply: api::StatsResponse = self.shim.call("Stats", &request).await?;
        reply.stats.as_ref().map(from_shim).transpose()
    }
}

/// Asks a shim to exit once its work is done: a shim still serving other
/// containers of its group stays. It may close the connection before
/// answering.
pub(crate) async fn shutdown_shim(shim: &ShimClient, id: &str) {
    let request = api::ShutdownRequest {
        id: id.to_string(),
        ..Default::default()
    };
    let _ = shim
        .call_timeout::<_, Empty>("Shutdown", &request, SHUTDOWN_TIMEOUT)
        .await;
}
