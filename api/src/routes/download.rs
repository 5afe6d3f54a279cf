//! `GET /storage/download/<id>/`: 302 to the nearest healthy node holding a verified
//! copy, with a signed, expiring URL the node agent checks (the client's JWT does not
//! survive a redirect to another host or port), or, while no healthy node holds one
//! yet, to the file's staging copy on the API itself (`super::staging`);
//! `POST /storage/files/<id>/link`, the same URL as JSON for the page at `/`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_shared::signing;
use ferry_shared::types::FileId;
use serde_json::json;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::locate::{locate, Located};
use crate::nearest;
use crate::routes::staging;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/storage/download/{id}/", get(download)).route("/storage/files/{id}/link", post(link))
}

/// Lifetime of a link from `POST /storage/files/<id>/link`: long enough for the page to
/// follow it (the node checks the expiry when a request starts, so a long download
/// continues past it), short enough that a copied link soon stops working.
pub const LINK_TTL_SECS: u64 = 60;

async fn download(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ttl = state.config.signing.url_ttl_secs;
    let (location, _) = signed_url(&state, &id, user, peer, &headers, ttl).await?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, "no-store".to_owned())])
        .into_response())
}

/// `POST /storage/files/<id>/link`: the signed URL the download redirect would send the
/// caller to, as `{"url", "expires_at"}`, for a browser page that cannot put its token
/// on a navigation: the page follows the link at once, so it lives [`LINK_TTL_SECS`]
/// (or `signing.url_ttl_secs` if shorter), and no token ever sits in a URL. POST, so no
/// prefetch or crawler mints links.
async fn link(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ttl = state.config.signing.url_ttl_secs.min(LINK_TTL_SECS);
    let (url, expires) = signed_url(&state, &id, user, peer, &headers, ttl).await?;
    let expires_at = chrono::DateTime::from_timestamp(expires, 0);
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(json!({"url": url, "expires_at": expires_at}))).into_response())
}

/// A signed, expiring URL (and its expiry, Unix seconds) of a verified copy of the
/// caller's file: on the nearest healthy node, else (no node copy yet, or none healthy)
/// its staging copy on this API ([`staging`]). 404 for no such file, 409 while it is
/// not complete, 503 when neither a healthy node nor the staging volume holds a copy.
async fn signed_url(
    state: &SharedState,
    id: &str,
    user: AuthUser,
    peer: SocketAddr,
    headers: &HeaderMap,
    ttl_secs: u64,
) -> ApiResult<(String, i64)> {
    let id: FileId = id.parse().map_err(|_| ApiError::NotFound { what: "File" })?;
    let Located { sources, healthy: candidates } = locate(state, id, user.id, false).await?;
    let (sha256, name) = (sources.sha256.as_ref(), Some(sources.filename.as_str()));
    let client_at = nearest::locate(peer.ip(), &state.config.api.client_locations);
    let now = chrono::Utc::now().timestamp();
    if let Some(node) = nearest::choose(&candidates, client_at) {
        let expires = now + ttl_secs as i64;
        return Ok((node_link(&state.config, &node.public_url, id, expires, sha256, name), expires));
    }
    if staging::holds(&state.staging_copies, id).await {
        let expires = now + ttl_secs as i64;
        let path = staging::signed_path(&state.config, id, expires, sha256, name);
        return Ok((format!("{}{path}", state.base_url(headers)), expires));
    }
    Err(ApiError::Unavailable {
        detail: "No healthy storage node holds a verified copy of this file right now.",
        retry_after: 5,
    })
}

/// The signed link to `id` on the node agent at `public_url`, valid until `expires`
/// (Unix seconds), carrying the file's checksum and stored name.
pub(crate) fn node_link(
    config: &ferry_shared::config::Config,
    public_url: &str,
    id: FileId,
    expires: i64,
    sha256: Option<&ferry_shared::types::Sha256>,
    name: Option<&str>,
) -> String {
    let path = signing::signed_path(config.signing.secret.expose().as_bytes(), id, expires, sha256, name);
    format!("{}{path}", public_url.trim_end_matches('/'))
}
