//! Sending one registry request: URL, headers, credentials, the 401
//! challenge round trip, the HTTPS→HTTP fallback, and retries with
//! exponential backoff for transient failures.

use std::time::Duration;

use berth_core::{Error, Result};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};

use super::errors::{is_retryable, status_error, transport_error};
use super::session::{Endpoint, Session};
use super::tls::is_tls_handshake_error;

/// Where a request goes.
pub(crate) enum Target {
    /// A path under the host's API root (`/<repo>/manifests/<ref>`).
    Api(String),
    /// A URL the registry handed out (an upload `Location`), resolved
    /// against the API root when relative.
    Location(String),
}

/// A request body.
pub(crate) enum Body {
    Empty,
    /// Small and replayable (manifests).
    Bytes(Vec<u8>),
    /// Streamed once: a request with it is not retried.
    Stream(Option<reqwest::Body>),
}

impl Body {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(_))
    }
}

/// One request to send.
pub(crate) struct Req {
    pub method: Method,
    pub target: Target,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Req {
    pub(crate) fn new(method: Method, target: Target) -> Req {
        Req {
            method,
            target,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: Body) -> Req {
        self.body = body;
        self
    }
}

/// The context of requests made for one operation on one host.
pub(crate) struct Call<'a> {
    pub session: &'a Session,
    pub endpoint: &'a Endpoint,
    /// What is being done, for messages: `resolve`, `fetch sha256:…`.
    pub action: &'a str,
    /// The reference it is done for, for messages.
    pub reference: &'a str,
    /// The token scopes the requests need.
    pub scopes: &'a [String],
}

impl Call<'_> {
    fn host(&self) -> &str {
        &self.endpoint.host.host
    }

    fn url(&self, target: &Target) -> Result<Url> {
        match target {
            Target::Api(path) => {
                let scheme = self.session.scheme(&self.endpoint.host);
                let text = self.endpoint.host.url(&scheme, path);
                let mut url = Url::parse(&text)
                    .map_err(|e| self.error_text(format!("invalid URL {text:?}: {e}")))?;
                if let Some(ns) = &self.endpoint.namespace {
                    url.query_pairs_mut().append_pair("ns", ns);
                }
                Ok(url)
            }
            Target::Location(location) => self.location_url(location),
        }
    }

    /// An upload `Location` as an absolute URL (it may be relative to the
    /// host).
    pub(crate) fn location_url(&self, location: &str) -> Result<Url> {
        let scheme = self.session.scheme(&self.endpoint.host);
        let base = self.endpoint.host.url(&scheme, "/");
        Url::parse(&base)
            .and_then(|b| b.join(location))
            .map_err(|e| self.error_text(format!("invalid location {location:?}: {e}")))
    }

    fn error_text(&self, text: String) -> Error {
        Error::invalid_argument(format!(
            "{} {}: {}: {text}",
            self.action,
            self.reference,
            self.host()
        ))
    }

    /// An error for an unexpected `status` with its `body`.
    pub(crate) fn status_error(&self, status: StatusCode, body: &[u8]) -> Error {
        status_error(self.action, self.reference, self.host(), status, body)
    }

    /// An error for an unexpected response, with the registry's
    /// explanation from its body.
    pub(crate) async fn fail(&self, response: Response) -> Error {
        let status = response.status();
        let mut body = Vec::new();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > 64 << 10 {
                break;
            }
        }
        self.status_error(status, &body)
    }

    /// An error about this call in the caller's words.
    pub(crate) fn error(&self, kind: berth_core::ErrorKind, text: impl std::fmt::Display) -> Error {
        Error::new(
            kind,
            format!(
                "{} {}: {}: {text}",
                self.action,
                self.reference,
                self.host()
            ),
        )
    }

    /// Sends `req`, answering an auth challenge once and retrying transient
    /// failures; returns whatever response the registry gave in the end.
    pub(crate) async fn send(&self, mut req: Req) -> Result<Response> {
        let opts = &self.session.opts;
        let max_attempts = opts.max_attempts.max(1);
        let mut failures = 0;
        let mut challenged = false;
        let mut fell_back = false;
        let context = format!("{} {}", self.action, self.reference);
        self.session
            .auth
            .prepare(&self.endpoint.client, self.host(), self.scopes, &context)
            .await?;
        loop {
            let url = self.url(&req.target)?;
            let mut builder = self.endpoint.client.request(req.method.clone(), url);
            for (name, value) in &self.endpoint.host.header {
                builder = builder.header(name.as_str(), value.as_str());
            }
            for (name, value) in &req.headers {
                builder = builder.header(*name, value.as_str());
            }
            if let Some(auth) = self.session.auth.authorization(self.host(), self.scopes) {
                builder = builder.header(AUTHORIZATION, auth);
            }
            builder = match &mut req.body {
                Body::Empty => builder,
                Body::Bytes(bytes) => builder.body(bytes.clone()),
                Body::Stream(stream) => match stream.take() {
                    Some(body) => builder.body(body),
                    None => return Err(self.error_text("request body already sent".into())),
                },
            };
            let replayable = req.body.replayable();
            match builder.send().await {
                Err(err) => {
                    if is_tls_handshake_error(&err)
                        && replayable
                        && !fell_back
                        && self.session.fall_back_to_http(&self.endpoint.host)
                    {
                        fell_back = true;
                        tracing::info!(
                            host = self.host(),
                            "TLS handshake failed, using plain HTTP"
                        );
                        continue;
                    }
                    failures += 1;
                    // A certificate the client refuses stays refused.
                    let permanent = is_tls_handshake_error(&err);
                    if failures >= max_attempts || !replayable || permanent {
                        return Err(transport_error(
                            self.action,
                            self.reference,
                            self.host(),
                            &err,
                        ));
                    }
                    tracing::debug!(host = self.host(), error = %err, "retrying request");
                }
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::UNAUTHORIZED && !challenged && replayable {
                        challenged = true;
                        self.answer_challenge(&response).await?;
                        continue;
                    }
                    failures += 1;
                    if !is_retryable(status) || failures >= max_attempts || !replayable {
                        return Ok(response);
                    }
                    tracing::debug!(host = self.host(), %status, "retrying request");
                    let delay = backoff(opts.initial_backoff, failures).max(retry_after(&response));
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            tokio::time::sleep(backoff(opts.initial_backoff, failures)).await;
        }
    }

    async fn answer_challenge(&self, response: &Response) -> Result<()> {
        let headers: Vec<String> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect();
        self.session.auth.invalidate(self.host(), self.scopes);
        let context = format!("{} {}", self.action, self.reference);
        self.session
            .auth
            .challenged(
                &self.endpoint.client,
                self.host(),
                self.scopes,
                &headers,
                &context,
            )
            .await
    }
}

/// A `Retry-After: <seconds>` the registry sent with a 429 or 503, capped
/// at 10 s (an HTTP date is ignored).
fn retry_after(response: &Response) -> Duration {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs.min(10)))
        .unwrap_or_default()
}

/// `initial`, doubled per failure after the first, capped at 10 s.
fn backoff(initial: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(6);
    (initial * factor).min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 3), Duration::from_millis(400));
        assert_eq!(backoff(base, 40), Duration::from_millis(6400));
    }
}
