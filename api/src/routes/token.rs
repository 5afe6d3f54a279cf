//! `POST /api-token-auth/`: username + password (form or JSON) -> JWT.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::form::small_form;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/api-token-auth/", post(obtain_token))
}

async fn obtain_token(State(state): State<SharedState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let form = small_form(body, ct).await?;
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return Err(ApiError::bad_request("credentials_required", "Both 'username' and 'password' are required."));
    };
    let found = ferry_store::users::credentials(&state.pool.get().await?, username).await?;
    let (id, hash) = match found {
        Some(c) => (Some(c.id), Some(c.password_hash)),
        None => (None, None),
    };
    // Same work whether or not the user exists: no user-enumeration by timing.
    if !state.keys.check_password(password.clone(), hash).await? {
        return Err(ApiError::InvalidCredentials);
    }
    let id = id.ok_or(ApiError::InvalidCredentials)?;
    Ok(Json(json!({ "token": state.keys.issue(id, username)? })))
}
