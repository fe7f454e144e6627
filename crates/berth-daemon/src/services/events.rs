//! `containerd.services.events.v1.Events`.

use super::{grpc, namespace, required};
use crate::events::Exchange;
use berth_api::pb::services::v1::*;
use berth_api::pb::types::Envelope;
use berth_api::server::events::events_server::{self, EventsServer};
use berth_core::filters::Filter;
use futures::StreamExt;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// The events gRPC adapter.
pub struct EventsService(pub Exchange);

/// The tonic server for it.
pub fn server(exchange: Exchange) -> EventsServer<EventsService> {
    EventsServer::new(EventsService(exchange))
}

#[tonic::async_trait]
impl events_server::Events for EventsService {
    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&request)?;
        let req = request.into_inner();
        let event = required(req.event, "event")?;
        grpc(self.0.publish(&ns, &req.topic, event))?;
        Ok(Response::new(()))
    }

    async fn forward(&self, request: Request<ForwardRequest>) -> Result<Response<()>, Status> {
        let envelope = required(request.into_inner().envelope, "envelope")?;
        grpc(self.0.forward(envelope))?;
        Ok(Response::new(()))
    }

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<BoxStream<Envelope>>, Status> {
        let filter = grpc(Filter::parse_all(&request.into_inner().filters))?;
        let stream = self.0.subscribe(filter).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}
