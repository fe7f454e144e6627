//! A container in a pod: what it was created as (kept in its container
//! record's extension) and its status, which is also written to
//! `<root>/containers/<id>/status` on every change so that a restarted
//! daemon knows when it started and how it ended.

use super::Keyed;
use berth_core::{Error, Result};
use k8s_cri::v1::{ContainerConfig, ContainerResources};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A container's fixed facts, stored as the extension
/// [`ContainerMetadata::EXTENSION`] of its record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerMetadata {
    /// The container id (64 hex digits).
    pub id: String,
    /// The reserved name.
    pub name: String,
    /// Its pod.
    pub sandbox_id: String,
    /// The CRI config it was created with.
    pub config: ContainerConfig,
    /// The image's id (its config digest).
    pub image_ref: String,
    /// The log file (the pod's log directory joined with the config's
    /// `log_path`); empty for none.
    pub log_path: String,
    /// The signal StopContainer sends first (the image's `StopSignal`,
    /// default `SIGTERM`).
    pub stop_signal: String,
}

impl ContainerMetadata {
    /// The container record extension that holds it (containerd's key).
    pub const EXTENSION: &'static str = "io.cri-containerd.container.metadata";
    /// The type URL its JSON is stored under.
    pub const TYPE_URL: &'static str = "io.berth.cri.v1.ContainerMetadata";
}

/// A container's state, derived from its status as containerd derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Started and not finished.
    Running,
    /// Finished.
    Exited,
    /// Not known (e.g. its task could not be loaded).
    Unknown,
}

/// What changes over a container's life (containerd's `container.Status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// The init process's pid.
    pub pid: u32,
    /// Nanoseconds since the epoch; 0 for never.
    pub created_at: i64,
    /// Nanoseconds since the epoch; 0 for never.
    pub started_at: i64,
    /// Nanoseconds since the epoch; 0 for never.
    pub finished_at: i64,
    /// The exit code once finished.
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, … once finished.
    pub reason: String,
    /// A human-readable detail.
    pub message: String,
    /// StartContainer is running (not persisted).
    #[serde(skip)]
    pub starting: bool,
    /// RemoveContainer is running (not persisted).
    #[serde(skip)]
    pub removing: bool,
    /// The status could not be loaded (not persisted).
    #[serde(skip)]
    pub unknown: bool,
    /// The resources it runs with, updated by UpdateContainerResources.
    pub resources: Option<ContainerResources>,
}

impl ContainerStatus {
    /// The CRI state.
    pub fn state(&self) -> ContainerState {
        if self.unknown {
            ContainerState::Unknown
        } else if self.finished_at != 0 {
            ContainerState::Exited
        } else if self.started_at != 0 {
            ContainerState::Running
        } else if self.created_at != 0 {
            ContainerState::Created
        } else {
            ContainerState::Unknown
        }
    }
}

/// A container.
#[derive(Debug)]
pub struct Container {
    /// Fixed facts.
    pub metadata: ContainerMetadata,
    status: Mutex<ContainerStatus>,
    /// The status file.
    status_path: PathBuf,
    /// Held by Start/Stop/Remove so that they take turns.
    pub lifecycle: tokio::sync::Mutex<()>,
    /// The writer of its CRI log once started (ReopenContainerLog swaps
    /// its file).
    log: Mutex<Option<crate::logs::Sink>>,
    /// Its stdio as attached clients see it, once started.
    pub(crate) attach: crate::container::attach::AttachPoint,
}

impl Container {
    /// A container whose status lives in `<dir>/status`; writes `status`
    /// there.
    pub fn new(metadata: ContainerMetadata, status: ContainerStatus, dir: &Path) -> Result<Self> {
        let container = Container {
            metadata,
            status: Mutex::new(ContainerStatus::default()),
            status_path: dir.join("status"),
            lifecycle: tokio::sync::Mutex::new(()),
            log: Mutex::new(None),
            attach: Default::default(),
        };
        container.update(|s| *s = status)?;
        Ok(container)
    }

    /// A container whose status is read back from `<dir>/status` (after a
    /// restart); an unreadable file gives an `unknown` status.
    pub fn load(metadata: ContainerMetadata, dir: &Path) -> Self {
        let status_path = dir.join("status");
        let status = std::fs::read(&status_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(ContainerStatus {
                unknown: true,
                ..ContainerStatus::default()
            });
        Container {
            metadata,
            status: Mutex::new(status),
            status_path,
            lifecycle: tokio::sync::Mutex::new(()),
            log: Mutex::new(None),
            attach: Default::default(),
        }
    }

    /// A copy of the current status.
    pub fn status(&self) -> ContainerStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the status and writes it to the status file (atomically:
    /// a temporary file renamed over it). If the write fails the change is
    /// undone.
    pub fn update<R>(&self, change: impl FnOnce(&mut ContainerStatus) -> R) -> Result<R> {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = status.clone();
        let out = change(&mut next);
        write_status(&self.status_path, &next)?;
        *status = next;
        Ok(out)
    }

    /// Keeps the writer of its CRI log (once its output is copied there).
    pub(crate) fn set_log(&self, sink: crate::logs::Sink) {
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    /// The writer of its CRI log, once started.
    pub(crate) fn log(&self) -> Option<crate::logs::Sink> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes only the fields that are not persisted (starting, removing).
    pub fn update_transient<R>(&self, change: impl FnOnce(&mut ContainerStatus) -> R) -> R {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn write_status(path: &Path, status: &ContainerStatus) -> Result<()> {
    let io = |e: std::io::Error| Error::internal(format!("write {}: {e}", path.display()));
    let bytes =
        serde_json::to_vec(status).map_err(|e| Error::internal(format!("encode status: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Keyed for Container {
    fn id(&self) -> &str {
        &self.metadata.id
    }
    const KIND: &'static str = "container";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_survives_a_reload_and_gives_the_state() {
        let dir = tempfile::tempdir().expect("must succeed");
        let meta = ContainerMetadata {
            id: "c1".into(),
            ..Default::default()
        };
        let c = Container::new(
            meta.clone(),
            ContainerStatus {
                created_at: 1,
                ..Default::default()
            },
            dir.path(),
        )
        .expect("must succeed");
        assert_eq!(c.status().state(), ContainerState::Created);
        c.update(|s| s.started_at = 2).expect("must succeed");
        c.update_transient(|s| s.removing = true);
        let again = Container::load(meta.clone(), dir.path());
        assert_eq!(again.status().state(), ContainerState::Running);
        assert!(!again.status().removing);
        c.update(|s| {
            s.finished_at = 3;
            s.exit_code = 1;
        })
        .expect("must succeed");
        let again = Container::load(meta.clone(), dir.path());
        assert_eq!(again.status().state(), ContainerState::Exited);
        assert_eq!(again.status().exit_code, 1);
        let missing = Container::load(meta, &dir.path().join("nope"));
        assert_eq!(missing.status().state(), ContainerState::Unknown);
    }
}
