//! Extractors whose rejections are Ferry's JSON errors, not axum's plain text.

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::SharedState;
use crate::upload::pace::{read_whole, BodyPace};

/// A JSON body (`Content-Type: application/json`, at most
/// [`crate::routes::admin::MAX_JSON_BYTES`]) read whole under the body pace floor
/// ([`read_whole`]: a stalled or trickled body is a 408, not a held connection), then
/// parsed by `axum::Json` (its content-type check and error texts, as 400
/// `invalid_json`).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SharedState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let limit = crate::routes::admin::MAX_JSON_BYTES;
        let bytes = read_whole(body, limit, BodyPace::of(&state.config.api)).await?;
        let req = Request::from_parts(parts, Body::from(bytes));
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            let limit = crate::routes::admin::MAX_JSON_BYTES;
            return ApiError::TooLarge {
                detail: format!("JSON bodies are limited to {limit} bytes."),
                limit: limit as u64,
            };
        }
        ApiError::bad_request("invalid_json", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}
