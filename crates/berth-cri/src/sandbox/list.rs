//! ListPodSandbox, with the CRI filter: an id (or unique prefix of one),
//! a state, and labels that must all match.

use super::status::cri_state;
use crate::store::Sandbox;
use crate::Cri;
use berth_core::{ErrorKind, Result};
use k8s_cri::v1::*;
use std::sync::Arc;

impl Cri {
    pub(crate) async fn list_pod_sandbox(
        &self,
        request: ListPodSandboxRequest,
    ) -> Result<ListPodSandboxResponse> {
        let filter = request.filter.unwrap_or_default();
        let candidates = if filter.id.is_empty() {
            self.sandboxes.list()
        } else {
            // An unknown or ambiguous prefix matches nothing, as in containerd.
            match self.sandboxes.get(&filter.id) {
                Ok(sandbox) => vec![sandbox],
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
                    Vec::new()
                }
                Err(e) => return Err(e),
            }
        };
        let items = candidates
            .iter()
            .filter(|s| matches(s, &filter))
            .map(|s| to_cri(s))
            .collect();
        Ok(ListPodSandboxResponse { items })
    }
}

fn matches(sandbox: &Arc<Sandbox>, filter: &PodSandboxFilter) -> bool {
    if let Some(state) = &filter.state {
        if cri_state(sandbox.status().state) as i32 != state.state {
            return false;
        }
    }
    let labels = &sandbox.metadata.config.labels;
    filter
        .label_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

fn to_cri(sandbox: &Sandbox) -> PodSandbox {
    let status = sandbox.status();
    let metadata = &sandbox.metadata;
    PodSandbox {
        id: metadata.id.clone(),
        metadata: metadata.config.metadata.clone(),
        state: cri_state(status.state) as i32,
        created_at: status.created_at,
        labels: metadata.config.labels.clone(),
        annotations: metadata.config.annotations.clone(),
        runtime_handler: metadata.runtime_handler.clone(),
    }
}
