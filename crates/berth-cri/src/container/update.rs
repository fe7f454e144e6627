//! UpdateContainerResources: new CPU and memory limits for a created or
//! running container (containerd's `UpdateContainerResources`). The
//! container record's spec gets the new resources first; a running task is
//! then updated live through the daemon (the shim runs `runc update`), and
//! if that fails (runc refuses a memory limit below the current usage,
//! say) the spec is put back and runc's error is returned. The status's
//! `resources` then show what the container runs with.

use super::resources::with_resources;
use super::start::state_name;
use crate::store::ContainerState;
use crate::Cri;
use berth_client::pb::services::v1::Container as Record;
use berth_client::prost_types::Any;
use berth_core::{Error, Result};
use berth_oci::Spec;
use k8s_cri::v1::*;

/// containerd's type URL for an OCI `LinuxResources` in an `Any`.
const LINUX_RESOURCES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

impl Cri {
    pub(crate) async fn update_container_resources(
        &self,
        r: UpdateContainerResourcesRequest,
    ) -> Result<UpdateContainerResourcesResponse> {
        let container = self
            .containers
            .get(&r.container_id)
            .map_err(|e| e.context(format!("failed to find container {:?}", r.container_id)))?;
        let _turn = container.lifecycle.lock().await;
        let id = &container.metadata.id;
        let state = container.status().state();
        if !matches!(state, ContainerState::Running | ContainerState::Created) {
            return Err(Error::failed_precondition(format!(
                "container {id:?} is in {} state",
                state_name(state)
            )));
        }
        let Some(linux) = r.linux else {
            return Ok(UpdateContainerResourcesResponse {});
        };
        let handle = self.client.load_container(id).await?;
        let old = handle.spec().await?;
        let mut new = old.clone();
        with_resources(&mut new, &linux);
        self.set_spec(id, &new)
            .await
            .map_err(|e| e.context("failed to update container spec"))?;
        if state == ContainerState::Running {
            if let Err(err) = self.update_task(id, &new).await {
                if !err.is_not_found() {
                    if let Err(undo) = self.set_spec(id, &old).await {
                        tracing::warn!(%id, err = %undo, "put back the container spec");
                    }
                    return Err(err.context("failed to update resources"));
                }
                // The task is gone: the container stopped meanwhile, and
                // the new spec applies if it ever runs again.
            }
        }
        container.update(|s| {
            let mut linux_now = s
                .resources
                .as_ref()
                .and_then(|r| r.linux.clone())
                .unwrap_or_default();
            merge(&mut linux_now, &linux);
            s.resources = Some(ContainerResources {
                linux: Some(linux_now),
                ..ContainerResources::default()
            });
        })?;
        Ok(UpdateContainerResourcesResponse {})
    }

    /// Replaces the spec in container `id`'s record.
    async fn set_spec(&self, id: &str, spec: &Spec) -> Result<()> {
        let record = Record {
            id: id.to_string(),
            spec: Some(berth_client::spec::to_any(spec)),
            ..Record::default()
        };
        self.client.containers().update(record, &["spec"]).await?;
        Ok(())
    }

    /// Sends the spec's Linux resources to the running task.
    async fn update_task(&self, id: &str, spec: &Spec) -> Result<()> {
        let resources = spec.linux.as_ref().and_then(|l| l.resources.as_ref());
        let value = serde_json::to_vec(&resources.cloned().unwrap_or_default())
            .map_err(|e| Error::internal(format!("encode resources: {e}")))?;
        let any = Any {
            type_url: LINUX_RESOURCES_TYPE_URL.into(),
            value,
        };
        self.client.tasks().update(id, any).await
    }
}

/// The values `update` sets (non-zero, non-empty) written over `now`, as
/// they are written into the spec.
fn merge(now: &mut LinuxContainerResources, update: &LinuxContainerResources) {
    let set = |to: &mut i64, from: i64| {
        if from != 0 {
            *to = from;
        }
    };
    set(&mut now.cpu_period, update.cpu_period);
    set(&mut now.cpu_quota, update.cpu_quota);
    set(&mut now.cpu_shares, update.cpu_shares);
    set(&mut now.memory_limit_in_bytes, update.memory_limit_in_bytes);
    set(
        &mut now.memory_swap_limit_in_bytes,
        update.memory_swap_limit_in_bytes,
    );
    set(&mut now.oom_score_adj, update.oom_score_adj);
    if !update.cpuset_cpus.is_empty() {
        now.cpuset_cpus = update.cpuset_cpus.clone();
    }
    if !update.cpuset_mems.is_empty() {
        now.cpuset_mems = update.cpuset_mems.clone();
    }
    if !update.hugepage_limits.is_empty() {
        now.hugepage_limits = update.hugepage_limits.clone();
    }
    if !update.unified.is_empty() {
        now.unified = update.unified.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_overwrites_only_what_it_sets() {
        let mut now = LinuxContainerResources {
            cpu_shares: 512,
            cpu_quota: 50_000,
            memory_limit_in_bytes: 64 << 20,
            ..LinuxContainerResources::default()
        };
        merge(
            &mut now,
            &LinuxContainerResources {
                cpu_quota: 20_000,
                cpuset_cpus: "0".into(),
                ..LinuxContainerResources::default()
            },
        );
        assert_eq!(
            (now.cpu_shares, now.cpu_quota, now.memory_limit_in_bytes),
            (512, 20_000, 64 << 20)
        );
        assert_eq!(now.cpuset_cpus, "0");
    }
}
