//! StopPodSandbox: every container of the pod is killed, the pause task is
//! killed and deleted, the pod's shm unmounted, and its network torn down
//! (CNI DEL, then the namespace). Idempotent: stopping a stopped pod is
//! fine, and a CNI DEL that failed is tried again by the next stop.

use super::files::SandboxFiles;
use super::spec;
use crate::store::{Sandbox, SandboxState};
use crate::Cri;
use berth_core::Result;
use k8s_cri::v1::{StopPodSandboxRequest, StopPodSandboxResponse};

impl Cri {
    pub(crate) async fn stop_pod_sandbox(
        &self,
        request: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse> {
        let sandbox = self.sandboxes.get(&request.pod_sandbox_id).map_err(|e| {
            e.context(format!(
                "an error occurred when try to find sandbox {:?}",
                request.pod_sandbox_id
            ))
        })?;
        let _turn = sandbox.lifecycle.lock().await;
        self.stop_sandbox(&sandbox).await?;
        Ok(StopPodSandboxResponse {})
    }

    /// The stop itself; the caller holds the sandbox's lifecycle lock.
    pub(crate) async fn stop_sandbox(&self, sandbox: &Sandbox) -> Result<()> {
        let id = sandbox.metadata.id.as_str();
        self.stop_containers_of(id).await?;
        let files = SandboxFiles::new(&self.options.root, &self.options.state, id);
        files
            .unmount_shm()
            .await
            .map_err(|e| e.context("failed to cleanup sandbox files"))?;
        self.kill_and_delete_task(id)
            .await
            .map_err(|e| e.context(format!("failed to stop sandbox container {id:?}")))?;
        sandbox.update(|status| {
            status.state = SandboxState::NotReady;
            status.pid = 0;
        });
        if !spec::host_network(&sandbox.metadata.config) {
            self.network
                .detach(id)
                .await
                .map_err(|e| e.context(format!("failed to destroy network for sandbox {id:?}")))?;
        }
        Ok(())
    }
}
