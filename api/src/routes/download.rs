//! `GET /storage/download/<id>/`: 302 to the nearest healthy node holding a verified
//! copy, with a signed, expiring URL the node agent checks (the client's JWT does not
//! survive a redirect to another host or port).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferry_shared::signing;
use ferry_shared::types::{FileId, NodeId};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::nearest::{self, Candidate};
use crate::replica_cache::ReplicaLocation;
use crate::state::SharedState;
use crate::uploads::{Upload, UploadState};

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
    let replicas = match state.replicas.get(id, user.id) {
        Some(replicas) => replicas,
        None => {
            let replicas = Arc::new(load_replicas(&state, id, user.id).await?);
            state.replicas.insert(id, user.id, replicas.clone());
            replicas
        }
    };
    let candidates: Vec<Candidate> = replicas
        .iter()
        .filter_map(|r| {
            let beat = state.heartbeats.healthy(r.node)?;
            Some(Candidate { public_url: r.public_url.clone(), lat: r.lat, lon: r.lon, rtt_ms: beat.rtt_ms })
        })
        .collect();
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
            replicas.first().and_then(|r| r.sha256.as_ref())
        )
    );
    Ok((StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, "no-store".to_owned())])
        .into_response())
}

/// The caller's live file's present replicas on nodes that are not disabled. A file
/// that is not (yet) the caller's: 409 with the upload's state, or 404.
async fn load_replicas(state: &SharedState, id: FileId, user: i64) -> ApiResult<Vec<ReplicaLocation>> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT f.sha256, n.id, n.public_url, n.lat, n.lon
             FROM files f
             LEFT JOIN replicas r ON r.file_id = f.id AND r.state = 'present'
             LEFT JOIN nodes n ON n.id = r.node_id AND n.state <> 'disabled'
             WHERE f.id = $1 AND f.user_id = $2 AND f.deleted_at IS NULL",
            &[&id.0, &user],
        )
        .await?;
    if rows.is_empty() {
        return match Upload::load(&client, id, user, false).await {
            Ok(upload) if upload.state != UploadState::Complete => Err(ApiError::Conflict {
                code: "not_ready",
                detail: format!("The file is not ready for download (state {}).", upload.effective_state().as_str()),
                state: Some(upload.effective_state().as_str()),
            }),
            _ => Err(ApiError::NotFound { what: "File" }),
        };
    }
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(ReplicaLocation {
                sha256: row.get::<_, String>(0).parse().ok(),
                node: NodeId(row.get::<_, Option<i32>>(1)?),
                public_url: row.get(2),
                lat: row.get(3),
                lon: row.get(4),
            })
        })
        .collect())
}
