//! Containers in pods: Create (the spec from the CRI config merged with
//! the image's), Start (with CRI-format logs), Stop, Remove, Status, List
//! and ExecSync.
//!
//! A CRI container is a container record in `k8s.io` (its CRI metadata in
//! the record's extension), a rootfs snapshot keyed by its id, a directory
//! `<root>/containers/<id>` (status file, image volumes) and a directory
//! `<state>/containers/<id>` (the FIFOs of its stdio). Once started, a
//! waiter follows its task: when the process exits the task is deleted,
//! the log copies drain, and the exit is written to the status, as
//! containerd's event monitor does.
//!
//! | module | owns |
//! |---|---|
//! | `create` | CreateContainer: name, image, snapshot, record, rollback |
//! | `spec` | the OCI spec from the CRI config, the pod and the image |
//! | `security` | capabilities, user and groups, seccomp, AppArmor |
//! | `resources` | cgroup resources and paths |
//! | `mounts` | bind mounts, propagation and devices |
//! | `volumes` | image volumes and their copy-up |
//! | `start` | StartContainer, the logs' copies and the exit waiter |
//! | `stop`, `remove` | StopContainer, RemoveContainer, and both for a pod |
//! | `status`, `list` | ContainerStatus, ListContainers |
//! | `exec_sync` | ExecSync |
//! | `exec`, `attach` | the streaming Exec and Attach behind the stream server |
//! | `events` | GetContainerEvents: created, started, stopped, deleted |
//! | `checkpoint` | CheckpointContainer: refused (no CRIU) |
//! | `update` | UpdateContainerResources: the spec and the running task |
//! | `log_reopen` | ReopenContainerLog: the log file swapped after rotation |
//! | `recover` | containers reloaded after a restart |

pub(crate) mod attach;
mod checkpoint;
mod create;
pub(crate) mod events;
mod exec;
mod exec_sync;
mod list;
mod log_reopen;
mod mounts;
mod recover;
mod remove;
mod resources;
mod security;
mod spec;
mod start;
mod status;
mod stop;
mod update;
mod volumes;

use crate::{store, Cri};
use berth_core::Result;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A streaming client's side of an exec or attach.
pub(crate) struct StreamIo {
    pub(crate) stdin: Option<crate::stream::Inbound>,
    pub(crate) stdout: Option<crate::stream::Outbound>,
    pub(crate) stderr: Option<crate::stream::Outbound>,
    pub(crate) resize: Option<tokio::sync::mpsc::Receiver<crate::stream::TerminalSize>>,
}

/// What the kubelet's streaming server checks of an Exec or Attach.
fn check_streams(id: &str, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<()> {
    if id.is_empty() {
        return Err(berth_core::Error::invalid_argument(
            "missing required container_id",
        ));
    }
    if tty && stderr {
        return Err(berth_core::Error::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(berth_core::Error::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

impl Cri {
    /// The full id of a running container (`id` may be a prefix).
    fn running_container(&self, id: &str) -> Result<String> {
        let container = self.containers.get(id)?;
        let state = container.status().state();
        if state != store::ContainerState::Running {
            return Err(berth_core::Error::failed_precondition(format!(
                "container is in {} state",
                start::state_name(state)
            )));
        }
        Ok(container.metadata.id.clone())
    }
}

/// The container record label that marks CRI containers (containerd's
/// `io.cri-containerd.kind`).
pub(crate) const KIND_LABEL: &str = "io.cri-containerd.kind";

impl Cri {
    /// `<root>/containers/<id>`: the status file and image volumes.
    fn container_root_dir(&self, id: &str) -> PathBuf {
        self.options.root.join("containers").join(id)
    }

    /// `<state>/containers/<id>`: the stdio FIFOs.
    fn container_state_dir(&self, id: &str) -> PathBuf {
        self.options.state.join("containers").join(id)
    }
}

/// `<root>/sandboxes/<id>`: a pod's hostname, hosts and resolv.conf (as
/// containerd keeps them).
fn pod_files_dir(options: &crate::CriOptions, id: &str) -> PathBuf {
    options.root.join("sandboxes").join(id)
}

/// `<state>/sandboxes/<id>`: where a pod's `/dev/shm` is.
fn pod_shm_parent(options: &crate::CriOptions, id: &str) -> PathBuf {
    options.state.join("sandboxes").join(id)
}

/// Nanoseconds since the epoch.
fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The exit code and reason of a container whose end nobody saw.
pub(crate) const UNKNOWN_EXIT_CODE: i32 = 255;
/// The reason reported with [`UNKNOWN_EXIT_CODE`].
pub(crate) const UNKNOWN_EXIT_REASON: &str = "Unknown";

/// Writes an exit to the status; without a reason, `Completed` or
/// `Error` by the code.
fn record_exit(
    container: &store::Container,
    code: i32,
    at: SystemTime,
    reason: Option<&str>,
) -> Result<()> {
    container.update(|s| {
        s.pid = 0;
        s.finished_at = unix_nanos(at).max(s.started_at);
        s.exit_code = code;
        s.reason = match reason {
            Some(r) => r.to_string(),
            None if code == 0 => "Completed".into(),
            None => "Error".into(),
        };
    })
}
