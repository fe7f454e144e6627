//! gRPC server metrics as go-grpc-prometheus keeps them for containerd.
//!
//! A tower layer on the tonic server sees every call: the path
//! `/package.Service/Method` gives `grpc_service` and `grpc_method`; the
//! call counts as started when it arrives and as handled when its status
//! is known — from the `grpc-status` header of a trailers-only response
//! (how tonic answers an error before any message), or else from the
//! trailers at the end of the response body. Messages are counted by their
//! gRPC frames (a 5-byte header: compressed flag and big-endian length) as
//! the request and response bodies pass through.

mod body;
mod layer;

pub use body::CountedBody;
pub use layer::{GrpcMetricsLayer, GrpcMetricsService, ResponseFuture};

use http::HeaderMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Instant;

/// The labels of every gRPC series but `grpc_server_handled_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub grpc_type: &'static str,
    /// The full service name, `containerd.services.tasks.v1.Tasks`.
    pub grpc_service: String,
    /// The method name, `Create`.
    pub grpc_method: String,
}

/// The labels of `grpc_server_handled_total`: the call's and its code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub grpc_type: &'static str,
    /// The full service name.
    pub grpc_service: String,
    /// The method name.
    pub grpc_method: String,
    /// The status code's name as Go spells it: `OK`, `NotFound`, …
    pub grpc_code: &'static str,
}

/// The gRPC server's counters; clones share them.
#[derive(Debug, Clone)]
pub struct GrpcMetrics {
    started: Family<CallLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    received: Family<CallLabels, Counter>,
    sent: Family<CallLabels, Counter>,
    /// `grpc_server_handling_seconds`, when the config asks for it.
    handling: Option<Family<CallLabels, Histogram>>,
}

/// Prometheus's default buckets, which go-grpc-prometheus uses.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn handling_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl GrpcMetrics {
    /// Fresh counters; with `histogram`, handling times too.
    pub fn new(histogram: bool) -> GrpcMetrics {
        GrpcMetrics {
            started: Family::default(),
            handled: Family::default(),
            received: Family::default(),
            sent: Family::default(),
            handling: histogram
                .then(|| Family::new_with_constructor(handling_histogram as fn() -> Histogram)),
        }
    }

    /// Adds the series to `registry` under go-grpc-prometheus's names.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            self.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            self.handled.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            self.received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            self.sent.clone(),
        );
        if let Some(handling) = &self.handling {
            registry.register(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
                handling.clone(),
            );
        }
    }

    /// The layer that keeps these counters for a server.
    pub fn layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer(Some(self.clone()))
    }
}

impl GrpcMetrics {
    /// Counts a call as started; what it needs to be counted as handled.
    fn start(&self, path: &str) -> Call {
        let labels = call_labels(path);
        self.started.get_or_create(&labels).inc();
        Call {
            metrics: self.clone(),
            labels,
            began: Instant::now(),
            done: false,
        }
    }
}

/// One call in flight.
struct Call {
    metrics: GrpcMetrics,
    labels: CallLabels,
    began: Instant,
    /// Whether it has been counted as handled.
    done: bool,
}

impl Call {
    /// Counts the call as handled with `code`, once.
    fn handled(&mut self, code: &'static str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let l = &self.labels;
        let handled = HandledLabels {
            grpc_type: l.grpc_type,
            grpc_service: l.grpc_service.clone(),
            grpc_method: l.grpc_method.clone(),
            grpc_code: code,
        };
        self.metrics.handled.get_or_create(&handled).inc();
        if let Some(histogram) = &self.metrics.handling {
            histogram
                .get_or_create(l)
                .observe(self.began.elapsed().as_secs_f64());
        }
    }

    /// Counts the call as handled if `headers` carry its status.
    fn handled_from(&mut self, headers: &HeaderMap) -> bool {
        match headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
            Some(status) => {
                self.handled(code_name(status.parse().unwrap_or(2)));
                true
            }
            None => false,
        }
    }
}

impl Drop for Call {
    /// A response body dropped before its trailers: the client went away.
    fn drop(&mut self) {
        self.handled("Canceled");
    }
}

/// `/containerd.services.tasks.v1.Tasks/Create` → its labels; the type
/// from the streaming methods containerd's services have (CRI's and the
/// health service's `Check` are unary).
fn call_labels(path: &str) -> CallLabels {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("unknown", "unknown"));
    let grpc_type = match (service.rsplit('.').next().unwrap_or(""), method) {
        ("Content", "Write") | ("Streaming", "Stream") => "bidi_stream",
        ("Content", "List" | "Read")
        | ("Containers", "ListStream")
        | ("Events", "Subscribe")
        | ("Snapshots", "List")
        | ("Health", "Watch") => "server_stream",
        _ => "unary",
    };
    CallLabels {
        grpc_type,
        grpc_service: service.to_string(),
        grpc_method: method.to_string(),
    }
}

/// A gRPC status code's name; an unknown number counts as `Unknown`.
fn code_name(code: i32) -> &'static str {
    berth_api::status::code_name(code).unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn paths_give_service_method_and_type() {
        let l = call_labels("/containerd.services.content.v1.Content/Read");
        assert_eq!(
            (l.grpc_type, l.grpc_service.as_str(), l.grpc_method.as_str()),
            (
                "server_stream",
                "containerd.services.content.v1.Content",
                "Read"
            )
        );
        assert_eq!(
            call_labels("/runtime.v1.RuntimeService/Version").grpc_type,
            "unary"
        );
    }

    #[test]
    fn codes_are_named_as_go_names_them() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(5), "NotFound");
        assert_eq!(code_name(16), "Unauthenticated");
        assert_eq!(code_name(99), "Unknown");
    }
}
