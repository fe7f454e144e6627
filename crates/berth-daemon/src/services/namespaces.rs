//! `containerd.services.namespaces.v1.Namespaces`.

use super::{grpc, mask_paths, required};
use crate::convert::{namespace_from_wire, namespace_to_wire};
use crate::local::namespaces::Namespaces;
use berth_api::pb::services::v1::*;
use berth_api::server::namespaces::namespaces_server::{self, NamespacesServer};
use berth_core::namespaces::DEFAULT;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The namespaces gRPC adapter.
pub struct NamespacesService(pub Arc<Namespaces>);

/// The tonic server for it.
pub fn server(local: Arc<Namespaces>) -> NamespacesServer<NamespacesService> {
    NamespacesServer::new(NamespacesService(local))
}

/// Namespace calls name the namespace in the body; the header (if any) only
/// says where the event goes, as in containerd.
fn caller<T>(request: &Request<T>) -> String {
    berth_api::metadata::namespace(request)
        .unwrap_or(DEFAULT)
        .to_string()
}

#[tonic::async_trait]
impl namespaces_server::Namespaces for NamespacesService {
    async fn get(
        &self,
        request: Request<GetNamespaceRequest>,
    ) -> Result<Response<GetNamespaceResponse>, Status> {
        let ns = grpc(self.0.get(request.into_inner().name).await)?;
        Ok(Response::new(GetNamespaceResponse {
            namespace: Some(namespace_to_wire(ns)),
        }))
    }

    async fn list(
        &self,
        _request: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        let list = grpc(self.0.list().await)?;
        Ok(Response::new(ListNamespacesResponse {
            namespaces: list.into_iter().map(namespace_to_wire).collect(),
        }))
    }

    async fn create(
        &self,
        request: Request<CreateNamespaceRequest>,
    ) -> Result<Response<CreateNamespaceResponse>, Status> {
        let caller = caller(&request);
        let ns = required(request.into_inner().namespace, "namespace")?;
        let created = grpc(self.0.create(&caller, namespace_from_wire(ns)).await)?;
        Ok(Response::new(CreateNamespaceResponse {
            namespace: Some(namespace_to_wire(created)),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateNamespaceRequest>,
    ) -> Result<Response<UpdateNamespaceResponse>, Status> {
        let caller = caller(&request);
        let req = request.into_inner();
        let ns = required(req.namespace, "namespace")?;
        let paths = mask_paths(req.update_mask);
        let updated = grpc(self.0.update(&caller, namespace_from_wire(ns), paths).await)?;
        Ok(Response::new(UpdateNamespaceResponse {
            namespace: Some(namespace_to_wire(updated)),
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteNamespaceRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&request);
        grpc(self.0.delete(&caller, request.into_inner().name).await)?;
        Ok(Response::new(()))
    }
}
