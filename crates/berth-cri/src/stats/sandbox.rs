//! PodSandboxStats and ListPodSandboxStats, with CRI's filters: id (any
//! unique prefix) and a label selector. As containerd's, the list holds
//! the ready pods only.

use super::{cgroup, cgroups_path, network, now_nanos};
use crate::store::{self, SandboxState};
use crate::Cri;
use berth_core::cgroups;
use berth_core::{Error, Result};
use k8s_cri::v1::*;

impl Cri {
    /// PodSandboxStats.
    pub(crate) async fn pod_sandbox_stats(
        &self,
        r: PodSandboxStatsRequest,
    ) -> Result<PodSandboxStatsResponse> {
        let sandbox = self.sandboxes.get(&r.pod_sandbox_id)?;
        if sandbox.status().state != SandboxState::Ready {
            return Err(Error::not_found(format!(
                "pod sandbox {} is not ready",
                sandbox.metadata.id
            )));
        }
        let stats = self.pod_stats_of(&sandbox).await?;
        Ok(PodSandboxStatsResponse { stats: Some(stats) })
    }

    /// ListPodSandboxStats.
    pub(crate) async fn list_pod_sandbox_stats(
        &self,
        r: ListPodSandboxStatsRequest,
    ) -> Result<ListPodSandboxStatsResponse> {
        let mut filter = r.filter.unwrap_or_default();
        if !filter.id.is_empty() {
            match self.sandboxes.get(&filter.id) {
                Ok(s) => filter.id = s.metadata.id.clone(),
                Err(_) => return Ok(ListPodSandboxStatsResponse::default()),
            }
        }
        let mut stats = Vec::new();
        for sandbox in self.sandboxes.list() {
            if !matches(&sandbox, &filter) {
                continue;
            }
            // A pod removed meanwhile is left out.
            match self.pod_stats_of(&sandbox).await {
                Ok(s) => stats.push(s),
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(ListPodSandboxStatsResponse { stats })
    }

    /// One pod's figures: its cgroup's CPU and memory, its network
    /// namespace's interfaces and its running containers' stats.
    async fn pod_stats_of(&self, sandbox: &store::Sandbox) -> Result<PodSandboxStats> {
        let meta = &sandbox.metadata;
        let pid = sandbox.status().pid;
        let parent = meta
            .config
            .linux
            .as_ref()
            .map(|l| l.cgroup_parent.clone())
            .filter(|p| !p.is_empty());
        // The pod's cgroup is its cgroup parent; without one, the pause
        // container's own.
        let path = match parent {
            Some(parent) => Some(parent),
            None => cgroups_path(self.client.containers().get(&meta.id).await?.spec.as_ref()),
        };
        let timestamp = now_nanos();
        let samples = cgroups::locate(path.as_deref(), pid)
            .map(|location| cgroups::read(&location))
            .unwrap_or_default();
        let containers = self
            .stats_matching(&ContainerStatsFilter {
                pod_sandbox_id: meta.id.clone(),
                ..Default::default()
            })
            .await?;
        Ok(PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                id: meta.id.clone(),
                metadata: meta.config.metadata.clone(),
                labels: meta.config.labels.clone(),
                annotations: meta.config.annotations.clone(),
            }),
            linux: Some(LinuxPodSandboxStats {
                cpu: cgroup::cpu(&samples, &meta.id, timestamp, &self.cpu_samples),
                memory: cgroup::memory(&samples, timestamp),
                network: network::usage(pid, timestamp),
                process: None,
                containers,
            }),
            windows: None,
        })
    }
}

/// Whether a ready pod passes the (expanded) filter.
fn matches(sandbox: &store::Sandbox, filter: &PodSandboxStatsFilter) -> bool {
    let meta = &sandbox.metadata;
    sandbox.status().state == SandboxState::Ready
        && (filter.id.is_empty() || meta.id == filter.id)
        && filter
            .label_selector
            .iter()
            .all(|(k, v)| meta.config.labels.get(k) == Some(v))
}
