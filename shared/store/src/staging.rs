//! Which staging directories are still needed: questions spanning `uploads`, `files`
//! and `replicas`, asked by the workers' staging garbage collection and delete job.

use crate::cached::Cached;
use deadpool_postgres::GenericClient;
use ferry_shared::types::FileId;
use uuid::Uuid;

use crate::{ReplicaState, StoreError, UploadState};

/// Whether the staging bytes of `id` may go: its file is deleted, or its upload
/// expired or failed.
pub async fn releasable(c: &impl GenericClient, id: FileId) -> Result<bool, StoreError> {
    let row = c
        .query_one_cached(
            "SELECT EXISTS (SELECT 1 FROM files WHERE id = $1 AND deleted_at IS NOT NULL)
                 OR EXISTS (SELECT 1 FROM uploads WHERE id = $1 AND status = ANY($2)) AS releasable",
            &[&id.0, &[UploadState::Expired, UploadState::Failed].as_slice()],
        )
        .await?;
    Ok(row.try_get("releasable")?)
}

/// A staging directory the sweep found: its upload id, and whether it is older than
/// the sweep's grace.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub id: FileId,
    pub old: bool,
}

/// Of `candidates`, the uploads whose staging bytes nobody needs: a complete file
/// with at least `want` present replicas, none in flight and none changed within
/// `linger` (the API serves the staging copy while no node copy is healthy in its
/// view; `worker.staging_linger_secs`), whatever the directory's age; and, for an old
/// directory only, no upload row (the API creates the directory before its row
/// commits), an upload failed or expired, or its file deleted.
pub async fn unneeded(
    c: &impl GenericClient,
    candidates: &[Candidate],
    want: i64,
    linger: std::time::Duration,
) -> Result<Vec<FileId>, StoreError> {
    let ids: Vec<Uuid> = candidates.iter().map(|c| c.id.0).collect();
    let old: Vec<bool> = candidates.iter().map(|c| c.old).collect();
    let rows = c
        .query_cached(
            "SELECT c.id FROM unnest($1::uuid[], $2::bool[]) AS c(id, old)
             LEFT JOIN uploads u ON u.id = c.id
             LEFT JOIN files f ON f.id = c.id
             WHERE (c.old AND (u.id IS NULL OR u.status = ANY($4) OR f.deleted_at IS NOT NULL))
                OR (u.status = $5 AND f.id IS NOT NULL AND f.deleted_at IS NULL
                    AND (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.state = $6) >= $3
                    AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = f.id
                                    AND (r.state = ANY($7)
                                         OR r.updated_at > now() - make_interval(secs => $8::float8))))",
            &[
                &ids,
                &old,
                &want,
                &[UploadState::Failed, UploadState::Expired].as_slice(),
                &UploadState::Complete,
                &ReplicaState::Present,
                &[ReplicaState::Pending, ReplicaState::Copying].as_slice(),
                &linger.as_secs_f64(),
            ],
        )
        .await?;
    rows.iter().map(|r| Ok(FileId(r.try_get("id")?))).collect()
}

/// Advisory lock key: one worker at a time sweeps the nodes for orphan files.
const NODE_SWEEP_LOCK: i64 = 0x6665_7272_7903;

/// Takes the node-sweep lock for the rest of the caller's transaction; false when
/// another worker holds it.
pub async fn try_lock_node_sweep(tx: &impl GenericClient) -> Result<bool, StoreError> {
    let row = tx.query_one_cached("SELECT pg_try_advisory_xact_lock($1) AS locked", &[&NODE_SWEEP_LOCK]).await?;
    Ok(row.try_get("locked")?)
}
