//! `containerd.services.transfer.v1.Transfer`.

use super::{grpc, namespace};
use crate::local::transfer::TransferService;
use berth_api::pb::services::v1::TransferRequest;
use berth_api::server::transfer::transfer_server::{self, TransferServer};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The transfer gRPC adapter.
pub struct TransferAdapter(pub Arc<TransferService>);

/// The tonic server for it.
pub fn server(local: Arc<TransferService>) -> TransferServer<TransferAdapter> {
    TransferServer::new(TransferAdapter(local))
}

#[tonic::async_trait]
impl transfer_server::Transfer for TransferAdapter {
    async fn transfer(&self, request: Request<TransferRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&request)?;
        let lease = berth_api::metadata::lease(&request).map(str::to_owned);
        grpc(self.0.transfer(&ns, lease, request.into_inner()).await)?;
        Ok(Response::new(()))
    }
}
