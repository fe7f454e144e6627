//! `containerd.services.content.v1.Content`: containerd's contentserver
//! (`plugins/services/content/contentserver`) over berth's content store.
//!
//! Unary methods are translations. The two streams carry containerd's
//! protocol rules and live in their own files: [`read`] (offset and size,
//! 1 MiB chunks) and [`write`] (the STAT/WRITE/COMMIT session).

mod read;
mod write;

use super::{grpc, mask_paths, namespace, required};
use crate::convert::timestamp;
use crate::local::content::ContentService;
use berth_api::pb::services::v1::{
    AbortRequest, DeleteContentRequest, Info as WireInfo, InfoRequest, InfoResponse,
    ListContentRequest, ListContentResponse, ListStatusesRequest, ListStatusesResponse,
    ReadContentRequest, ReadContentResponse, Status as WireStatus, StatusRequest, StatusResponse,
    UpdateRequest, UpdateResponse, WriteContentRequest, WriteContentResponse,
};
use berth_api::server::content::content_server::{self, ContentServer};
use berth_core::content::{ContentStore, Info, Status};
use berth_core::Digest;
use berth_store::content::LocalContent;
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status as GrpcStatus, Streaming};

/// How many infos one List message carries (containerd's block size).
const LIST_BLOCK: usize = 100;

/// The content gRPC adapter.
pub struct ContentGrpc(pub Arc<ContentService>);

/// The tonic server for it.
pub fn server(local: Arc<ContentService>) -> ContentServer<ContentGrpc> {
    ContentServer::new(ContentGrpc(local))
}

impl ContentGrpc {
    /// The store as the request's namespace (and lease) sees it.
    fn store<T>(&self, request: &Request<T>) -> Result<LocalContent, GrpcStatus> {
        let ns = namespace(request)?;
        let lease = berth_api::metadata::lease(request);
        grpc(self.0.store(&ns, lease))
    }
}

/// A digest from a request, refused as containerd's server does:
/// `"D" failed validation`.
fn parse_digest(digest: &str) -> Result<Digest, GrpcStatus> {
    Digest::parse(digest)
        .map_err(|_| GrpcStatus::invalid_argument(format!("{digest:?} failed validation")))
}

fn info_to_wire(info: Info) -> WireInfo {
    WireInfo {
        digest: info.digest.to_string(),
        size: info.size,
        created_at: timestamp(info.created_at),
        updated_at: timestamp(info.updated_at),
        labels: info.labels,
    }
}

fn status_to_wire(status: Status) -> WireStatus {
    WireStatus {
        started_at: timestamp(status.started_at),
        updated_at: timestamp(status.updated_at),
        r#ref: status.reference,
        offset: status.offset,
        total: status.total,
        expected: status.expected.map(|d| d.to_string()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl content_server::Content for ContentGrpc {
    async fn info(
        &self,
        request: Request<InfoRequest>,
    ) -> Result<Response<InfoResponse>, GrpcStatus> {
        let store = self.store(&request)?;
        let digest = parse_digest(&request.get_ref().digest)?;
        let info = grpc(store.info(&digest).await)?;
        Ok(Response::new(InfoResponse {
            info: Some(info_to_wire(info)),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, GrpcStatus> {
        let store = self.store(&request)?;
        let req = request.into_inner();
        let wire = required(req.info, "info")?;
        let info = Info {
            digest: parse_digest(&wire.digest)?,
            size: wire.size,
            created_at: UNIX_EPOCH,
            updated_at: UNIX_EPOCH,
            labels: wire.labels,
        };
        let updated = grpc(store.update(info, &mask_paths(req.update_mask)).await)?;
        Ok(Response::new(UpdateResponse {
            info: Some(info_to_wire(updated)),
        }))
    }

    async fn list(
        &self,
        request: Request<ListContentRequest>,
    ) -> Result<Response<BoxStream<ListContentResponse>>, GrpcStatus> {
        let store = self.store(&request)?;
        let infos = grpc(store.list(&request.into_inner().filters).await)?;
        let mut blocks = Vec::with_capacity(infos.len().div_ceil(LIST_BLOCK));
        let mut infos = infos.into_iter().map(info_to_wire).peekable();
        while infos.peek().is_some() {
            let info: Vec<WireInfo> = infos.by_ref().take(LIST_BLOCK).collect();
            blocks.push(Ok(ListContentResponse { info }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(blocks))))
    }

    async fn delete(
        &self,
        request: Request<DeleteContentRequest>,
    ) -> Result<Response<()>, GrpcStatus> {
        let store = self.store(&request)?;
        let digest =
            Digest::parse(&request.get_ref().digest).map_err(berth_api::status::to_status)?;
        grpc(store.delete(&digest).await)?;
        Ok(Response::new(()))
    }

    async fn read(
        &self,
        request: Request<ReadContentRequest>,
    ) -> Result<Response<BoxStream<ReadContentResponse>>, GrpcStatus> {
        let store = self.store(&request)?;
        let stream = read::stream(store, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, GrpcStatus> {
        let store = self.store(&request)?;
        let reference = request.into_inner().r#ref;
        let status = store
            .status(&reference)
            .await
            .map_err(|e| e.context(format_args!("could not get status for ref {reference:?}")));
        Ok(Response::new(StatusResponse {
            status: Some(status_to_wire(grpc(status)?)),
        }))
    }

    async fn list_statuses(
        &self,
        request: Request<ListStatusesRequest>,
    ) -> Result<Response<ListStatusesResponse>, GrpcStatus> {
        let store = self.store(&request)?;
        let statuses = grpc(store.list_statuses(&request.into_inner().filters).await)?;
        Ok(Response::new(ListStatusesResponse {
            statuses: statuses.into_iter().map(status_to_wire).collect(),
        }))
    }

    async fn write(
        &self,
        request: Request<Streaming<WriteContentRequest>>,
    ) -> Result<Response<BoxStream<WriteContentResponse>>, GrpcStatus> {
        let store = self.store(&request)?;
        Ok(Response::new(write::session(store, request.into_inner())))
    }

    async fn abort(&self, request: Request<AbortRequest>) -> Result<Response<()>, GrpcStatus> {
        let store = self.store(&request)?;
        grpc(store.abort(&request.into_inner().r#ref).await)?;
        Ok(Response::new(()))
    }
}
