//! Periodic bookkeeping done by the active monitor: expiring abandoned uploads and
//! topping up under-replicated files.

use deadpool_postgres::Pool;
use ferry_queue::outbox;
use ferry_queue::Job;
use ferry_shared::config::Config;
use ferry_shared::types::{FileId, NodeId};
use ferry_store::StoreError;
use uuid::Uuid;

/// Uploads past their expiry become `expired` (further chunks get 410) and a delete
/// job reclaims their staging bytes. Completed files are never touched.
pub async fn expire_uploads(pool: &Pool) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "UPDATE uploads SET status = 'expired', error = 'expired before completion'
             WHERE id IN (SELECT id FROM uploads WHERE status = 'uploading' AND expires_at <= now()
                          ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED)
             RETURNING id",
            &[],
        )
        .await?;
    for row in &rows {
        outbox::enqueue(&tx, &Job::Delete { file: FileId(row.get(0)) }).await?;
    }
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(uploads.expired = rows.len(), "expired abandoned uploads");
    }
    Ok(rows.len())
}

/// Files with fewer live replicas (pending, copying or present, on active nodes) than
/// the replication factor get new targets among eligible nodes, and replicate jobs.
/// Replicas on draining or disabled nodes, or on nodes down for longer than
/// `monitor.node_grace_secs`, do not count, so draining a node or losing one copies its
/// files elsewhere.
pub async fn top_up_replicas(pool: &Pool, config: &Config) -> Result<usize, StoreError> {
    let want = i64::from(config.storage.replication_factor);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let files = tx
        .query(
            "SELECT f.id, f.size,
                    COALESCE(array_agg(r.node_id) FILTER (WHERE r.state IN ('pending', 'copying', 'present', 'deleting')), '{}')
             FROM files f LEFT JOIN replicas r ON r.file_id = f.id LEFT JOIN nodes n ON n.id = r.node_id
             LEFT JOIN node_status s ON s.node_id = r.node_id
             WHERE f.deleted_at IS NULL
             GROUP BY f.id
             HAVING count(r.node_id) FILTER (WHERE r.state IN ('pending', 'copying', 'present') AND n.state = 'active'
                        AND (s.down_since IS NULL OR s.down_since > now() - make_interval(secs => $2::float8))) < $1
             LIMIT 200",
            &[&want, &(config.monitor.node_grace_secs as f64)],
        )
        .await?;
    ferry_shared::metrics::UNDER_REPLICATED.set(files.len() as i64);
    let mut added = 0;
    for file in &files {
        let (id, size, existing): (Uuid, i64, Vec<i32>) = (file.get(0), file.get(1), file.get(2));
        let live: i64 = tx
            .query_one(
                "SELECT count(*) FROM replicas r JOIN nodes n ON n.id = r.node_id
                 LEFT JOIN node_status s ON s.node_id = r.node_id
                 WHERE r.file_id = $1 AND r.state IN ('pending', 'copying', 'present') AND n.state = 'active'
                   AND (s.down_since IS NULL OR s.down_since > now() - make_interval(secs => $2::float8))",
                &[&id, &(config.monitor.node_grace_secs as f64)],
            )
            .await?
            .get(0);
        let nodes = tx
            .query(
                "SELECT n.id FROM nodes n JOIN node_status s ON s.node_id = n.id
                 WHERE n.state = 'active' AND s.up AND s.checked_at > now() - make_interval(secs => $3::float8)
                   AND s.free_bytes >= $2 AND NOT (n.id = ANY($4))
                 ORDER BY s.free_bytes::float8 * (0.9 + random() * 0.2) DESC LIMIT $1",
                &[
                    &(want - live),
                    &(size + config.storage.node_reserve_bytes as i64),
                    &(config.api.heartbeat_stale_secs as f64),
                    &existing,
                ],
            )
            .await?;
        for node in &nodes {
            let node = NodeId(node.get(0));
            // A node whose earlier copy failed may be chosen again: reset that row.
            tx.execute(
                "INSERT INTO replicas (file_id, node_id) VALUES ($1, $2)
                 ON CONFLICT (file_id, node_id) DO UPDATE SET state = 'pending', last_error = NULL, updated_at = now()",
                &[&id, &node.0],
            )
            .await?;
            outbox::enqueue(&tx, &Job::Replicate { file: FileId(id), node }).await?;
            added += 1;
        }
    }
    tx.commit().await?;
    if added > 0 {
        tracing::info!(replicas.added = added, "topped up under-replicated files");
    }
    Ok(added)
}

