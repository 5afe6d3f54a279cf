//! Where a file can be downloaded from right now: its verified (`present`) replicas on
//! nodes that are not disabled and whose latest heartbeat in this process is fresh and
//! up. One definition for the download redirect and for the completing POST, so a
//! `200 complete` (which waits for [`StorageConfig::write_quorum`] of these) means the
//! redirect that follows finds a copy.
//!
//! [`StorageConfig::write_quorum`]: ferry_shared::config::StorageConfig::write_quorum

use std::sync::Arc;

use ferry_shared::types::{FileId, NodeId};

use crate::error::{ApiError, ApiResult};
use crate::nearest::Candidate;
use crate::replica_cache::ReplicaLocation;
use crate::state::SharedState;
use crate::uploads::{Upload, UploadState};

/// A file's downloadable copies: every known location (the first carries the file's
/// checksum for the signed URL) and those healthy now.
pub struct Located {
    pub replicas: Arc<Vec<ReplicaLocation>>,
    pub healthy: Vec<Candidate>,
}

/// Where `user`'s file `id` can be served from now. Uses the replica cache unless
/// `fresh`; a cached list that yields no healthy copy is re-read once (a replica may
/// have become present, or moved, since it was cached), and a list with no copy at all
/// is never cached, so "not yet replicated" is never remembered.
///
/// Errors: 404 when the file is not the caller's, 409 `not_ready` while its upload is
/// not complete, 503 when PostgreSQL is unavailable.
pub async fn locate(state: &SharedState, id: FileId, user: i64, fresh: bool) -> ApiResult<Located> {
    if !fresh {
        if let Some(replicas) = state.replicas.get(id, user) {
            let healthy = healthy(state, &replicas);
            if !healthy.is_empty() {
                return Ok(Located { replicas, healthy });
            }
            state.replicas.invalidate(id);
        }
    }
    let replicas = Arc::new(load_replicas(state, id, user).await?);
    if !replicas.is_empty() {
        state.replicas.insert(id, user, replicas.clone());
    }
    let healthy = healthy(state, &replicas);
    Ok(Located { replicas, healthy })
}

fn healthy(state: &SharedState, replicas: &[ReplicaLocation]) -> Vec<Candidate> {
    replicas
        .iter()
        .filter_map(|r| {
            let beat = state.heartbeats.healthy(r.node)?;
            Some(Candidate { public_url: r.public_url.clone(), lat: r.lat, lon: r.lon, rtt_ms: beat.rtt_ms })
        })
        .collect()
}

/// The caller's live file's present replicas on nodes that are not disabled. A file
/// that is not (yet) the caller's: 409 with the upload's state, or 404.
async fn load_replicas(state: &SharedState, id: FileId, user: i64) -> ApiResult<Vec<ReplicaLocation>> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT f.sha256, n.id, n.public_url, n.lat, n.lon, f.filename
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
                filename: row.get(5),
            })
        })
        .collect())
}
