//! ContainerStatus: the CRI view of one container, with containerd's
//! verbose `info` (pid, snapshot, runtime, config and OCI spec as JSON).

use crate::store::{self, ContainerState};
use crate::Cri;
use berth_core::Result;
use k8s_cri::v1::*;
use std::collections::HashMap;

impl Cri {
    pub(crate) async fn container_status(
        &self,
        r: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse> {
        let container = self.containers.get(&r.container_id)?;
        let meta = &container.metadata;
        let mut image = meta.config.image.clone().unwrap_or_default();
        let mut image_ref = meta.image_ref.clone();
        if let Ok(found) = self.local_image(&meta.image_ref).await {
            let is_tag = |r: &&String| !r.contains('@') && **r != found.id;
            if let Some(tag) = found.references.iter().find(is_tag) {
                image = ImageSpec {
                    image: tag.clone(),
                    ..ImageSpec::default()
                };
            }
            if let Some(digest) = found.references.iter().find(|r| r.contains('@')) {
                image_ref = digest.clone();
            }
        }
        let status = container.status();
        let info = if r.verbose {
            self.container_verbose_info(&container).await
        } else {
            HashMap::new()
        };
        Ok(ContainerStatusResponse {
            status: Some(ContainerStatus {
                id: meta.id.clone(),
                metadata: meta.config.metadata.clone(),
                state: cri_state(status.state()) as i32,
                created_at: status.created_at,
                started_at: status.started_at,
                finished_at: status.finished_at,
                exit_code: status.exit_code,
                image_id: meta.image_ref.clone(),
                image: Some(image),
                image_ref,
                reason: reason(&status),
                message: status.message.clone(),
                labels: meta.config.labels.clone(),
                annotations: meta.config.annotations.clone(),
                mounts: meta.config.mounts.clone(),
                log_path: meta.log_path.clone(),
                resources: status.resources.clone(),
                ..ContainerStatus::default()
            }),
            info,
        })
    }

    /// containerd's verbose `info` key: a JSON document.
    async fn container_verbose_info(
        &self,
        container: &store::Container,
    ) -> HashMap<String, String> {
        let meta = &container.metadata;
        let status = container.status();
        let record = self.client.containers().get(&meta.id).await.ok();
        let spec = record
            .as_ref()
            .and_then(|r| r.spec.as_ref())
            .and_then(|any| serde_json::from_slice::<serde_json::Value>(&any.value).ok());
        let info = serde_json::json!({
            "sandboxID": meta.sandbox_id,
            "pid": status.pid,
            "removing": status.removing,
            "snapshotKey": record.as_ref().map(|r| r.snapshot_key.clone()),
            "snapshotter": record.as_ref().map(|r| r.snapshotter.clone()),
            "runtimeType": record.as_ref().and_then(|r| r.runtime.as_ref()).map(|r| r.name.clone()),
            "config": meta.config,
            "runtimeSpec": spec,
        });
        HashMap::from([("info".to_string(), info.to_string())])
    }
}

/// The CRI state of a store state.
pub(super) fn cri_state(state: ContainerState) -> k8s_cri::v1::ContainerState {
    use k8s_cri::v1::ContainerState as Cri;
    match state {
        ContainerState::Created => Cri::ContainerCreated,
        ContainerState::Running => Cri::ContainerRunning,
        ContainerState::Exited => Cri::ContainerExited,
        ContainerState::Unknown => Cri::ContainerUnknown,
    }
}

/// The reason reported: the recorded one, or for an exit without one
/// `Completed` (code 0) or `Error`.
fn reason(status: &store::ContainerStatus) -> String {
    if status.state() == ContainerState::Exited && status.reason.is_empty() {
        return if status.exit_code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
    }
    status.reason.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_without_a_reason_get_one() {
        let exited = |code| store::ContainerStatus {
            created_at: 1,
            started_at: 2,
            finished_at: 3,
            exit_code: code,
            ..Default::default()
        };
        assert_eq!(reason(&exited(0)), "Completed");
        assert_eq!(reason(&exited(2)), "Error");
        let oom = store::ContainerStatus {
            reason: "OOMKilled".into(),
            ..exited(137)
        };
        assert_eq!(reason(&oom), "OOMKilled");
        assert_eq!(
            super::super::start::state_name(ContainerState::Created),
            "CONTAINER_CREATED"
        );
    }
}
