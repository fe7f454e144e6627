//! ContainerStats, ListContainerStats, PodSandboxStats and
//! ListPodSandboxStats.
//!
//! Figures come from the cgroup files, read by the one reader berth has
//! ([`berth_core::cgroups`]): a container's cgroup is its spec's
//! `linux.cgroupsPath`; a pod's is its cgroup parent (the pause
//! container's own cgroup when the pod has none). The writable layer's
//! usage is the snapshotter's usage of the container's snapshot, and a
//! pod's network figures are its network namespace's `/proc/<pause
//! pid>/net/dev`.
//!
//! `usage_nano_cores` is a rate: as containerd does, the last CPU sample
//! of each container and pod is kept in memory ([`CpuSamples`]) and the
//! rate is the usage between it and the new one; the first call answers
//! none.

mod cgroup;
mod container;
mod network;
mod sandbox;

pub(crate) use cgroup::CpuSamples;

use std::time::SystemTime;

/// Now, in nanoseconds since the epoch.
fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A CRI `UInt64Value`.
fn uint(value: u64) -> Option<k8s_cri::v1::UInt64Value> {
    Some(k8s_cri::v1::UInt64Value { value })
}

/// The `linux.cgroupsPath` of a container record's spec; none when unset.
fn cgroups_path(spec: Option<&prost_types::Any>) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_slice(&spec?.value).ok()?;
    spec.pointer("/linux/cgroupsPath")?
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}
