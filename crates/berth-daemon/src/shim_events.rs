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
        accept(&self.0, &request)?;
        Ok(Empty::new())
    }
}

/// Forward's work on a decoded request: the envelope, checked, converted
/// to prost and handed to `exchange`. Public as the events fuzz target's
/// entry (`fuzz/fuzz_targets/events_envelope.rs`).
pub fn accept(exchange: &Exchange, request: &ForwardRequest) -> ttrpc::Result<()> {
    let status = |code, msg: String| ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg));
    let envelope = request
        .envelope
        .as_ref()
        .ok_or_else(|| status(ttrpc::Code::INVALID_ARGUMENT, "envelope must be set".into()))?;
    let envelope: Envelope =
        from_shim(envelope).map_err(|e| status(ttrpc::Code::INVALID_ARGUMENT, e.to_string()))?;
    exchange
        .forward(envelope)
        .map_err(|e| status(ttrpc::Code::INVALID_ARGUMENT, e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::filters::Filter;
    use berth_runtime::protos::shim::event::Envelope as ShimEnvelope;
    use futures::{FutureExt, StreamExt};

    fn request(namespace: &str, topic: &str) -> ForwardRequest {
        let mut envelope = ShimEnvelope::new();
        envelope.namespace = namespace.to_string();
        envelope.topic = topic.to_string();
        let mut request = ForwardRequest::new();
        request.envelope = protobuf::MessageField::some(envelope);
        request
    }

    #[test]
    fn accepted_envelopes_reach_subscribers() {
        let exchange = Exchange::default();
        let mut events = Box::pin(exchange.subscribe(Filter::default()));
        accept(&exchange, &request("default", "/tasks/exit")).expect("accepted");
        let got = events.next().now_or_never().flatten().expect("delivered");
        assert_eq!(
            (got.namespace.as_str(), got.topic.as_str()),
            ("default", "/tasks/exit")
        );
    }

    #[test]
    fn bad_envelopes_are_invalid_arguments_and_reach_nobody() {
        let exchange = Exchange::default();
        let mut events = Box::pin(exchange.subscribe(Filter::default()));
        for bad in [
            ForwardRequest::new(),
            request("default", "tasks/exit"),
            request("", "/tasks/exit"),
        ] {
            match accept(&exchange, &bad) {
                Err(ttrpc::Error::RpcStatus(status)) => {
                    assert_eq!(status.code(), ttrpc::Code::INVALID_ARGUMENT)
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(events.next().now_or_never().is_none());
    }
}
