//! `containerd.services.containers.v1.Containers`: container records.
//!
//! A container here is metadata only — id, image, OCI spec, runtime,
//! snapshot key, labels. Running it is the tasks service's business.

use std::collections::HashMap;

use berth_core::Result;
use prost_types::FieldMask;

use crate::namespaces::expect;
use crate::pb::services::v1::containers_client::ContainersClient;
use crate::pb::services::v1::{
    Container, CreateContainerRequest, DeleteContainerRequest, GetContainerRequest,
    ListContainersRequest, UpdateContainerRequest,
};
use crate::Client;

/// The containers service, in the client's namespace; see
/// [`Client::containers`].
#[derive(Clone, Debug)]
pub struct Containers {
    client: Client,
}

impl Client {
    /// The containers service, in the client's namespace.
    pub fn containers(&self) -> Containers {
        Containers {
            client: self.clone(),
        }
    }
}

impl Containers {
    fn service(&self) -> ContainersClient<tonic::transport::Channel> {
        ContainersClient::new(self.client.channel())
    }

    /// Creates `container`; `AlreadyExists` if its id is taken.
    pub async fn create(&self, container: Container) -> Result<Container> {
        let request = self.client.request(
            CreateContainerRequest {
                container: Some(container),
            },
            true,
        )?;
        let response = self.client.call(self.service().create(request)).await?;
        expect(response.container, "create")
    }

    /// Container `id`; `NotFound` if it does not exist.
    pub async fn get(&self, id: &str) -> Result<Container> {
        let request = self
            .client
            .request(GetContainerRequest { id: id.to_string() }, true)?;
        let response = self.client.call(self.service().get(request)).await?;
        expect(response.container, "get")
    }

    /// The containers matching any of `filters` (containerd's filter syntax,
    /// e.g. `labels.app==web`, `image~=busybox`; none: all).
    pub async fn list<S: AsRef<str>>(&self, filters: &[S]) -> Result<Vec<Container>> {
        let filters = filters.iter().map(|f| f.as_ref().to_string()).collect();
        let request = self
            .client
            .request(ListContainersRequest { filters }, true)?;
        let response = self.client.call(self.service().list(request)).await?;
        Ok(response.containers)
    }

    /// Updates the fields of `container` named by `field_paths` (`labels`,
    /// `labels.KEY`, `image`, `spec`, `snapshotter`, `snapshotkey`,
    /// `extensions`, `extensions.KEY`, …); no paths replaces every updatable
    /// field.
    pub async fn update<S: AsRef<str>>(
        &self,
        container: Container,
        field_paths: &[S],
    ) -> Result<Container> {
        let update_mask = (!field_paths.is_empty()).then(|| FieldMask {
            paths: field_paths.iter().map(|p| p.as_ref().to_string()).collect(),
        });
        let request = self.client.request(
            UpdateContainerRequest {
                container: Some(container),
                update_mask,
            },
            true,
        )?;
        let response = self.client.call(self.service().update(request)).await?;
        expect(response.container, "update")
    }

    /// Sets each of `labels` on container `id`, leaving the others alone; an
    /// empty value removes the label. Returns the container as updated; with
    /// no labels, nothing changes and the container is returned as it is.
    pub async fn set_labels(&self, id: &str, labels: HashMap<String, String>) -> Result<Container> {
        if labels.is_empty() {
            return self.get(id).await;
        }
        let paths: Vec<String> = labels.keys().map(|k| format!("labels.{k}")).collect();
        let container = Container {
            id: id.to_string(),
            labels,
            ..Container::default()
        };
        self.update(container, &paths).await
    }

    /// Removes container `id`'s record. It does not touch its task or
    /// snapshot (see [`crate::tasks`] and [`crate::snapshots`]).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let request = self
            .client
            .request(DeleteContainerRequest { id: id.to_string() }, true)?;
        self.client.call(self.service().delete(request)).await
    }
}
