//! `POST /api-token-auth/`: username + password (form or JSON) -> JWT.

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::form::small_form;
use crate::login_limit;
use crate::state::SharedState;
use crate::upload::pace::BodyPace;

/// `429 too_many_login_attempts` with `Retry-After`: the address or the username has
/// used its login attempts for now (`crate::login_limit`).
pub fn too_many_attempts(wait: std::time::Duration) -> ApiError {
    let retry_after = login_limit::retry_after_secs(wait);
    ApiError::TooManyRequests {
        code: "too_many_login_attempts",
        detail: format!("Too many login attempts; try again in {retry_after} s."),
        retry_after,
    }
}

pub fn router() -> Router<SharedState> {
    Router::new().route("/api-token-auth/", post(obtain_token))
}

async fn obtain_token(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let form = small_form(body, ct, BodyPace::of(&state.config.api)).await?;
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return Err(ApiError::bad_request("credentials_required", "Both 'username' and 'password' are required."));
    };
    // Before the user is looked up or a password hashed: a flood costs nothing.
    state.login_limit.check(peer.ip(), username).map_err(too_many_attempts)?;
    let found = ferry_store::users::credentials(&state.pool.get().await?, username).await?;
    let hash = found.as_ref().map(|c| c.password_hash.clone());
    // Same work whether or not the user exists: no user-enumeration by timing. A
    // disabled user gets the same answer as a wrong password.
    if !state.keys.check_password(password.clone(), hash).await? {
        return Err(ApiError::InvalidCredentials);
    }
    let user = found.filter(|c| !c.disabled).ok_or(ApiError::InvalidCredentials)?;
    Ok(Json(json!({ "token": state.keys.issue(user.id, username, user.token_generation)? })))
}
