//! `GET /storage/download/<id>/`: 302 to the nearest healthy node holding a verified
//! copy, with a signed, expiring URL the node agent checks (the client's JWT does not
//! survive a redirect to another host or port).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferry_shared::signing;
use ferry_shared::types::FileId;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::locate::{locate, Located};
use crate::nearest;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/storage/download/{id}/", get(download))
}

async fn download(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> ApiResult<Response> {
    let id: FileId = id.parse().map_err(|_| ApiError::NotFound { what: "File" })?;
    let Located { replicas, healthy: candidates } = locate(&state, id, user.id, false).await?;
    let client_at = nearest::locate(peer.ip(), &state.config.api.client_locations);
    let node = nearest::choose(&candidates, client_at).ok_or(ApiError::Unavailable {
        detail: "No healthy storage node holds a verified copy of this file right now.",
        retry_after: 5,
    })?;
    let expires = chrono::Utc::now().timestamp() + state.config.signing.url_ttl_secs as i64;
    let location = format!(
        "{}{}",
        node.public_url.trim_end_matches('/'),
        signing::signed_path(
            state.config.signing.secret.expose().as_bytes(),
            id,
            expires,
            replicas.first().and_then(|r| r.sha256.as_ref()),
            replicas.first().map(|r| r.filename.as_str()),
        )
    );
    Ok((StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, "no-store".to_owned())])
        .into_response())
}
