//! ReopenContainerLog: after the kubelet renamed a running container's log
//! file, later entries go to a new file at the same path (containerd's
//! `ReopenContainerLog`). The file is swapped under the log writer's lock,
//! so no entry is lost or split between the two files.

use crate::store::ContainerState;
use crate::Cri;
use berth_core::{Error, Result};
use k8s_cri::v1::*;

impl Cri {
    pub(crate) async fn reopen_container_log(
        &self,
        r: ReopenContainerLogRequest,
    ) -> Result<ReopenContainerLogResponse> {
        let container = self.containers.get(&r.container_id).map_err(|e| {
            e.context(format!(
                "an error occurred when try to find container {:?}",
                r.container_id
            ))
        })?;
        if container.status().state() != ContainerState::Running {
            return Err(Error::failed_precondition("container is not running"));
        }
        let path = &container.metadata.log_path;
        if path.is_empty() {
            return Ok(ReopenContainerLogResponse {});
        }
        let sink = container
            .log()
            .ok_or_else(|| Error::failed_precondition("container is not running"))?;
        sink.reopen(std::path::Path::new(path))?;
        Ok(ReopenContainerLogResponse {})
    }
}
