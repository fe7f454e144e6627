//! Port forwarding sessions. Over SPDY the client opens a pair of streams
//! per forwarded connection (`streamType` `data` and `error`, the same
//! `port` and `requestID` headers); over WebSocket the ports come from the
//! request, each with a data channel and an error channel (2n, 2n+1), both
//! first carrying the port as two little-endian bytes. Errors go to the
//! error stream as text, as the kubelet writes them.

use super::conn::{Inbound, Out, Outbound, Writer};
use super::spdy::{self, Stream};
use super::tokens::Pending;
use super::websocket::{self, Framing};
use crate::Cri;
use k8s_cri::v1::PortForwardRequest;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

/// One forwarded connection's streams as they arrive.
#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
}

/// Serves a SPDY port-forward connection until the client closes it.
pub(crate) async fn over_spdy(mut conn: spdy::Connection, cri: &Arc<Cri>, pending: Pending) {
    let Pending::PortForward(request) = pending else {
        return;
    };
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = conn.streams.recv().await {
        let port = stream
            .headers
            .get("port")
            .and_then(|p| p.parse::<u16>().ok());
        let kind = stream.headers.get("streamtype").map(str::to_string);
        let (Some(port), Some(kind @ ("data" | "error"))) =
            (port.filter(|p| *p > 0), kind.as_deref())
        else {
            tracing::debug!(
                id = stream.id,
                "port forward: stream without a valid port or type"
            );
            let _ = conn.writer.send(Out::Reset(stream.id)).await;
            continue;
        };
        let request_id = match stream.headers.get("requestid") {
            Some(id) => id.to_string(),
            // Clients too old to send one open the error stream, then
            // the data stream, with consecutive odd ids.
            None if kind == "error" => stream.id.to_string(),
            None => stream.id.saturating_sub(2).to_string(),
        };
        let pair = pairs.entry(request_id.clone()).or_default();
        let slot = if kind == "data" {
            &mut pair.data
        } else {
            &mut pair.error
        };
        if slot.is_some() {
            tracing::debug!(%request_id, kind, "port forward: stream already assigned");
            let _ = conn.writer.send(Out::Reset(stream.id)).await;
            continue;
        }
        *slot = Some(stream);
        if pair.data.is_some() && pair.error.is_some() {
            let pair = pairs.remove(&request_id).expect("present");
            let (data, error) = (pair.data.expect("data"), pair.error.expect("error"));
            let (cri, writer, sandbox) = (
                cri.clone(),
                conn.writer.clone(),
                request.pod_sandbox_id.clone(),
            );
            tokio::spawn(async move {
                let out = Outbound::new(&writer, data.id);
                let errors = Outbound::new(&writer, error.id);
                forward(&cri, &sandbox, i32::from(port), data.inbound, out, &errors).await;
            });
        }
    }
    let _ = conn.writer.send(Out::Close).await;
}

/// Serves the ports of `request` over a WebSocket, then closes it.
pub(crate) async fn over_websocket<IO>(
    ws: WebSocketStream<IO>,
    framing: Framing,
    cri: &Arc<Cri>,
    request: PortForwardRequest,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let readable: Vec<bool> = request.port.iter().flat_map(|_| [true, false]).collect();
    let (mut inbound, writer) = websocket::serve(ws, framing, &readable);
    let mut forwards = Vec::new();
    for (n, &port) in request.port.iter().enumerate() {
        let data = Outbound::new(&writer, (2 * n) as u32);
        let errors = Outbound::new(&writer, (2 * n + 1) as u32);
        let le = (port as u16).to_le_bytes();
        data.send(&le).await;
        errors.send(&le).await;
        let from = inbound[2 * n].take().expect("data channels are readable");
        let (cri, sandbox) = (cri.clone(), request.pod_sandbox_id.clone());
        forwards.push(tokio::spawn(async move {
            forward(&cri, &sandbox, port, from, data, &errors).await;
        }));
    }
    for forward in forwards {
        let _ = forward.await;
    }
    close(&writer).await;
}

async fn close(writer: &Writer) {
    let _ = writer.send(Out::Close).await;
}

/// Forwards one connection; a failure is written on its error stream.
async fn forward(
    cri: &Cri,
    sandbox: &str,
    port: i32,
    from: Inbound,
    to: Outbound,
    errors: &Outbound,
) {
    if let Err(err) = cri.port_forward(sandbox, port, from, to.clone()).await {
        let message = format!("error forwarding port {port} to pod {sandbox}, uid : {err}");
        tracing::debug!(%message, "port forward");
        errors.send(message.as_bytes()).await;
    }
    to.finish().await;
    errors.finish().await;
}
