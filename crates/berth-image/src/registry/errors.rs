//! Registry failures as berth errors.
//!
//! Every message names the host, the reference and what went wrong — the
//! HTTP status with the registry's own error codes when it sent them
//! (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}`) — and the
//! kind follows the status:
//!
//! | status | kind |
//! |---|---|
//! | 404 | `NotFound` |
//! | 401 | `Unauthenticated` (no or wrong credentials) |
//! | 403 | `PermissionDenied` |
//! | 400 | `InvalidArgument` (e.g. a manifest the registry rejects) |
//! | 405 | `NotImplemented` (an operation the registry does not offer) |
//! | 416 | `OutOfRange` |
//! | 408, 429, 5xx | `Unavailable` (after retries) |
//! | other | `Unknown` |
//!
//! Connection failures are `Unavailable`.

use berth_core::{Error, ErrorKind};
use reqwest::StatusCode;
use serde::Deserialize;

/// The kind of error an HTTP status stands for.
pub fn status_kind(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        404 => ErrorKind::NotFound,
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        400 => ErrorKind::InvalidArgument,
        405 => ErrorKind::NotImplemented,
        416 => ErrorKind::OutOfRange,
        408 | 429 => ErrorKind::Unavailable,
        s if s >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Unknown,
    }
}

/// Whether a request answered with `status` is worth trying again.
pub(crate) fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry's explanation in an error body, if it sent one.
fn describe_body(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{}: {}", e.code, e.message),
            (false, true) => e.code.clone(),
            _ => e.message.clone(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// An error for an unexpected HTTP answer: `{action} {reference}: {host}:
/// unexpected status 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)`.
pub fn status_error(
    action: &str,
    reference: &str,
    host: &str,
    status: StatusCode,
    body: &[u8],
) -> Error {
    let mut message = format!("{action} {reference}: {host}: unexpected status {status}");
    if let Some(detail) = describe_body(body) {
        message += &format!(" ({detail})");
    }
    Error::new(status_kind(status), message)
}

/// An error for a request that got no answer.
pub(crate) fn transport_error(
    action: &str,
    reference: &str,
    host: &str,
    err: &reqwest::Error,
) -> Error {
    let mut message = format!("{action} {reference}: {host}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        message += &format!(": {e}");
        source = e.source();
    }
    let kind = if err.is_timeout() || err.is_connect() || err.is_request() || err.is_body() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Unknown
    };
    Error::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_names_host_reference_status_and_detail() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        let err = status_error(
            "resolve",
            "127.0.0.1:5000/x:y",
            "127.0.0.1:5000",
            StatusCode::NOT_FOUND,
            body,
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            "resolve 127.0.0.1:5000/x:y: 127.0.0.1:5000: unexpected status 404 Not Found \
             (MANIFEST_UNKNOWN: manifest unknown)"
        );
        let err = status_error("push", "r", "h", StatusCode::UNAUTHORIZED, b"not json");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(err.to_string().ends_with("401 Unauthorized"));
    }

    #[test]
    fn kinds_follow_status() {
        assert_eq!(
            status_kind(StatusCode::FORBIDDEN),
            ErrorKind::PermissionDenied
        );
        assert_eq!(status_kind(StatusCode::BAD_GATEWAY), ErrorKind::Unavailable);
        assert_eq!(
            status_kind(StatusCode::TOO_MANY_REQUESTS),
            ErrorKind::Unavailable
        );
        assert_eq!(status_kind(StatusCode::IM_A_TEAPOT), ErrorKind::Unknown);
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable(StatusCode::NOT_FOUND));
    }
}
