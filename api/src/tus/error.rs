//! The tus endpoint's errors: the API's own ([`ApiError`]) plus the statuses tus 1.0
//! gives a meaning of its own (412 wrong version, 409 offset mismatch, 415 wrong body
//! type, 460 checksum mismatch). Bodies are the API's `{"detail", "code", ...}`; the
//! status is decided here alone.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::protocol::{OFFSET_STREAM, VERSION};
use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum TusError {
    #[error(transparent)]
    Api(ApiError),
    /// `Tus-Resumable` missing or another version than [`VERSION`].
    #[error("This server speaks tus {VERSION} only: send 'Tus-Resumable: {VERSION}'.")]
    Version,
    /// `Upload-Offset` is not where the upload stands (or another request is writing
    /// at it); HEAD says where to resume.
    #[error("Upload-Offset does not match the upload's offset ({offset}).")]
    Offset { offset: u64 },
    #[error("A tus chunk must be sent as Content-Type: {OFFSET_STREAM}.")]
    MediaType,
    /// The body does not have the digest its `Upload-Checksum` (or, for the last
    /// chunk, the whole file's `md5` metadata) names; nothing was recorded.
    #[error("The {what} does not match the checksum sent; the upload stays at offset {offset}.")]
    Checksum { what: &'static str, offset: u64 },
}

impl From<ApiError> for TusError {
    fn from(e: ApiError) -> Self {
        match e {
            // The shared lease and offset checks speak the chunked protocol's 400;
            // tus answers an offset mismatch with 409.
            ApiError::OffsetMismatch { offset } => TusError::Offset { offset: offset.bytes() },
            e => TusError::Api(e),
        }
    }
}

impl From<ferry_store::StoreError> for TusError {
    fn from(e: ferry_store::StoreError) -> Self {
        TusError::Api(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for TusError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TusError::Api(e.into())
    }
}

impl From<tokio_postgres::Error> for TusError {
    fn from(e: tokio_postgres::Error) -> Self {
        TusError::Api(e.into())
    }
}

/// 460, "Checksum Mismatch" in tus 1.0's checksum extension.
fn checksum_status() -> StatusCode {
    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
}

impl IntoResponse for TusError {
    fn into_response(self) -> Response {
        match self {
            TusError::Api(e) => e.into_response(),
            other => other.tus_response(),
        }
    }
}

impl TusError {
    /// The response of a tus-specific error (the API's own errors answer for themselves).
    fn tus_response(self) -> Response {
        let (status, code) = match &self {
            TusError::Api(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            TusError::Version => (StatusCode::PRECONDITION_FAILED, "unsupported_tus_version"),
            TusError::Offset { .. } => (StatusCode::CONFLICT, "offset_mismatch"),
            TusError::MediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            TusError::Checksum { .. } => (checksum_status(), "checksum_mismatch"),
        };
        let mut body = json!({"detail": self.to_string(), "code": code});
        if let TusError::Offset { offset } | TusError::Checksum { offset, .. } = &self {
            body["offset"] = json!(offset);
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            TusError::Version => {
                headers.insert("tus-version", HeaderValue::from_static(VERSION));
            }
            TusError::Offset { offset } | TusError::Checksum { offset, .. } => {
                headers.insert("upload-offset", HeaderValue::from(*offset));
            }
            _ => {}
        }
        response
    }
}
