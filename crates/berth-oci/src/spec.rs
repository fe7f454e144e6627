//! The runtime-spec types berth fills, in `specs-go`'s field order. Fields
//! berth does not set are kept as raw JSON in the parent's `extra`, so a spec
//! read and written back loses nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Unknown fields, kept as they were.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The whole spec (`config.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// `ociVersion`.
    #[serde(rename = "ociVersion")]
    pub version: String,
    /// The container process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// The root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    /// The hostname.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Mounts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Linux-specific configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
    /// Everything else (hooks, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The container process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// Allocate a terminal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
    /// The user.
    pub user: User,
    /// The command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// Capability sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    /// `no_new_privs`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_privileges: bool,
    /// Everything else (apparmor, oomScoreAdj, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The process's user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The uid.
    pub uid: u32,
    /// The gid.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    /// The user name (informational).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
}

/// Capability sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Bounding set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounding: Vec<String>,
    /// Effective set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effective: Vec<String>,
    /// Inheritable set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inheritable: Vec<String>,
    /// Permitted set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permitted: Vec<String>,
    /// Ambient set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<String>,
}

/// One rlimit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rlimit {
    /// e.g. `RLIMIT_NOFILE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Hard limit.
    pub hard: u64,
    /// Soft limit.
    pub soft: u64,
}

/// The root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Path, relative to the bundle or absolute.
    pub path: String,
    /// Mount it read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

/// One mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// Where, in the container.
    pub destination: String,
    /// The filesystem type.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The source.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Mount options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Linux-specific configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// Cgroup resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The cgroups path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroups_path: String,
    /// Namespaces to create or join.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    /// Paths masked from the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    /// Everything else (seccomp, devices, sysctl, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// `pid`, `network`, `mount`, `ipc`, `uts`, `user`, `cgroup`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A namespace to join instead of creating one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// Cgroup resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// The device allow/deny list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRule>,
    /// Memory limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// CPU limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Everything else (pids, blockIO, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A device cgroup rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// Allow or deny.
    pub allow: bool,
    /// `c`, `b` or `a`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Major number (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// Minor number (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// `rwm` subset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access: String,
}

/// Memory limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Everything else (swap, reservation, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// CPU limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// Relative weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    /// Quota per period, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    /// Period, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// Everything else (cpus, mems, …).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Spec {
    /// The spec as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a spec always serialises")
    }

    /// Parses a spec.
    pub fn from_json(bytes: &[u8]) -> Result<Spec, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The process, created empty if missing.
    pub fn process_mut(&mut self) -> &mut Process {
        self.process.get_or_insert_with(Process::default)
    }

    /// The Linux section, created empty if missing.
    pub fn linux_mut(&mut self) -> &mut Linux {
        self.linux.get_or_insert_with(Linux::default)
    }

    /// The Linux resources, created empty if missing.
    pub fn resources_mut(&mut self) -> &mut Resources {
        self.linux_mut()
            .resources
            .get_or_insert_with(Resources::default)
    }
}
