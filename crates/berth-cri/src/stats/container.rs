//! ContainerStats and ListContainerStats, with CRI's filters: id (any
//! unique prefix), pod (any unique prefix of its id) and a label selector
//! (every pair must match). As containerd's, the list holds the running
//! containers only.

use super::{cgroup, cgroups_path, now_nanos, uint};
use crate::store::{self, ContainerState};
use crate::Cri;
use berth_core::cgroups;
use berth_core::snapshots::Snapshotter;
use berth_core::Result;
use k8s_cri::v1::*;

impl Cri {
    /// ContainerStats.
    pub(crate) async fn container_stats(
        &self,
        r: ContainerStatsRequest,
    ) -> Result<ContainerStatsResponse> {
        let container = self.containers.get(&r.container_id)?;
        let stats = self.stats_of(&container).await?;
        Ok(ContainerStatsResponse { stats: Some(stats) })
    }

    /// ListContainerStats.
    pub(crate) async fn list_container_stats(
        &self,
        r: ListContainerStatsRequest,
    ) -> Result<ListContainerStatsResponse> {
        let mut filter = r.filter.unwrap_or_default();
        if !filter.id.is_empty() {
            match self.containers.get(&filter.id) {
                Ok(c) => filter.id = c.metadata.id.clone(),
                Err(_) => return Ok(ListContainerStatsResponse::default()),
            }
        }
        if !filter.pod_sandbox_id.is_empty() {
            match self.sandboxes.get(&filter.pod_sandbox_id) {
                Ok(s) => filter.pod_sandbox_id = s.metadata.id.clone(),
                Err(_) => return Ok(ListContainerStatsResponse::default()),
            }
        }
        let stats = self.stats_matching(&filter).await?;
        Ok(ListContainerStatsResponse { stats })
    }

    /// The stats of the running containers `filter` (expanded) passes.
    pub(super) async fn stats_matching(
        &self,
        filter: &ContainerStatsFilter,
    ) -> Result<Vec<ContainerStats>> {
        let mut stats = Vec::new();
        for container in self.containers.list() {
            if !matches(&container, filter) {
                continue;
            }
            // A container removed meanwhile is left out.
            match self.stats_of(&container).await {
                Ok(s) => stats.push(s),
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(stats)
    }

    /// One container's figures: its cgroup's CPU and memory (none once
    /// its cgroup is gone) and its writable layer.
    async fn stats_of(&self, container: &store::Container) -> Result<ContainerStats> {
        let meta = &container.metadata;
        let status = container.status();
        let record = self.client.containers().get(&meta.id).await?;
        let cgroups_path = cgroups_path(record.spec.as_ref());
        let timestamp = now_nanos();
        let samples = if status.state() == ContainerState::Running {
            cgroups::locate(cgroups_path.as_deref(), status.pid)
                .map(|location| cgroups::read(&location))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if samples.is_empty() {
            self.cpu_samples.forget(&meta.id);
        }
        let writable_layer = self
            .writable_layer(&record.snapshotter, &record.snapshot_key, timestamp)
            .await;
        Ok(ContainerStats {
            attributes: Some(ContainerAttributes {
                id: meta.id.clone(),
                metadata: meta.config.metadata.clone(),
                labels: meta.config.labels.clone(),
                annotations: meta.config.annotations.clone(),
            }),
            cpu: cgroup::cpu(&samples, &meta.id, timestamp, &self.cpu_samples),
            memory: cgroup::memory(&samples, timestamp),
            writable_layer,
            swap: None,
        })
    }

    /// The snapshotter's usage of the container's snapshot; none when the
    /// snapshotter cannot tell.
    async fn writable_layer(
        &self,
        snapshotter: &str,
        key: &str,
        timestamp: i64,
    ) -> Option<FilesystemUsage> {
        let usage = match self.client.snapshotter(snapshotter).usage(key).await {
            Ok(usage) => usage,
            Err(err) => {
                tracing::debug!(%err, key, "writable layer usage");
                return None;
            }
        };
        let mountpoint = self.snapshotter_root(snapshotter).await.unwrap_or_default();
        Some(FilesystemUsage {
            timestamp,
            fs_id: Some(FilesystemIdentifier { mountpoint }),
            used_bytes: uint(u64::try_from(usage.size).unwrap_or(0)),
            inodes_used: uint(u64::try_from(usage.inodes).unwrap_or(0)),
        })
    }
}

/// Whether a running container passes the (expanded) filter.
fn matches(container: &store::Container, filter: &ContainerStatsFilter) -> bool {
    let meta = &container.metadata;
    container.status().state() == ContainerState::Running
        && (filter.id.is_empty() || meta.id == filter.id)
        && (filter.pod_sandbox_id.is_empty() || meta.sandbox_id == filter.pod_sandbox_id)
        && filter
            .label_selector
            .iter()
            .all(|(k, v)| meta.config.labels.get(k) == Some(v))
}
