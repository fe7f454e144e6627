//! `containerd.services.tasks.v1.Tasks`: the few calls needed to clean up a
//! container's task before removing the container.

use berth_core::Result;

use crate::namespaces::expect;
use crate::pb::services::v1::tasks_client::TasksClient;
use crate::pb::services::v1::{DeleteResponse, DeleteTaskRequest, GetRequest};
use crate::pb::types::v1::Process;
use crate::Client;

/// The tasks service, in the client's namespace; see [`Client::tasks`].
#[derive(Clone, Debug)]
pub struct Tasks {
    client: Client,
}

impl Client {
    /// The tasks service, in the client's namespace.
    pub fn tasks(&self) -> Tasks {
        Tasks {
            client: self.clone(),
        }
    }
}

impl Tasks {
    fn service(&self) -> TasksClient<tonic::transport::Channel> {
        TasksClient::new(self.client.channel())
    }

    /// The init process of container `container_id`'s task; `NotFound` if
    /// the container has no task.
    pub async fn get(&self, container_id: &str) -> Result<Process> {
        let request = self.client.request(
            GetRequest {
                container_id: container_id.to_string(),
                exec_id: String::new(),
            },
            true,
        )?;
        let response = self.client.call(self.service().get(request)).await?;
        expect(response.process, "get task")
    }

    /// Deletes container `container_id`'s task (it must not be running) and
    /// returns how its init process exited.
    pub async fn delete(&self, container_id: &str) -> Result<DeleteResponse> {
        let request = self.client.request(
            DeleteTaskRequest {
                container_id: container_id.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().delete(request)).await
    }
}
