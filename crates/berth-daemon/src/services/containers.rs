//! `containerd.services.containers.v1.Containers`.

use super::{grpc, mask_paths, namespace, required};
use crate::convert::{container_from_wire, container_to_wire};
use crate::local::containers::Containers;
use berth_api::pb::services::v1::*;
use berth_api::server::containers::containers_server::{self, ContainersServer};
use std::sync::Arc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// The containers gRPC adapter.
pub struct ContainersService(pub Arc<Containers>);

/// The tonic server for it.
pub fn server(local: Arc<Containers>) -> ContainersServer<ContainersService> {
    ContainersServer::new(ContainersService(local))
}

#[tonic::async_trait]
impl containers_server::Containers for ContainersService {
    async fn get(
        &self,
        request: Request<GetContainerRequest>,
    ) -> Result<Response<GetContainerResponse>, Status> {
        let ns = namespace(&request)?;
        let container = grpc(self.0.get(ns, request.into_inner().id).await)?;
        Ok(Response::new(GetContainerResponse {
            container: Some(container_to_wire(container)),
        }))
    }

    async fn list(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let ns = namespace(&request)?;
        let list = grpc(self.0.list(ns, request.into_inner().filters).await)?;
        Ok(Response::new(ListContainersResponse {
            containers: list.into_iter().map(container_to_wire).collect(),
        }))
    }

    async fn list_stream(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<BoxStream<ListContainerMessage>>, Status> {
        let ns = namespace(&request)?;
        let list = grpc(self.0.list(ns, request.into_inner().filters).await)?;
        let messages = list.into_iter().map(|c| {
            Ok(ListContainerMessage {
                container: Some(container_to_wire(c)),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
    }

    async fn create(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let ns = namespace(&request)?;
        let container = required(request.into_inner().container, "container")?;
        let created = grpc(self.0.create(ns, container_from_wire(container)).await)?;
        Ok(Response::new(CreateContainerResponse {
            container: Some(container_to_wire(created)),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateContainerRequest>,
    ) -> Result<Response<UpdateContainerResponse>, Status> {
        let ns = namespace(&request)?;
        let req = request.into_inner();
        let container = required(req.container, "container")?;
        let paths = mask_paths(req.update_mask);
        let updated = grpc(
            self.0
                .update(ns, container_from_wire(container), paths)
                .await,
        )?;
        Ok(Response::new(UpdateContainerResponse {
            container: Some(container_to_wire(updated)),
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteContainerRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&request)?;
        grpc(self.0.delete(ns, request.into_inner().id).await)?;
        Ok(Response::new(()))
    }
}
