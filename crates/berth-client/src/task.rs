//! Running processes: a container's [`Task`] (its init process) and the
//! [`Process`]es exec'd into it — containerd's `Task` and `Process`.
//!
//! A task is made by [`crate::container::Container::new_task`] in the
//! *created* state: the shim and `runc create` have run, the process
//! waits for [`Task::start`]. [`Task::wait`] starts a Wait request in the
//! background at once and hands back a future for the exit. The daemon
//! keeps a process's exit until the process is deleted, so calling it
//! before `start` (as containerd's `Wait` is meant to be used) cannot miss
//! an exit however fast the process is, and the future needs no polling
//! for the request to be on its way. [`Task::delete`] removes a stopped task,
//! waits for its output to be copied out, and removes its FIFOs.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::SystemTime;

use berth_core::{Error, Result};
use berth_oci::spec::Process as ProcessSpec;
use prost_types::Any;
use tokio::task::JoinHandle;

use crate::cio::{Attached, Io, IoConfig, Streams};
use crate::pb::services::v1::ExecProcessRequest;
use crate::pb::types::v1::{ProcessInfo, Status as WireStatus};
use crate::pb::types::Metric;
use crate::time::from_timestamp;
use crate::Client;

/// `SIGKILL`.
pub const SIGKILL: u32 = 9;
/// `SIGTERM`, what `kill` sends by default.
pub const SIGTERM: u32 = 15;

/// containerd's type URL for a runtime-spec process (an exec's spec).
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// A signal by name (`SIGKILL`, `KILL`, case-insensitive) or number, as
/// ctr's `--signal` takes it.
pub fn parse_signal(text: &str) -> Result<u32> {
    if let Ok(number) = text.parse::<u32>() {
        return Ok(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as u32)
        .map_err(|_| Error::invalid_argument(format!("invalid signal {text:?}")))
}

/// How a process exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; 128 + N for a process killed by signal N.
    pub code: u32,
    /// When it exited.
    pub exited_at: SystemTime,
}

/// A process's state (`Status` in containerd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Created, running, stopped, paused, …
    pub status: WireStatus,
    /// The exit code, once stopped.
    pub exit_status: u32,
    /// When it exited, once stopped.
    pub exited_at: SystemTime,
}

/// The exit of a process, being waited for; see [`Task::wait`].
#[derive(Debug)]
pub struct ExitWaiter {
    handle: JoinHandle<Result<ExitStatus>>,
}

impl Future for ExitWaiter {
    type Output = Result<ExitStatus>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(|e| Err(Error::internal(format!("wait: {e}")))))
    }
}

impl Drop for ExitWaiter {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// What a task and a process share: which process, and its stdio.
#[derive(Debug)]
struct Proc {
    client: Client,
    container_id: String,
    exec_id: String,
    pid: Mutex<u32>,
    io: Arc<Mutex<Attached>>,
}

impl Proc {
    fn io(&self) -> MutexGuard<'_, Attached> {
        self.io
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pid(&self) -> u32 {
        *self.pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn start(&self) -> Result<u32> {
        let pid = self
            .client
            .tasks()
            .start(&self.container_id, &self.exec_id)
            .await?;
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = pid;
        // The process exists: input may flow now. When it ends, the shim is
        // told to close the process's stdin (it keeps its FIFO end open).
        if let Some(eof) = self.io().start_stdin() {
            let (client, id, exec) = (
                self.client.clone(),
                self.container_id.clone(),
                self.exec_id.clone(),
            );
            tokio::spawn(async move {
                if eof.await.is_ok() {
                    let _ = client.tasks().close_stdin(&id, &exec).await;
                }
            });
        }
        Ok(pid)
    }

    fn wait(&self) -> ExitWaiter {
        let (client, id, exec) = (
            self.client.clone(),
            self.container_id.clone(),
            self.exec_id.clone(),
        );
        let handle = tokio::spawn(async move {
            let response = client.tasks().wait(&id, &exec).await?;
            Ok(ExitStatus {
                code: response.exit_status,
                exited_at: from_timestamp(response.exited_at.as_ref()),
            })
        });
        ExitWaiter { handle }
    }

    async fn status(&self) -> Result<Status> {
        let process = self
            .client
            .tasks()
            .get_process(&self.container_id, &self.exec_id)
            .await?;
        Ok(Status {
            status: WireStatus::try_from(process.status).unwrap_or(WireStatus::Unknown),
            exit_status: process.exit_status,
            exited_at: from_timestamp(process.exited_at.as_ref()),
        })
    }

    async fn kill(&self, signal: u32, all: bool) -> Result<()> {
        self.client
            .tasks()
            .kill(&self.container_id, &self.exec_id, signal, all)
            .await
    }

    async fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.client
            .tasks()
            .resize_pty(&self.container_id, &self.exec_id, width, height)
            .await
    }

