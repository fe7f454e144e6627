//! The ttrpc socket shims publish on: `<address>.ttrpc`, serving
//! `containerd.services.events.ttrpc.v1.Events/Forward`. Envelopes arrive as
//! rust-protobuf messages and enter the exchange as prost ones.

use crate::events::Exchange;
use anyhow::{Context, Result};
use berth_api::pb::types::Envelope;
use berth_runtime::protos::protobuf;
use berth_runtime::protos::shim::events::ForwardRequest;
use berth_runtime::protos::shim_async::{create_events, Events};
use berth_runtime::ttrpc::{self, r#async::Server, r#async::TtrpcContext};
use berth_runtime::{from_shim, TTRPC_NAMESPACE_HEADER};
use protobuf::well_known_types::empty::Empty;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The shims' events socket for a gRPC socket path.
pub fn ttrpc_address(grpc: &Path) -> PathBuf {
    let mut path = grpc.as_os_str().to_owned();
    path.push(".ttrpc");
    PathBuf::from(path)
}

struct Forwarder(Exchange);

#[async_trait::async_trait]
impl Events for Forwarder {
    async fn forward(&self, _ctx: &TtrpcContext, request: ForwardRequest) -> ttrpc::Result<Empty> {
        let status = |code, msg: String| ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg));
        let envelope = request
            .envelope
            .as_ref()
            .ok_or_else(|| status(ttrpc::Code::INVALID_ARGUMENT, "envelope must be set".into()))?;
        let envelope: Envelope = from_shim(envelope)
            .map_err(|e| status(ttrpc::Code::INVALID_ARGUMENT, e.to_string()))?;
        self.0
            .forward(envelope)
            .map_err(|e| status(ttrpc::Code::INVALID_ARGUMENT, e.to_string()))?;
        Ok(Empty::new())
    }
}

/// Binds `path` (replacing a socket a crashed daemon left) and serves Forward.
pub async fn serve(path: &Path, exchange: Exchange) -> Result<Server> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("remove stale {}", path.display()))
        }
        _ => {}
    }
    let address = format!("unix://{}", path.display());
    let mut server = Server::new()
        .bind(&address)
        .with_context(|| format!("bind {address}"))?
        .register_service(create_events(Arc::new(Forwarder(exchange))));
    server
        .start()
        .await
        .context("start the shim events server")?;
    tracing::info!(address = %path.display(), "shim events (ttrpc) serving");
    Ok(server)
}

/// `berthd publish`: forwards one event (an encoded `Any` on stdin) to the
/// daemon whose gRPC socket is `address`, as containerd's `publish` does.
pub async fn publish(address: &Path, topic: &str, namespace: &str, event: &[u8]) -> Result<()> {
    use berth_runtime::protos::shim::event::Envelope as ShimEnvelope;
    use protobuf::Message;
    let any = protobuf::well_known_types::any::Any::parse_from_bytes(event)
        .context("stdin is not an encoded protobuf Any")?;
    let mut envelope = ShimEnvelope::new();
    envelope.timestamp = protobuf::MessageField::some(berth_runtime::timestamp_to_shim(
        std::time::SystemTime::now(),
    ));
    envelope.namespace = namespace.to_string();
    envelope.topic = topic.to_string();
    envelope.event = protobuf::MessageField::some(any);
    let mut request = ForwardRequest::new();
    request.envelope = protobuf::MessageField::some(envelope);
    let target = ttrpc_address(address);
    let client = ttrpc::r#async::Client::connect(&format!("unix://{}", target.display()))
        .await
        .with_context(|| format!("connect {}", target.display()))?;
    let events = berth_runtime::protos::shim_async::EventsClient::new(client);
    let mut ctx = ttrpc::context::with_timeout(10_000_000_000);
    ctx.add(TTRPC_NAMESPACE_HEADER.to_string(), namespace.to_string());
    events
        .forward(ctx, &request)
        .await
        .context("forward the event")?;
    Ok(())
}
