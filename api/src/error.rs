//! The API's one error type. Its HTTP status is decided in exactly one place
//! ([`ApiError::status`]); every body is `{"detail", "code", ...}`, and 5xx bodies never
//! carry internal text (the cause is logged once, here).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_shared::types::ByteSize;
use ferry_store::StoreError;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("Unable to log in with provided credentials.")]
    InvalidCredentials,
    #[error("You do not have permission to perform this action.")]
    Forbidden,
    #[error("Method not allowed.")]
    MethodNotAllowed,
    #[error("{what} not found.")]
    NotFound { what: &'static str },
    /// A request the client must change: 400 with a stable code.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("Offsets do not match")]
    OffsetMismatch { offset: ByteSize },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String, state: Option<&'static str> },
    #[error("This upload has expired.")]
    Expired,
    #[error("{detail}")]
    TooLarge { detail: String, limit: u64 },
    #[error("{detail}")]
    Unavailable { detail: &'static str, retry_after: u32 },
    /// 429 with `Retry-After`: the client is over a per-user or per-address limit.
    #[error("{detail}")]
    TooManyRequests { code: &'static str, detail: String, retry_after: u64 },
    /// 408 and the connection closed: the request body arrived too slowly.
    #[error("{detail}")]
    RequestTimeout { code: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest { code, detail: detail.into() }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::InvalidCredentials | ApiError::BadRequest { .. } | ApiError::OffsetMismatch { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Expired => StatusCode::GONE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "not_authenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden => "permission_denied",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::TooManyRequests { code, .. }
            | ApiError::RequestTimeout { code, .. } => code,
            ApiError::OffsetMismatch { .. } => "offset_mismatch",
            ApiError::Expired => "upload_expired",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_invalid_text() {
            // Whatever field carried it (a login name, a search filter): the request's
            // text, which PostgreSQL refused; the statement carrying it wrote nothing.
            ApiError::bad_request("invalid_text", "Text values cannot contain the NUL character (U+0000).")
        } else if e.is_owner_gone() {
            // The account was deleted while this request was under way (its token was
            // checked at the start): as for any request after the deletion.
            ApiError::Unauthorized("This account no longer exists.")
        } else if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable { detail: "The database is unavailable; try again shortly.", retry_after: 2 }
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = Map::new();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                "Internal server error.".to_owned()
            }
            other => other.to_string(),
        };
        body.insert("detail".into(), Value::String(detail));
        body.insert("code".into(), Value::String(self.code().into()));
        match &self {
            ApiError::OffsetMismatch { offset } => {
                body.insert("offset".into(), json!(offset));
            }
            ApiError::TooLarge { limit, .. } => {
                body.insert("limit".into(), json!(limit));
            }
            ApiError::Unavailable { retry_after, .. } => {
                body.insert("retry_after".into(), json!(retry_after));
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                body.insert("retry_after".into(), json!(retry_after));
            }
            ApiError::Conflict { state: Some(state), .. } => {
                body.insert("state".into(), json!(state));
            }
            _ => {}
        }
        let mut response = (status, Json(Value::Object(body))).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("JWT realm=\"api\""));
            }
            ApiError::Unavailable { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::RequestTimeout { .. } => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
