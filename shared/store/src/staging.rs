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

/// Of `candidates`, the uploads whose staging bytes nobody needs: no upload row,
/// upload failed or expired, file deleted, or file complete with at least `want`
/// present replicas and no copy in flight.
pub async fn unneeded(c: &impl GenericClient, candidates: &[FileId], want: i64) -> Result<Vec<FileId>, StoreError> {
    let ids: Vec<Uuid> = candidates.iter().map(|f| f.0).collect();
    let rows = c
        .query_cached(
            "SELECT c.id FROM unnest($1::uuid[]) AS c(id)
             LEFT JOIN uploads u ON u.id = c.id
             LEFT JOIN files f ON f.id = c.id
             WHERE u.id IS NULL
                OR u.status = ANY($3)
                OR f.deleted_at IS NOT NULL
                OR (u.status = $4 AND f.id IS NOT NULL
                    AND (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.state = $5) >= $2
                    AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = f.id
                                    AND r.state = ANY($6)))",
            &[
                &ids,
                &want,
                &[UploadState::Failed, UploadState::Expired].as_slice(),
                &UploadState::Complete,
                &ReplicaState::Present,
                &[ReplicaState::Pending, ReplicaState::Copying].as_slice(),
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
