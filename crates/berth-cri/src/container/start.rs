//! StartContainer: the task with FIFO stdio whose output the CRI logger
//! copies into the log file, its start, and the waiter that records the
//! exit (containerd's `StartContainer` and its exit monitor).

use crate::logs::{self, Stream};
use crate::store::{self, ContainerState};
use crate::Cri;
use berth_client::cio::Io;
use berth_client::task::Task;
use berth_core::{Error, Result};
use k8s_cri::v1::*;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::task::JoinHandle;

/// The exit code and reason of a container that failed to start.
const START_ERROR_CODE: i32 = 128;
const START_ERROR_REASON: &str = "StartError";

impl Cri {
    pub(crate) async fn start_container(
        self: &Arc<Self>,
        r: StartContainerRequest,
    ) -> Result<StartContainerResponse> {
        let container = self.containers.get(&r.container_id)?;
        let _turn = container.lifecycle.lock().await;
        container.update_transient(|s| {
            if s.state() != ContainerState::Created {
                return Err(Error::failed_precondition(format!(
                    "container is in {} state",
                    state_name(s.state())
                )));
            }
            if s.removing {
                return Err(Error::failed_precondition(
                    "container is in removing state, can't be started",
                ));
            }
            if s.starting {
                return Err(Error::failed_precondition(
                    "container is already in starting state",
                ));
            }
            s.starting = true;
            Ok(())
        })?;
        let started = self.start_container_task(&container).await;
        container.update_transient(|s| s.starting = false);
        if let Err(err) = &started {
            let message = err.to_string();
            let _ = container.update(|s| {
                s.pid = 0;
                s.finished_at = super::unix_nanos(SystemTime::now());
                s.exit_code = START_ERROR_CODE;
                s.reason = START_ERROR_REASON.into();
                s.message = message;
            });
        }
        started?;
        let kind = ContainerEventType::ContainerStartedEvent;
        self.container_event(&container.metadata.id, &container.metadata.sandbox_id, kind)
            .await;
        Ok(StartContainerResponse {})
    }

    async fn start_container_task(
        self: &Arc<Self>,
        container: &Arc<store::Container>,
    ) -> Result<()> {
        let meta = &container.metadata;
        let sandbox = self
            .sandboxes
            .get(&meta.sandbox_id)
            .map_err(|e| e.context(format!("sandbox {:?} not found", meta.sandbox_id)))?;
        if sandbox.status().state != store::SandboxState::Ready {
            return Err(Error::failed_precondition(format!(
                "sandbox container {:?} is not running",
                meta.sandbox_id
            )));
        }
        let config = &meta.config;
        let handle = self.client.load_container(&meta.id).await?;
        let io = Io::fifos()
            .fifo_dir(self.container_state_dir(&meta.id).join("io"))
            .terminal(config.tty)
            .stdin(config.stdin);
        let task = handle.new_task(io).await?;
        let outputs = match self.start_container_logs(container, &task).await {
            Ok(outputs) => outputs,
            Err(err) => {
                let _ = self.client.tasks().delete(&meta.id).await;
                return Err(err);
            }
        };
        let exit = task.wait().await?;
        let pid = match task.start().await {
            Ok(pid) => pid,
            Err(err) => {
                let _ = task.kill(berth_client::task::SIGKILL, true).await;
                let _ = exit.await;
                let _ = task.delete().await;
                outputs.abort();
                return Err(err.context(format!("failed to start containerd task {:?}", meta.id)));
            }
        };
        container.update(|s| {
            s.pid = pid;
            s.started_at = super::unix_nanos(SystemTime::now());
        })?;
        self.finish_on_exit(container, task, exit, outputs);
        Ok(())
    }

    /// Records the container's exit when `exit` resolves (in the
    /// background, until the plugin stops).
    pub(super) fn finish_on_exit(
        self: &Arc<Self>,
        container: &Arc<store::Container>,
        task: Task,
        exit: berth_client::task::ExitWaiter,
        outputs: Outputs,
    ) {
        let (cri, container) = (self.clone(), container.clone());
        tokio::spawn(async move {
            tokio::select! {
                exited = exit => cri.finish_container(&container, task, exited, outputs).await,
                () = cri.stopping() => {}
            }
        });
    }

    /// Takes the task's FIFO ends and starts copying its output into the
    /// log file (or nowhere, without one).
    pub(super) async fn start_container_logs(
        &self,
        container: &store::Container,
        task: &Task,
    ) -> Result<Outputs> {
        let meta = &container.metadata;
        let streams = task.take_streams().unwrap_or_default();
        let sink = if meta.log_path.is_empty() {
            logs::Sink::discard()
        } else {
            logs::open(std::path::Path::new(&meta.log_path))?
        };
        container.set_log(sink.clone());
        let max = self.config.max_container_log_line_size;
        let mut copies = Vec::new();
        let attach = &container.attach;
        if let Some(out) = streams.stdout {
            let tee = attach.stdout.clone();
            copies.push(tokio::spawn(logs::redirect(
                out,
                Stream::Stdout,
                sink.clone(),
                max,
                tee,
            )));
        }
        if let Some(err) = streams.stderr {
            let tee = attach.stderr.clone();
            copies.push(tokio::spawn(logs::redirect(
                err,
                Stream::Stderr,
                sink,
                max,
                tee,
            )));
        }
        // Its stdin stays open (for attached clients) until it exits.
        attach.set_stdin(streams.stdin).await;
        Ok(Outputs { copies })
    }

    /// The process exited: delete the task (its shim closes the FIFOs),
    /// let the log copies drain, and record the exit.
    pub(super) async fn finish_container(
        &self,
        container: &store::Container,
        task: Task,
        exited: Result<berth_client::task::ExitStatus>,
        outputs: Outputs,
    ) {
        let id = &container.metadata.id;
        let deleted = task.delete().await;
        if let Err(err) = &deleted {
            if !err.is_not_found() {
                tracing::warn!(%id, %err, "delete exited task");
            }
        }
        outputs.drain().await;
        container.attach.close().await;
        let (code, at) = match (&exited, &deleted) {
            (Ok(exit), _) | (_, Ok(exit)) => (exit.code as i32, exit.exited_at),
            _ => (super::UNKNOWN_EXIT_CODE, SystemTime::now()),
        };
        let mut oom_killed = self.ooms.take(id);
        // An OOM kill is a SIGKILL, whose event may trail the exit a little.
        if code == 128 + 9 && !oom_killed {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            oom_killed = self.ooms.take(id);
        }
        let reason = oom_killed.then_some("OOMKilled");
        let updated = super::record_exit(container, code, at, reason);
        if let Err(err) = updated {
            tracing::warn!(%id, %err, "record container exit");
        }
        let kind = ContainerEventType::ContainerStoppedEvent;
        self.container_event(id, &container.metadata.sandbox_id, kind)
            .await;
    }
}

/// A running container's output copies.
pub(super) struct Outputs {
    copies: Vec<JoinHandle<()>>,
}

impl Outputs {
    async fn drain(self) {
        for copy in self.copies {
            let _ = copy.await;
        }
    }

    fn abort(self) {
        for copy in self.copies {
            copy.abort();
        }
    }
}

/// containerd's names of CRI states in messages.
pub(super) fn state_name(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "CONTAINER_CREATED",
        ContainerState::Running => "CONTAINER_RUNNING",
        ContainerState::Exited => "CONTAINER_EXITED",
        ContainerState::Unknown => "CONTAINER_UNKNOWN",
    }
}
