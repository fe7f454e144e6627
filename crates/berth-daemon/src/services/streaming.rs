//! `containerd.services.streaming.v1.Streaming`: the first message names
//! the stream (`StreamInit`); the stream is then registered for transfers
//! to use (see [`crate::local::streaming`]).

use super::grpc;
use crate::local::streaming::StreamManager;
use berth_api::pb::services::v1::StreamInit;
use berth_api::server::streaming::streaming_server::{self, StreamingServer};
use berth_api::typeurl::unpack;
use futures::StreamExt;
use prost_types::Any;
use std::sync::Arc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

/// The streaming gRPC adapter.
pub struct StreamingService(pub Arc<StreamManager>);

/// The tonic server for it.
pub fn server(manager: Arc<StreamManager>) -> StreamingServer<StreamingService> {
    StreamingServer::new(StreamingService(manager))
}

#[tonic::async_trait]
impl streaming_server::Streaming for StreamingService {
    async fn stream(
        &self,
        request: Request<Streaming<Any>>,
    ) -> Result<Response<BoxStream<Any>>, Status> {
        // containerd's stream manager keys streams by namespace, which may
        // be empty.
        let ns = berth_api::metadata::namespace(&request)
            .unwrap_or_default()
            .to_owned();
        let mut inbound = request.into_inner();
        let first = inbound
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("stream closed before StreamInit"))??;
        let init = unpack::<StreamInit>(&first).ok_or_else(|| {
            Status::invalid_argument(format!(
                "first stream message must be StreamInit, not {}",
                first.type_url
            ))
        })?;
        tracing::debug!(stream = %init.id, namespace = %ns, "registering stream");
        let (_stream, response) = grpc(self.0.register(&ns, &init.id, Box::pin(inbound)))?;
        Ok(Response::new(Box::pin(response)))
    }
}
