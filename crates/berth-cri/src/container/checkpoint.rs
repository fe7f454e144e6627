//! CheckpointContainer: not supported. Checkpointing a container needs
//! CRIU to dump its processes, and berth does not support CRIU, so a known
//! container gets `Unimplemented` with that reason (an unknown one
//! `NotFound`).

use crate::Cri;
use berth_core::{Error, Result};
use k8s_cri::v1::*;

impl Cri {
    pub(crate) async fn checkpoint_container(
        &self,
        r: CheckpointContainerRequest,
    ) -> Result<CheckpointContainerResponse> {
        self.containers
            .get(&r.container_id)
            .map_err(|e| e.context(format!("failed to find container {:?}", r.container_id)))?;
        Err(Error::not_implemented(
            "CheckpointContainer: checkpointing a container needs CRIU, which berth does not support",
        ))
    }
}
