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

use bytes::{Buf, Bytes};
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
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

/// A gRPC status code's name as Go's `codes.Code.String` gives it.
fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .copied()
        .unwrap_or("Unknown")
}

/// Counts gRPC messages in a byte stream by their 5-byte frame headers.
#[derive(Debug, Default)]
struct Frames {
    /// Header bytes seen of the frame being read.
    header: [u8; 5],
    /// How many of `header` are filled.
    filled: usize,
    /// Payload bytes still to skip.
    remaining: u64,
}

impl Frames {
    /// Feeds `data`; returns how many frames it completed.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut done = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(data.len() as u64);
                self.remaining -= skip;
                data = &data[skip as usize..];
                continue;
            }
            let take = (5 - self.filled).min(data.len());
            self.header[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == 5 {
                self.filled = 0;
                let len = [
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ];
                self.remaining = u32::from_be_bytes(len).into();
                // A frame's end is its header's end plus its length: count
                // it now, it is read whole or the stream breaks.
                done += 1;
            }
        }
        done
    }
}

/// The tower layer counting a server's calls; `None` counts nothing.
#[derive(Debug, Clone, Default)]
pub struct GrpcMetricsLayer(Option<GrpcMetrics>);

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// A service counting the calls it passes on.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Option<GrpcMetrics>,
}

impl<S, B, RB> tower::Service<Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<Request<CountedBody<B>>, Response = Response<RB>>,
{
    type Response = Response<CountedBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = self.metrics.as_ref().map(|m| m.start(request.uri().path()));
        let received = call
            .as_ref()
            .map(|c| c.metrics.received.get_or_create(&c.labels).clone());
        let request = request.map(|body| CountedBody::new(body, received, None));
        ResponseFuture {
            inner: self.inner.call(request),
            call,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, its body wrapped to see its trailers.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<CountedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut call = this.call.take();
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                if let Some(call) = call.as_mut() {
                    call.handled("Unknown");
                }
                return Poll::Ready(Err(err));
            }
        };
        if let Some(c) = call.as_mut() {
            if c.handled_from(response.headers()) {
                call = None;
            }
        }
        let sent = call
            .as_ref()
            .map(|c| c.metrics.sent.get_or_create(&c.labels).clone());
        Poll::Ready(Ok(response.map(|body| CountedBody::new(body, sent, call))))
    }
}

pin_project_lite::pin_project! {
    /// A body counting the gRPC messages in it and, for a response,
    /// counting the call as handled when its trailers pass.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        frames: Frames,
        messages: Option<Counter>,
        call: Option<Call>,
    }
}

impl<B> CountedBody<B> {
    fn new(inner: B, messages: Option<Counter>, call: Option<Call>) -> Self {
        CountedBody {
            inner,
            frames: Frames::default(),
            messages,
            call,
        }
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(counter)) = (frame.data_ref(), this.messages.as_ref()) {
                    let n = this.frames.feed(data.chunk());
                    if n > 0 {
                        counter.inc_by(n);
                    }
                }
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.call.as_mut()) {
                    call.handled_from(trailers);
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.as_mut() {
                    call.handled("Unknown");
                }
            }
            None => {
                // The body ended without trailers: a broken response.
                if let Some(call) = this.call.as_mut() {
                    call.handled("Unknown");
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_counted_across_chunks() {
        let mut frames = Frames::default();
        let one = [0u8, 0, 0, 0, 3, b'a', b'b', b'c'];
        let empty = [0u8, 0, 0, 0, 0];
        let mut stream = Vec::new();
        stream.extend_from_slice(&one);
        stream.extend_from_slice(&empty);
        stream.extend_from_slice(&one);
        let (a, b) = stream.split_at(6);
        let (b, c) = b.split_at(4);
        assert_eq!(frames.feed(a) + frames.feed(b) + frames.feed(c), 3);
    }

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
