//! RemovePodSandbox: the pod is stopped first, then its containers (task,
//! record and snapshot), the pause container, its files and its name go.
//! Removing a pod that does not exist succeeds, as in containerd.

use super::files::SandboxFiles;
use crate::Cri;
use berth_core::{ErrorKind, Result};
use k8s_cri::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};

impl Cri {
    pub(crate) async fn remove_pod_sandbox(
        &self,
        request: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse> {
        let sandbox = match self.sandboxes.get(&request.pod_sandbox_id) {
            Ok(sandbox) => sandbox,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::debug!(id = %request.pod_sandbox_id, "RemovePodSandbox of a sandbox that does not exist");
                return Ok(RemovePodSandboxResponse {});
            }
            Err(e) => return Err(e),
        };
        let _turn = sandbox.lifecycle.lock().await;
        let id = sandbox.metadata.id.as_str();
        self.stop_sandbox(&sandbox)
            .await
            .map_err(|e| e.context(format!("failed to forcibly stop sandbox {id:?}")))?;
        self.remove_containers_of(id).await?;
        self.delete_record_and_snapshot(id)
            .await
            .map_err(|e| e.context(format!("failed to delete sandbox container {id:?}")))?;
        SandboxFiles::new(&self.options.root, &self.options.state, id)
            .remove()
            .await
            .map_err(|e| e.context(format!("failed to remove sandbox directories of {id:?}")))?;
        self.sandboxes.remove(id);
        self.cpu_samples.forget(id);
        self.sandbox_names.release(&sandbox.metadata.name);
        Ok(RemovePodSandboxResponse {})
    }
}
