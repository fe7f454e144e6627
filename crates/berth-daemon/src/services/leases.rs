//! `containerd.services.leases.v1.Leases`.

use super::{grpc, namespace};
use crate::convert::timestamp;
use crate::local::leases::Leases;
use berth_api::pb::services::v1::{
    CreateRequest, CreateResponse, DeleteRequest, Lease as WireLease, ListRequest, ListResponse,
};
use berth_api::server::leases::leases_server::{self, LeasesServer};
use berth_store::Lease;
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
        grpc(self.0.delete(ns, request.into_inner().id).await)?;
        Ok(Response::new(()))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let ns = namespace(&request)?;
        let leases = grpc(self.0.list(ns, request.into_inner().filters).await)?;
        Ok(Response::new(ListResponse {
            leases: leases.into_iter().map(lease_to_wire).collect(),
        }))
    }
}
