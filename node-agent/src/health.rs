//! `GET /health`: free and total bytes of the storage root's filesystem (not `/`),
//! for the monitor's probes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::NodeState;

pub async fn health(State(state): State<Arc<NodeState>>) -> Response {
    let root = state.root.clone();
    let stats = tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(&root)).await;
    match stats {
        Ok(Ok(s)) => {
            let block = s.fragment_size();
            let corrupt: Vec<String> =
                state.corrupt.lock().map(|c| c.iter().map(|id| id.to_string()).collect()).unwrap_or_default();
            Json(json!({
                "status": "ok",
                "free_bytes": s.blocks_available() * block,
                "total_bytes": s.blocks() * block,
                "corrupt": corrupt,
            }))
            .into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"detail": "The storage root is not accessible.", "code": "root_unavailable"})),
        )
            .into_response(),
    }
}