    async fn close_stdin(&self) -> Result<()> {
        self.client
            .tasks()
            .close_stdin(&self.container_id, &self.exec_id)
            .await
    }

    /// Refuses to delete a live process, as containerd's client does.
    async fn check_stopped(&self, what: &str) -> Result<()> {
        let status = self.status().await?;
        match status.status {
            WireStatus::Stopped | WireStatus::Unknown => Ok(()),
            other => Err(Error::failed_precondition(format!(
                "{what} must be stopped before deletion: {}",
                other.as_str_name().to_lowercase()
            ))),
        }
    }

    /// After the daemon deleted the process: its shim has closed the FIFOs,
    /// so the copies end once everything is written out; then the FIFOs go.
    async fn finish_io(&self) {
        let mut io = std::mem::replace(&mut *self.io(), Attached::loaded(IoConfig::default()));
        io.wait().await;
        io.remove_fifos().await;
    }

    fn exit(response: &crate::pb::services::v1::DeleteResponse) -> ExitStatus {
        ExitStatus {
            code: response.exit_status,
            exited_at: from_timestamp(response.exited_at.as_ref()),
        }
    }
}

/// A container's task: its init process, in the daemon.
#[derive(Debug)]
pub struct Task {
    proc: Proc,
}

impl Task {
    pub(crate) fn new(client: Client, id: &str, pid: u32, io: Attached) -> Task {
        Task {
            proc: Proc {
                client,
                container_id: id.to_string(),
                exec_id: String::new(),
                pid: Mutex::new(pid),
                io: Arc::new(Mutex::new(io)),
            },
        }
    }

    /// The container's id (a task is named after its container).
    pub fn id(&self) -> &str {
        &self.proc.container_id
    }

    /// The init process's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The stdio paths the daemon was given.
    pub fn io_config(&self) -> IoConfig {
        self.proc.io().config.clone()
    }

    /// The FIFO ends of a task created with [`Io::fifos`] (once).
    pub fn take_streams(&self) -> Option<Streams> {
        self.proc.io().take_streams()
    }

    /// Starts the init process; returns its pid.
    pub async fn start(&self) -> Result<u32> {
        self.proc.start().await
    }

    /// Starts waiting for the init process to exit (in the background,
    /// at once) and returns the exit to await. Call it before
    /// [`Task::start`]: however fast the process, its exit is not missed.
    /// Must be called within a tokio runtime.
    pub async fn wait(&self) -> Result<ExitWaiter> {
        Ok(self.proc.wait())
    }

    /// The init process's state.
    pub async fn status(&self) -> Result<Status> {
        self.proc.status().await
    }

    /// Sends `signal` to the init process, or with `all` to every process
    /// of the task.
    pub async fn kill(&self, signal: u32, all: bool) -> Result<()> {
        self.proc.kill(signal, all).await
    }

    /// Freezes every process of the task.
    pub async fn pause(&self) -> Result<()> {
        self.proc.client.tasks().pause(self.id()).await
    }

    /// Thaws the task.
    pub async fn resume(&self) -> Result<()> {
        self.proc.client.tasks().resume(self.id()).await
    }

    /// The processes running in the task.
    pub async fn pids(&self) -> Result<Vec<ProcessInfo>> {
        self.proc.client.tasks().pids(self.id()).await
    }

    /// The task's cgroup metrics (`data` is containerd's cgroups v1 or v2
    /// `Metrics` message).
    pub async fn metrics(&self) -> Result<Metric> {
        let filter = format!("id=={}", self.id());
        let metrics = self.proc.client.tasks().metrics(&[filter]).await?;
        metrics
            .into_iter()
            .find(|m| m.id == self.id())
            .ok_or_else(|| Error::not_found(format!("metrics for task {}", self.id())))
    }

