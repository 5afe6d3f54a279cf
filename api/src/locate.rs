//! Where a file can be downloaded from right now: its verified (`present`) replicas on
//! nodes that are not disabled and whose latest heartbeat in this process is fresh and
//! up. One definition for the download redirect and for the completing POST, so a
//! `200 complete` that waits for [`StorageConfig::write_quorum`] node copies means the
//! redirect that follows finds one. (With a quorum of 0 the redirect falls back to the
//! staging copy: `crate::routes::staging`.)
//!
//! [`StorageConfig::write_quorum`]: ferry_shared::config::StorageConfig::write_quorum

use std::sync::Arc;

use ferry_shared::types::{FileId, UserId};
use ferry_store::uploads as store_uploads;
use ferry_store::{files, UploadState};

use crate::error::{ApiError, ApiResult};
use crate::nearest::Candidate;
use crate::replica_cache::{FileSources, ReplicaLocation};
use crate::state::SharedState;
use crate::uploads::effective_state;

/// A file's download sources (its signed facts and every known copy) and the copies
/// healthy now.
pub struct Located {
    pub sources: Arc<FileSources>,
    pub healthy: Vec<Candidate>,
}

/// Where `user`'s file `id` can be served from now. Uses the replica cache unless
/// `fresh`; a cached list that yields no healthy copy is re-read once (a replica may
/// have become present, or moved, since it was cached), and a list with no copy at all
/// is never cached, so "not yet replicated" is never remembered.
///
/// Errors: 404 when the file is not the caller's, 409 `not_ready` while its upload is
/// not complete, 503 when PostgreSQL is unavailable.
pub async fn locate(state: &SharedState, id: FileId, user: UserId, fresh: bool) -> ApiResult<Located> {
    if !fresh {
        if let Some(sources) = state.replicas.get(id, user) {
            let healthy = healthy(state, &sources.replicas);
            if !healthy.is_empty() {
                return Ok(Located { sources, healthy });
            }
            state.replicas.invalidate(id);
        }
    }
    let sources = Arc::new(load_sources(state, id, user).await?);
    if !sources.replicas.is_empty() {
        state.replicas.insert(id, user, sources.clone());
    }
    let healthy = healthy(state, &sources.replicas);
    Ok(Located { sources, healthy })
}

/// The healthy node copies of live file `id`, whoever owns it (for a signed link,
/// which already names the file it grants); none for a deleted or unknown file.
pub async fn node_copies(state: &SharedState, id: FileId) -> ApiResult<Vec<Candidate>> {
    let sources = files::download_sources(&state.pool.get().await?, id, None).await?;
    Ok(sources.map(|s| healthy(state, &s.replicas)).unwrap_or_default())
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

/// The caller's live file: its checksum, name and present replicas on nodes that are
/// not disabled. A file that is not (yet) the caller's: 409 with the upload's state, or
/// 404.
async fn load_sources(state: &SharedState, id: FileId, user: UserId) -> ApiResult<FileSources> {
    let client = state.pool.get().await?;
    let Some(sources) = files::download_sources(&client, id, Some(user)).await? else {
        return match store_uploads::load(&client, id, user, false).await? {
            Some(upload) if upload.state != UploadState::Complete => {
                let shown = effective_state(&upload).as_str();
                Err(ApiError::Conflict {
                    code: "not_ready",
                    detail: format!("The file is not ready for download (state {shown})."),
                    state: Some(shown),
                })
            }
            _ => Err(ApiError::NotFound { what: "File" }),
        };
    };
    Ok(to_sources(sources))
}

fn to_sources(sources: files::DownloadSources) -> FileSources {
    FileSources { sha256: sources.sha256.parse().ok(), filename: sources.filename, replicas: sources.replicas }
}
