//! ListContainers, with CRI's filters: id (any unique prefix), state,
//! pod (any unique prefix of its id) and a label selector (every pair
//! must match).

use super::status::cri_state;
use crate::store;
use crate::Cri;
use berth_core::Result;
use k8s_cri::v1::*;

impl Cri {
    pub(crate) async fn list_containers(
        &self,
        r: ListContainersRequest,
    ) -> Result<ListContainersResponse> {
        let mut filter = r.filter.unwrap_or_default();
        // Truncated ids are expanded; one that finds nothing finds no
        // containers (containerd answers an empty list, not an error).
        if !filter.id.is_empty() {
            match self.containers.get(&filter.id) {
                Ok(c) => filter.id = c.metadata.id.clone(),
                Err(_) => return Ok(ListContainersResponse::default()),
            }
        }
        if !filter.pod_sandbox_id.is_empty() {
            if let Ok(s) = self.sandboxes.get(&filter.pod_sandbox_id) {
                filter.pod_sandbox_id = s.metadata.id.clone();
            }
        }
        let containers = self
            .containers
            .list()
            .iter()
            .map(|c| to_cri(c))
            .filter(|c| matches(c, &filter))
            .collect();
        Ok(ListContainersResponse { containers })
    }
}

fn to_cri(container: &store::Container) -> Container {
    let meta = &container.metadata;
    let status = container.status();
    Container {
        id: meta.id.clone(),
        pod_sandbox_id: meta.sandbox_id.clone(),
        metadata: meta.config.metadata.clone(),
        image: meta.config.image.clone(),
        image_ref: meta.image_ref.clone(),
        image_id: meta.image_ref.clone(),
        state: cri_state(status.state()) as i32,
        created_at: status.created_at,
        labels: meta.config.labels.clone(),
        annotations: meta.config.annotations.clone(),
    }
}

fn matches(c: &Container, filter: &ContainerFilter) -> bool {
    (filter.id.is_empty() || c.id == filter.id)
        && (filter.pod_sandbox_id.is_empty() || c.pod_sandbox_id == filter.pod_sandbox_id)
        && filter.state.as_ref().is_none_or(|s| s.state == c.state)
        && filter
            .label_selector
            .iter()
            .all(|(k, v)| c.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_combine() {
        let c = Container {
            id: "abc".into(),
            pod_sandbox_id: "pod".into(),
            state: k8s_cri::v1::ContainerState::ContainerRunning as i32,
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Container::default()
        };
        let mut f = ContainerFilter::default();
        assert!(matches(&c, &f));
        f.label_selector = [("app".to_string(), "web".to_string())].into();
        f.state = Some(ContainerStateValue {
            state: k8s_cri::v1::ContainerState::ContainerRunning as i32,
        });
        f.pod_sandbox_id = "pod".into();
        assert!(matches(&c, &f));
        f.label_selector.insert("tier".into(), "db".into());
        assert!(!matches(&c, &f));
        f.label_selector.clear();
        f.state = Some(ContainerStateValue {
            state: k8s_cri::v1::ContainerState::ContainerExited as i32,
        });
        assert!(!matches(&c, &f));
    }
}