/// Replicas on draining nodes whose file already has R present replicas on active
/// nodes, and copies beyond R on healthy nodes, are marked `deleting` and handed to the
/// delete workers; once a draining node holds nothing it can be removed with nothing
/// lost.
pub async fn retire_drained(pool: &Pool, config: &Config) -> Result<usize, StoreError> {
    let want = i64::from(config.storage.replication_factor);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut rows = tx
        .query(
            "UPDATE replicas r SET state = 'deleting', updated_at = now()
             FROM nodes n
             WHERE n.id = r.node_id AND n.state = 'draining' AND r.state = 'present'
               AND (SELECT count(*) FROM replicas r2 JOIN nodes n2 ON n2.id = r2.node_id
                    WHERE r2.file_id = r.file_id AND r2.state = 'present' AND n2.state = 'active') >= $1
             RETURNING r.file_id, r.node_id",
            &[&want],
        )
        .await?;
    // Copies beyond R on healthy active nodes (a node came back after its files were
    // repaired elsewhere): keep the R on the nodes with most room, retire the rest.
    rows.extend(
        tx.query(
            "WITH live AS (
                 SELECT r.file_id, r.node_id,
                        row_number() OVER (PARTITION BY r.file_id ORDER BY s.free_bytes DESC, r.node_id) AS rank
                 FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN node_status s ON s.node_id = r.node_id
                 JOIN files f ON f.id = r.file_id
                 WHERE r.state = 'present' AND n.state = 'active' AND s.up AND f.deleted_at IS NULL)
             UPDATE replicas r SET state = 'deleting', updated_at = now()
             FROM live
             WHERE live.file_id = r.file_id AND live.node_id = r.node_id AND live.rank > $1 AND r.state = 'present'
             RETURNING r.file_id, r.node_id",
            &[&want],
        )
        .await?,
    );
    for row in &rows {
        outbox::enqueue(&tx, &Job::DropReplica { file: FileId(row.get(0)), node: NodeId(row.get(1)) }).await?;
    }
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(replicas.retired = rows.len(), "retiring replicas from draining nodes");
    }
    Ok(rows.len())
}

/// A queued scrub that has not finished after this long (its job was lost, e.g.
/// dead-lettered after a crash loop) no longer blocks the replica's next scrub.
pub const SCRUB_LEASE_SECS: u64 = 3600;

/// Schedules a sha256 re-check of present replicas not verified within the scrub
/// interval (on nodes that are up), oldest first. A replica whose last scrub is still
/// queued is skipped, and at most `monitor.scrub_max_queued` scrubs are outstanding at
/// once: scheduling more than the workers verify would grow the replicate queue
/// without bound, and repairs (same queue) would wait behind it.
pub async fn schedule_scrub(pool: &Pool, config: &Config) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "UPDATE replicas SET scrub_queued_at = now()
             WHERE (file_id, node_id) IN (
                 SELECT r.file_id, r.node_id FROM replicas r JOIN node_status s ON s.node_id = r.node_id
                 WHERE r.state = 'present' AND s.up
                   AND COALESCE(r.verified_at, r.updated_at) < now() - make_interval(secs => $1::float8)
                   AND (r.scrub_queued_at IS NULL OR r.scrub_queued_at < now() - make_interval(secs => $3::float8))
                 ORDER BY COALESCE(r.verified_at, r.updated_at)
                 LIMIT GREATEST(0, $2::int8 - (SELECT count(*) FROM replicas q
                                               WHERE q.scrub_queued_at >= now() - make_interval(secs => $3::float8)))
                 FOR UPDATE OF r SKIP LOCKED)
             RETURNING file_id, node_id",
            &[
                &(config.monitor.scrub_interval_secs as f64),
                &i64::from(config.monitor.scrub_max_queued),
                &(SCRUB_LEASE_SECS as f64),
            ],
        )
        .await?;
    for row in &rows {
        outbox::enqueue(&tx, &Job::Verify { file: FileId(row.get(0)), node: NodeId(row.get(1)) }).await?;
    }
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(replicas.scrubbing = rows.len(), "scheduled replica scrub");
    }
    Ok(rows.len())
}