    /// Resizes the init process's terminal.
    pub async fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.proc.resize(width, height).await
    }

    /// Closes the init process's stdin.
    pub async fn close_stdin(&self) -> Result<()> {
        self.proc.close_stdin().await
    }

    /// Adds process `exec_id` running `spec` (usually the container's
    /// process with other args), with `io` as its stdio; it does not start
    /// it. The spec's `terminal` follows `io`.
    pub async fn exec(&self, exec_id: &str, mut spec: ProcessSpec, io: Io) -> Result<Process> {
        let mut attached = io.create(exec_id).await?;
        let config = attached.config.clone();
        spec.terminal = config.terminal;
        let value = serde_json::to_vec(&spec)
            .map_err(|e| Error::invalid_argument(format!("process spec: {e}")))?;
        let request = ExecProcessRequest {
            container_id: self.id().to_string(),
            stdin: config.stdin,
            stdout: config.stdout,
            stderr: config.stderr,
            terminal: config.terminal,
            spec: Some(Any {
                type_url: PROCESS_TYPE_URL.to_string(),
                value,
            }),
            exec_id: exec_id.to_string(),
        };
        if let Err(err) = self.proc.client.tasks().exec(request).await {
            attached.cancel();
            attached.remove_fifos().await;
            return Err(err);
        }
        Ok(Process {
            proc: Proc {
                client: self.proc.client.clone(),
                container_id: self.id().to_string(),
                exec_id: exec_id.to_string(),
                pid: Mutex::new(0),
                io: Arc::new(Mutex::new(attached)),
            },
        })
    }

    /// Deletes the stopped task (`FailedPrecondition` while it runs),
    /// waits for its output to be copied out, removes its FIFOs, and
    /// returns how it exited.
    pub async fn delete(&self) -> Result<ExitStatus> {
        self.proc.check_stopped("task").await?;
        let response = self.proc.client.tasks().delete(self.id()).await?;
        self.proc.finish_io().await;
        Ok(Proc::exit(&response))
    }
}

/// A process exec'd into a task.
#[derive(Debug)]
pub struct Process {
    proc: Proc,
}

impl Process {
    /// The exec id.
    pub fn id(&self) -> &str {
        &self.proc.exec_id
    }

    /// The pid, once started (0 before).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The FIFO ends of a process created with [`Io::fifos`] (once).
    pub fn take_streams(&self) -> Option<Streams> {
        self.proc.io().take_streams()
    }

    /// Starts the process; returns its pid.
    pub async fn start(&self) -> Result<u32> {
        self.proc.start().await
    }

    /// Starts waiting for the exit; see [`Task::wait`].
    pub async fn wait(&self) -> Result<ExitWaiter> {
        Ok(self.proc.wait())
    }

    /// The process's state.
    pub async fn status(&self) -> Result<Status> {
        self.proc.status().await
    }

    /// Sends `signal` to the process.
    pub async fn kill(&self, signal: u32) -> Result<()> {
        self.proc.kill(signal, false).await
    }

    /// Resizes the process's terminal.
    pub async fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.proc.resize(width, height).await
    }

    /// Closes the process's stdin.
    pub async fn close_stdin(&self) -> Result<()> {
        self.proc.close_stdin().await
    }

    /// Deletes the exited process, waits for its output, removes its
    /// FIFOs, and returns how it exited.
    pub async fn delete(&self) -> Result<ExitStatus> {
        self.proc.check_stopped("process").await?;
        let response = self
            .proc
            .client
            .tasks()
            .delete_process(&self.proc.container_id, self.id())
            .await?;
        self.proc.finish_io().await;
        Ok(Proc::exit(&response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_ctr() {
        assert_eq!(parse_signal("SIGKILL").ok(), Some(9));
        assert_eq!(parse_signal("kill").ok(), Some(9));
        assert_eq!(parse_signal("TERM").ok(), Some(15));
        assert_eq!(parse_signal("10").ok(), Some(10));
        assert!(parse_signal("SIGNOPE").is_err());
    }
}
