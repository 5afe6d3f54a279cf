//! Every way a request to the agent can fail, and the one place that turns a failure
//! into an HTTP status and the house error body `{"detail", "code"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Malformed id, unknown route, or a file this node does not hold. The three look
    /// alike on purpose: a prober learns nothing about the root's layout.
    #[error("No such file on this node.")]
    NotFound,
    #[error("The download link is not signed.")]
    Unsigned,
    #[error("The download link is malformed.")]
    MalformedLink,
    #[error("The download link signature is invalid.")]
    InvalidSignature,
    #[error("The download link has expired.")]
    Expired,
    /// Carries the representation's length for `Content-Range: bytes */len`.
    #[error("The requested range lies outside the file.")]
    RangeNotSatisfiable { len: u64 },
    /// `If-Match` / `If-Unmodified-Since` did not hold (RFC 9110 §13.1.1, §13.1.4).
    #[error("A precondition of the request does not hold for the current file.")]
    PreconditionFailed,
    #[error("Method not allowed.")]
    MethodNotAllowed,
    /// statvfs of the storage root failed: the monitor must see this node as down
    /// rather than as a node with zero free bytes.
    #[error("The storage root is not accessible.")]
    RootUnavailable,
    /// The client address or the link already has its share of downloads in flight
    /// (`node.max_downloads_per_client`, `node.max_downloads_per_link`).
    #[error("Too many downloads in flight from this client or of this link; retry when one ends.")]
    TooManyDownloads,
    /// Anything else; logged with its cause, answered with a fixed sentence.
    #[error("{context}: {source}")]
    Internal { context: &'static str, source: std::io::Error },
}

impl ServeError {
    /// The single mapping from failure to HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::NotFound => StatusCode::NOT_FOUND,
            ServeError::Unsigned | ServeError::MalformedLink | ServeError::InvalidSignature | ServeError::Expired => {
                StatusCode::FORBIDDEN
            }
            ServeError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ServeError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ServeError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ServeError::RootUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::TooManyDownloads => StatusCode::TOO_MANY_REQUESTS,
            ServeError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable, machine-readable code: clients branch on it, never on `detail`.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::NotFound => "not_found",
            // A client can do nothing different for an unsigned, malformed or forged
            // link (ask the API for a fresh one), so they share a code.
            ServeError::Unsigned | ServeError::MalformedLink | ServeError::InvalidSignature => "invalid_signature",
            ServeError::Expired => "link_expired",
            ServeError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ServeError::PreconditionFailed => "precondition_failed",
            ServeError::MethodNotAllowed => "method_not_allowed",
            ServeError::RootUnavailable => "root_unavailable",
            ServeError::TooManyDownloads => "too_many_downloads",
            ServeError::Internal { .. } => "internal_error",
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let detail = match &self {
            // 5xx bodies never carry internal text; the cause goes to the log, once.
            ServeError::Internal { .. } => {
                tracing::error!(error = %self, "request failed");
                "Internal server error.".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (self.status(), Json(json!({"detail": detail, "code": self.code()}))).into_response();
        let headers = response.headers_mut();
        match self {
            ServeError::RangeNotSatisfiable { len } => {
                if let Ok(value) = HeaderValue::try_from(format!("bytes */{len}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            ServeError::RootUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ServeError::TooManyDownloads => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ServeError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (ServeError::NotFound, 404, "not_found"),
            (ServeError::Unsigned, 403, "invalid_signature"),
            (ServeError::MalformedLink, 403, "invalid_signature"),
            (ServeError::InvalidSignature, 403, "invalid_signature"),
            (ServeError::Expired, 403, "link_expired"),
            (ServeError::RangeNotSatisfiable { len: 3 }, 416, "range_not_satisfiable"),
            (ServeError::PreconditionFailed, 412, "precondition_failed"),
            (ServeError::MethodNotAllowed, 405, "method_not_allowed"),
            (ServeError::RootUnavailable, 503, "root_unavailable"),
            (ServeError::TooManyDownloads, 429, "too_many_downloads"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn unsatisfiable_names_the_length() {
        let response = ServeError::RangeNotSatisfiable { len: 1234 }.into_response();
        assert_eq!(
            response.headers().get(header::CONTENT_RANGE).map(HeaderValue::as_bytes),
            Some(&b"bytes */1234"[..])
        );
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let error = ServeError::Internal { context: "reading /secret/path", source: std::io::Error::other("boom") };
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.expect("small body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json body");
        assert_eq!(body, json!({"detail": "Internal server error.", "code": "internal_error"}));
    }
}
