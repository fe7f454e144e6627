//! `containerd.services.leases.v1.Leases`.

use super::{grpc, namespace, required};
use crate::convert::timestamp;
use crate::local::leases::Leases;
use berth_api::pb::services::v1::{
    AddResourceRequest, CreateRequest, CreateResponse, DeleteRequest, DeleteResourceRequest,
    Lease as WireLease, ListRequest, ListResourcesRequest, ListResourcesResponse, ListResponse,
    Resource as WireResource,
};
use berth_api::server::leases::leases_server::{self, LeasesServer};
use berth_store::{Lease, LeaseResource};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The leases gRPC adapter.
pub struct LeasesService(pub Arc<Leases>);

/// The tonic server for it.
pub fn server(local: Arc<Leases>) -> LeasesServer<LeasesService> {
    LeasesServer::new(LeasesService(local))
}

fn lease_to_wire(lease: Lease) -> WireLease {
    WireLease {
        id: lease.id,
        created_at: timestamp(lease.created_at),
        labels: lease.labels,
    }
}

fn resource_from_wire(resource: WireResource) -> LeaseResource {
    LeaseResource {
        id: resource.id,
        kind: resource.r#type,
    }
}

fn resource_to_wire(resource: LeaseResource) -> WireResource {
    WireResource {
        id: resource.id,
        r#type: resource.kind,
    }
}

#[tonic::async_trait]
impl leases_server::Leases for LeasesService {
    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let ns = namespace(&request)?;
        let req = request.into_inner();
        let lease = grpc(self.0.create(ns, req.id, req.labels).await)?;
        Ok(Response::new(CreateResponse {
            lease: Some(lease_to_wire(lease)),
        }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&request)?;
        let req = request.into_inner();
        grpc(self.0.delete(ns, req.id, req.sync).await)?;
        Ok(Response::new(()))
    }

    async fn add_resource(
        &self,
        request: Request<AddResourceRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&request)?;
        let req = request.into_inner();
        let resource = resource_from_wire(required(req.resource, "resource")?);
        grpc(self.0.add_resource(ns, req.id, resource).await)?;
        Ok(Response::new(()))
    }

    async fn delete_resource(
        &self,
        request: Request<DeleteResourceRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&request)?;
        let req = request.into_inner();
        let resource = resource_from_wire(required(req.resource, "resource")?);
        grpc(self.0.delete_resource(ns, req.id, resource).await)?;
        Ok(Response::new(()))
    }

    async fn list_resources(
        &self,
        request: Request<ListResourcesRequest>,
    ) -> Result<Response<ListResourcesResponse>, Status> {
        let ns = namespace(&request)?;
        let resources = grpc(self.0.list_resources(ns, request.into_inner().id).await)?;
        Ok(Response::new(ListResourcesResponse {
            resources: resources.into_iter().map(resource_to_wire).collect(),
        }))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let ns = namespace(&request)?;
        let leases = grpc(self.0.list(ns, request.into_inner().filters).await)?;
        Ok(Response::new(ListResponse {
            leases: leases.into_iter().map(lease_to_wire).collect(),
        }))
    }
}
