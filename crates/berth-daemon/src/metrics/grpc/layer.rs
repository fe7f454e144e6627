//! The tower layer on the tonic server: a call starts when its request
//! arrives and is handled when its status passes (see [`super`]).

use super::{body::CountedBody, Call, GrpcMetrics};
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The tower layer counting a server's calls; `None` counts nothing.
#[derive(Debug, Clone, Default)]
pub struct GrpcMetricsLayer(pub(super) Option<GrpcMetrics>);

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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, Full, StreamBody};
    use prometheus_client::registry::Registry;
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt};

    type Frames = Vec<Result<Frame<Bytes>, Infallible>>;

    /// One call through the layer to a service answering with `headers`
    /// and a body of `frames`; the text exposition after the body is read.
    async fn call(path: &str, status_header: Option<&str>, frames: Frames) -> String {
        let metrics = GrpcMetrics::new(false);
        let mut frames = Some(frames);
        let service = metrics.layer().layer(tower::service_fn(
            move |request: Request<CountedBody<Full<Bytes>>>| {
                let frames = frames.take().unwrap_or_default();
                async move {
                    request.into_body().collect().await?;
                    let mut response =
                        Response::new(StreamBody::new(futures::stream::iter(frames)));
                    if let Some(code) = status_header {
                        response
                            .headers_mut()
                            .insert("grpc-status", code.parse().expect("header"));
                    }
                    Ok::<_, Infallible>(response)
                }
            },
        ));
        let request = Request::builder()
            .uri(path)
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 1, 7])))
            .expect("request");
        let response = service.oneshot(request).await.expect("response");
        response.into_body().collect().await.expect("body");
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[tokio::test]
    async fn a_trailers_only_answer_is_handled_with_its_code() {
        let text = call("/containerd.services.tasks.v1.Tasks/Get", Some("5"), vec![]).await;
        assert!(
            text.contains(r#"grpc_server_handled_total{grpc_type="unary",grpc_service="containerd.services.tasks.v1.Tasks",grpc_method="Get",grpc_code="NotFound"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"grpc_server_msg_received_total{grpc_type="unary",grpc_service="containerd.services.tasks.v1.Tasks",grpc_method="Get"} 1"#), "{text}");
    }

    #[tokio::test]
    async fn trailers_at_the_end_of_the_body_give_the_code() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("header"));
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
            Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
            Ok(Frame::trailers(trailers)),
        ];
        let text = call("/containerd.services.content.v1.Content/Read", None, frames).await;
        let labels = r#"grpc_type="server_stream",grpc_service="containerd.services.content.v1.Content",grpc_method="Read""#;
        assert!(
            text.contains(&format!(
                "grpc_server_handled_total{{{labels},grpc_code=\"OK\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("grpc_server_msg_sent_total{{{labels}}} 2")),
            "{text}"
        );
        assert!(
            text.contains(&format!("grpc_server_started_total{{{labels}}} 1")),
            "{text}"
        );
    }
}
