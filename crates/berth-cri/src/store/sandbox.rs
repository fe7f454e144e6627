//! A pod sandbox: what it was created as (kept in its container record's
//! extension, so it survives restarts) and what it is now.

use super::Keyed;
use k8s_cri::v1::PodSandboxConfig;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// A sandbox's fixed facts, stored as the extension
/// [`SandboxMetadata::EXTENSION`] of its pause container's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxMetadata {
    /// The sandbox id (64 hex digits; also the pause container's id).
    pub id: String,
    /// The reserved name (`<name>_<namespace>_<uid>_<attempt>`).
    pub name: String,
    /// The CRI config it was run with.
    pub config: PodSandboxConfig,
    /// The network namespace's path; empty for host networking.
    pub netns_path: String,
    /// The pod's IP (the first address CNI gave, IPv4 first).
    pub ip: String,
    /// Further addresses (dual stack).
    pub additional_ips: Vec<String>,
    /// The runtime handler's name.
    pub runtime_handler: String,
    /// The CNI result, as JSON, for the verbose status.
    pub cni_result: Option<serde_json::Value>,
}

impl SandboxMetadata {
    /// The container record extension that holds it (containerd's key).
    pub const EXTENSION: &'static str = "io.cri-containerd.sandbox.metadata";
    /// The type URL its JSON is stored under.
    pub const TYPE_URL: &'static str = "io.berth.cri.v1.SandboxMetadata";
}

/// A sandbox's state, as CRI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxState {
    /// Being set up by RunPodSandbox.
    #[default]
    Unknown,
    /// The pause container runs.
    Ready,
    /// Stopped, or its pause container exited.
    NotReady,
}

/// What changes over a sandbox's life.
#[derive(Debug, Clone, Default)]
pub struct SandboxStatus {
    /// The pause process's pid (0 once stopped).
    pub pid: u32,
    /// When RunPodSandbox created it, in nanoseconds since the epoch.
    pub created_at: i64,
    /// Its state.
    pub state: SandboxState,
}

/// A pod sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// Fixed facts.
    pub metadata: SandboxMetadata,
    /// Current status.
    pub status: Mutex<SandboxStatus>,
    /// Held while the sandbox is being stopped or removed, so that
    /// concurrent Stop/Remove calls take turns.
    pub lifecycle: tokio::sync::Mutex<()>,
}

impl Sandbox {
    /// A sandbox with `metadata` in `status`.
    pub fn new(metadata: SandboxMetadata, status: SandboxStatus) -> Self {
        Sandbox {
            metadata,
            status: Mutex::new(status),
            lifecycle: tokio::sync::Mutex::new(()),
        }
    }

    /// A copy of the current status.
    pub fn status(&self) -> SandboxStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the status under its lock.
    pub fn update<R>(&self, change: impl FnOnce(&mut SandboxStatus) -> R) -> R {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Keyed for Sandbox {
    fn id(&self) -> &str {
        &self.metadata.id
    }
    const KIND: &'static str = "sandbox";
}
