//! Start-up: rebuilding the sandbox and container stores from the
//! daemon's container records in `k8s.io` and their tasks, so that a
//! restarted berthd reports the same pods and containers with the same
//! states, exit codes, IPs and network namespaces.

use crate::Cri;
use berth_core::Result;
use std::sync::Arc;

/// Reloads everything CRI made.
pub async fn recover(cri: &Arc<Cri>) -> Result<()> {
    cri.recover_sandboxes().await?;
    cri.recover_containers().await
}
