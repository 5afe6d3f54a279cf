//! The `replicas` table: one row per (file, node) copy and its state.

use crate::cached::Cached;
use deadpool_postgres::GenericClient;
use ferry_shared::types::{ByteSize, FileId, NodeId};
use uuid::Uuid;

use crate::convert::size_from_db;
use crate::nodes::SshTarget;
use crate::{NodeState, ReplicaState, StoreError};

/// Places a new file's replicas in one statement: a `pending` row for `file` on each
/// node the placement rule picks ([`crate::nodes::eligible`] with `placement`), leaving
/// any row that exists alone. Returns the nodes whose row it inserted, in no particular
/// order (none when no node is eligible).
pub async fn place(
    c: &impl GenericClient,
    file: FileId,
    placement: crate::nodes::Placement<'_>,
) -> Result<Vec<NodeId>, StoreError> {
    let crate::nodes::PlacementParams { count, size, reserve, fresh_secs, exclude } = placement.params()?;
    let rows = c
        .query_cached(
            concat!(
                "WITH picked AS (",
                crate::nodes::eligible_sql!(),
                ") INSERT INTO replicas (file_id, node_id) SELECT $7, id FROM picked
                 ON CONFLICT DO NOTHING RETURNING node_id"
            ),
            &[&count, &size, &reserve, &fresh_secs, &exclude, &NodeState::Active, &file.0],
        )
        .await?;
    rows.iter().map(|r| Ok(NodeId(r.try_get("node_id")?))).collect()
}

/// A repair target: a `pending` row, resetting a row whose earlier copy failed.
pub async fn reset_pending(c: &impl GenericClient, file: FileId, node: NodeId) -> Result<(), StoreError> {
    c.execute_cached(
        "INSERT INTO replicas (file_id, node_id) VALUES ($1, $2)
         ON CONFLICT (file_id, node_id) DO UPDATE SET state = $3, last_error = NULL, updated_at = now()",
        &[&file.0, &node.0, &ReplicaState::Pending],
    )
    .await?;
    Ok(())
}

/// What the replicate job needs about one replica.
#[derive(Debug, Clone)]
pub struct CopyJob {
    pub state: ReplicaState,
    /// The file's verified sha256 (hex).
    pub sha256: String,
    /// The file's verified md5 (hex).
    pub md5: String,
    pub file_deleted: bool,
    pub node_state: NodeState,
    pub node: SshTarget,
}

/// The replica `(file, node)` with its file and node, if the row exists.
pub async fn copy_job(c: &impl GenericClient, file: FileId, node: NodeId) -> Result<Option<CopyJob>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT r.state, f.sha256, f.md5, f.deleted_at IS NOT NULL AS file_deleted, n.state AS node_state,
                    n.ssh_host, n.ssh_port, n.ssh_user, n.root_path
             FROM replicas r JOIN files f ON f.id = r.file_id JOIN nodes n ON n.id = r.node_id
             WHERE r.file_id = $1 AND r.node_id = $2",
            &[&file.0, &node.0],
        )
        .await?;
    row.as_ref().map(CopyJob::from_row).transpose()
}

impl CopyJob {
    fn from_row(r: &tokio_postgres::Row) -> Result<CopyJob, StoreError> {
        Ok(CopyJob {
            state: r.try_get("state")?,
            sha256: r.try_get("sha256")?,
            md5: r.try_get("md5")?,
            file_deleted: r.try_get("file_deleted")?,
            node_state: r.try_get("node_state")?,
            node: SshTarget::from_row(r)?,
        })
    }
}

/// Begins copy attempts, all in one statement (the replicate jobs a worker takes come
/// in bursts): each replica `(file, node)` becomes `copying` (attempts + 1) and is
/// returned with its file and node ([`copy_job`]'s row, state `copying`), when it is
/// `pending`, `copying` or `failed`, its file is live and its node not `disabled`.
/// One outcome per replica asked for, in order: `None` for a replica that cannot begin
/// (no row, present, being deleted, file deleted, node disabled; [`copy_job`] then says
/// which).
pub async fn begin_copy(
    c: &impl GenericClient,
    replicas: &[(FileId, NodeId)],
) -> Result<Vec<Option<CopyJob>>, StoreError> {
    let files: Vec<Uuid> = replicas.iter().map(|(f, _)| f.0).collect();
    let nodes: Vec<i32> = replicas.iter().map(|(_, n)| n.0).collect();
    let rows = c
        .query_cached(
            "UPDATE replicas r SET state = $3, attempts = r.attempts + 1, updated_at = now()
             FROM files f, nodes n, unnest($1::uuid[], $2::int4[]) AS x(file_id, node_id)
             WHERE r.file_id = x.file_id AND r.node_id = x.node_id AND r.state = ANY($4)
               AND f.id = r.file_id AND f.deleted_at IS NULL AND n.id = r.node_id AND n.state <> $5
             RETURNING r.file_id, r.node_id, r.state, f.sha256, f.md5, false AS file_deleted,
                       n.state AS node_state, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path",
            &[
                &files,
                &nodes,
                &ReplicaState::Copying,
                &[ReplicaState::Pending, ReplicaState::Copying, ReplicaState::Failed].as_slice(),
                &NodeState::Disabled,
            ],
        )
        .await?;
    let mut begun = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let key = (FileId(row.try_get("file_id")?), NodeId(row.try_get("node_id")?));
        begun.insert(key, CopyJob::from_row(row)?);
    }
    // A replica asked for twice (a duplicate delivery in the same group) was updated
    // once; both get its row, as two statements one after the other would have.
    Ok(replicas.iter().map(|key| begun.get(key).cloned()).collect())
}

/// Records verified copies: each replica `(file, node)` that is `copying` becomes
/// `present`, unless its file was deleted meanwhile. One statement for all of them
/// (the files of one rsync batch come back together). Returns the replicas whose row
/// changed, in no particular order.
pub async fn mark_present(
    c: &impl GenericClient,
    replicas: &[(FileId, NodeId)],
) -> Result<Vec<(FileId, NodeId)>, StoreError> {
    let files: Vec<Uuid> = replicas.iter().map(|(f, _)| f.0).collect();
    let nodes: Vec<i32> = replicas.iter().map(|(_, n)| n.0).collect();
    let rows = c
        .query_cached(
            "UPDATE replicas r SET state = $3, last_error = NULL, updated_at = now(), verified_at = now()
             FROM files f, unnest($1::uuid[], $2::int4[]) AS x(file_id, node_id)
             WHERE r.file_id = x.file_id AND r.node_id = x.node_id AND r.state = $4
               AND f.id = r.file_id AND f.deleted_at IS NULL
             RETURNING r.file_id, r.node_id",
            &[&files, &nodes, &ReplicaState::Present, &ReplicaState::Copying],
        )
        .await?;
    rows.iter().map(|r| Ok((FileId(r.try_get("file_id")?), NodeId(r.try_get("node_id")?)))).collect()
}

/// A file's replicas still being made (`pending` or `copying`) and `present`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub in_flight: i64,
    pub present: i64,
}

pub async fn progress(c: &impl GenericClient, file: FileId) -> Result<Progress, StoreError> {
    let row = c
        .query_one_cached(
            "SELECT count(*) FILTER (WHERE state = ANY($2)) AS in_flight,
                    count(*) FILTER (WHERE state = $3) AS present
             FROM replicas WHERE file_id = $1",
            &[&file.0, &[ReplicaState::Pending, ReplicaState::Copying].as_slice(), &ReplicaState::Present],
        )
        .await?;
    Ok(Progress { in_flight: row.try_get("in_flight")?, present: row.try_get("present")? })
}

/// Gives up on a copy in flight: `failed` with its reason, for the repair to replace.
pub async fn fail_copy(c: &impl GenericClient, file: FileId, node: NodeId, reason: &str) -> Result<(), StoreError> {
    c.execute_cached(
        "UPDATE replicas SET state = $4, last_error = $3, updated_at = now()
         WHERE file_id = $1 AND node_id = $2 AND state = ANY($5)",
        &[&file.0, &node.0, &reason, &ReplicaState::Failed, &[ReplicaState::Pending, ReplicaState::Copying].as_slice()],
    )
    .await?;
    Ok(())
}

/// Marks `files`' present replicas on `node` failed with `reason` (found corrupt or
/// missing); returns how many changed. The repair copies them again.
pub async fn fail_present(
    c: &impl GenericClient,
    node: NodeId,
    files: &[FileId],
    reason: &str,
) -> Result<u64, StoreError> {
    let ids: Vec<Uuid> = files.iter().map(|f| f.0).collect();
    Ok(c.execute_cached(
        "UPDATE replicas SET state = $4, last_error = $3, updated_at = now()
             WHERE node_id = $1 AND file_id = ANY($2) AND state = $5",
        &[&node.0, &ids, &reason, &ReplicaState::Failed, &ReplicaState::Present],
    )
    .await?)
}

/// Public URLs of nodes (not disabled, up) holding a present copy of `file`, lowest
/// round-trip time first: where a lost staging copy can be fetched back from.
pub async fn healthy_sources(c: &impl GenericClient, file: FileId) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT n.public_url FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN node_status s ON s.node_id = n.id
             WHERE r.file_id = $1 AND r.state = $2 AND n.state <> $3 AND s.up
             ORDER BY s.rtt_ms NULLS LAST",
            &[&file.0, &ReplicaState::Present, &NodeState::Disabled],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get("public_url")?)).collect()
}

/// Replicas of `file` if (and only if) the file is deleted, with their nodes: what
/// the delete job removes. A stray job for a live file finds nothing.
pub async fn of_deleted_file(c: &impl GenericClient, file: FileId) -> Result<Vec<(NodeId, SshTarget)>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT r.node_id, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path
             FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN files f ON f.id = r.file_id
             WHERE r.file_id = $1 AND f.deleted_at IS NOT NULL",
            &[&file.0],
        )
        .await?;
    rows.iter().map(|r| Ok((NodeId(r.try_get("node_id")?), SshTarget::from_row(r)?))).collect()
}

/// Removes the replica row.
pub async fn delete(c: &impl GenericClient, file: FileId, node: NodeId) -> Result<(), StoreError> {
    c.execute_cached("DELETE FROM replicas WHERE file_id = $1 AND node_id = $2", &[&file.0, &node.0]).await?;
    Ok(())
}

/// Sets the replica's state.
pub async fn set_state(
    c: &impl GenericClient,
    file: FileId,
    node: NodeId,
    state: ReplicaState,
) -> Result<(), StoreError> {
    c.execute_cached("UPDATE replicas SET state = $3 WHERE file_id = $1 AND node_id = $2", &[&file.0, &node.0, &state])
        .await?;
    Ok(())
}

/// A surplus replica marked `deleting`, locked, with how many present copies the file
/// has on other active nodes.
#[derive(Debug, Clone)]
pub struct Surplus {
    pub node: SshTarget,
    pub present_elsewhere: i64,
}

/// Locks the `deleting` replica `(file, node)` (`FOR UPDATE`) and counts the file's
/// present copies on other active nodes. Call inside a transaction that holds the
/// file's lock ([`crate::files::lock`]).
pub async fn lock_surplus(c: &impl GenericClient, file: FileId, node: NodeId) -> Result<Option<Surplus>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT n.ssh_host, n.ssh_port, n.ssh_user, n.root_path,
                    (SELECT count(*) FROM replicas r2 JOIN nodes n2 ON n2.id = r2.node_id
                     WHERE r2.file_id = r.file_id AND r2.node_id <> r.node_id
                       AND r2.state = $3 AND n2.state = $4) AS present_elsewhere
             FROM replicas r JOIN nodes n ON n.id = r.node_id
             WHERE r.file_id = $1 AND r.node_id = $2 AND r.state = $5
             FOR UPDATE OF r",
            &[&file.0, &node.0, &ReplicaState::Present, &NodeState::Active, &ReplicaState::Deleting],
        )
        .await?;
    row.map(|r| Ok(Surplus { node: SshTarget::from_row(&r)?, present_elsewhere: r.try_get("present_elsewhere")? }))
        .transpose()
}

/// What the scrub needs about a present replica of a live file.
pub async fn scrub_target(
    c: &impl GenericClient,
    file: FileId,
    node: NodeId,
) -> Result<Option<(String, SshTarget)>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT f.sha256, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path
             FROM replicas r JOIN files f ON f.id = r.file_id JOIN nodes n ON n.id = r.node_id
             WHERE r.file_id = $1 AND r.node_id = $2 AND r.state = $3 AND f.deleted_at IS NULL",
            &[&file.0, &node.0, &ReplicaState::Present],
        )
        .await?;
    row.map(|r| Ok((r.try_get("sha256")?, SshTarget::from_row(&r)?))).transpose()
}

/// Records that the replica's bytes were checked just now (and its scrub is done).
pub async fn mark_verified(c: &impl GenericClient, file: FileId, node: NodeId) -> Result<(), StoreError> {
    c.execute_cached(
        "UPDATE replicas SET verified_at = now(), scrub_queued_at = NULL WHERE file_id = $1 AND node_id = $2",
        &[&file.0, &node.0],
    )
    .await?;
    Ok(())
}

/// Ends the replica's outstanding scrub (done, moot, or given up) without recording a
/// verification.
pub async fn clear_scrub(c: &impl GenericClient, file: FileId, node: NodeId) -> Result<(), StoreError> {
    c.execute_cached(
        "UPDATE replicas SET scrub_queued_at = NULL WHERE file_id = $1 AND node_id = $2",
        &[&file.0, &node.0],
    )
    .await?;
    Ok(())
}

/// Of `found` (files seen on `node`), those with no replica row for that node.
pub async fn unaccounted(c: &impl GenericClient, node: NodeId, found: &[FileId]) -> Result<Vec<FileId>, StoreError> {
    let ids: Vec<Uuid> = found.iter().map(|f| f.0).collect();
    let rows = c
        .query_cached(
            "SELECT c.id FROM unnest($1::uuid[]) AS c(id)
             WHERE NOT EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = c.id AND r.node_id = $2)",
            &[&ids, &node.0],
        )
        .await?;
    rows.iter().map(|r| Ok(FileId(r.try_get("id")?))).collect()
}

/// A slice of the files table in id order, `(after, through]`: what one round of the
/// monitor's replica sweeps examines, so that a round costs the same at a thousand
/// files and at millions (a sweep over every file took PostgreSQL 8.1 s for
/// [`under_replicated`] and 3.1 s for [`retire_surplus`] at 1,000,000 files; a slice
/// of 10,000 takes 83 and 65 ms).
///
/// Bounds are file ids. File ids are version-4 UUIDs, so neither [`Uuid::nil`] (the
/// start) nor [`Uuid::max`] (the end) is ever one: `after = nil` takes the first file,
/// `through = max` the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRange {
    /// Exclusive lower bound.
    pub after: Uuid,
    /// Inclusive upper bound.
    pub through: Uuid,
}

impl FileRange {
    /// Every file.
    pub const ALL: FileRange = FileRange { after: Uuid::nil(), through: Uuid::max() };

    /// Whether the slice runs to the last file (the next one starts over).
    pub fn reaches_end(&self) -> bool {
        self.through == Uuid::max()
    }
}

/// The slice of up to `files` files (deleted ones included: they cost the scan the
/// same) after `after` in id order; it reaches the end (see [`FileRange::reaches_end`])
/// when fewer remain. An index-only walk of `files`' primary key.
pub async fn file_range(c: &impl GenericClient, after: Uuid, files: i64) -> Result<FileRange, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT id FROM files WHERE id > $1 ORDER BY id OFFSET $2 LIMIT 1",
            &[&after, &(files.max(1) - 1)],
        )
        .await?;
    let through = match row {
        Some(row) => row.try_get("id")?,
        None => Uuid::max(),
    };
    Ok(FileRange { after, through })
}

/// A live file with fewer live replicas than wanted.
#[derive(Debug, Clone)]
pub struct UnderReplicated {
    pub file: FileId,
    pub size: ByteSize,
    /// Nodes holding a replica row in any state but `failed` (not to be chosen again).
    pub existing: Vec<NodeId>,
}

/// The first `limit` live files of `range`, in id order, with fewer than `want` live
/// replicas: pending, copying or present, on active nodes not down for longer than
/// `grace_secs`. Fewer than `limit` means the whole range was examined.
pub async fn under_replicated(
    c: &impl GenericClient,
    want: i64,
    grace_secs: f64,
    range: FileRange,
    limit: i64,
) -> Result<Vec<UnderReplicated>, StoreError> {
    examine(c, want, grace_secs, "f.id > $7 AND f.id <= $8", &range.after, &range.through, limit).await
}

/// [`under_replicated`] among the files of the `recent` replicas that failed last (a
/// copy that failed for good, a scrub or a download that found a copy corrupt): the
/// monitor looks at these every round, so a lost copy is made again at once rather than
/// when its file's turn in the sweep comes. An index walk (`replicas_failed`).
pub async fn under_replicated_after_failure(
    c: &impl GenericClient,
    want: i64,
    grace_secs: f64,
    recent: i64,
) -> Result<Vec<UnderReplicated>, StoreError> {
    let where_ = "f.id IN (SELECT file_id FROM replicas WHERE state = $7 ORDER BY updated_at DESC LIMIT $8)";
    examine(c, want, grace_secs, where_, &ReplicaState::Failed, &recent, recent).await
}

/// The live files chosen by `where_` (over `files f`, with its own `$7` and `$8`) with
/// fewer than `want` live replicas, at most `limit`, in id order.
async fn examine(
    c: &impl GenericClient,
    want: i64,
    grace_secs: f64,
    where_: &str,
    p7: &(dyn tokio_postgres::types::ToSql + Sync),
    p8: &(dyn tokio_postgres::types::ToSql + Sync),
    limit: i64,
) -> Result<Vec<UnderReplicated>, StoreError> {
    let rows = c
        .query_cached(
            &format!(
                "SELECT f.id, f.size,
                        COALESCE(array_agg(r.node_id) FILTER (WHERE r.state = ANY($4)), '{{}}') AS existing
                 FROM files f LEFT JOIN replicas r ON r.file_id = f.id LEFT JOIN nodes n ON n.id = r.node_id
                 LEFT JOIN node_status s ON s.node_id = r.node_id
                 WHERE f.deleted_at IS NULL AND {where_}
                 GROUP BY f.id
                 HAVING count(r.node_id) FILTER (WHERE r.state = ANY($5) AND n.state = $6
                            AND (s.down_since IS NULL OR s.down_since > now() - make_interval(secs => $2::float8))
                            AND {COPY_CAN_LAND}) < $1
                 ORDER BY f.id
                 LIMIT $3"
            ),
            &[
                &want,
                &grace_secs,
                &limit,
                &[ReplicaState::Pending, ReplicaState::Copying, ReplicaState::Present, ReplicaState::Deleting]
                    .as_slice(),
                &LIVE.as_slice(),
                &NodeState::Active,
                p7,
                p8,
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let existing: Vec<i32> = r.try_get("existing")?;
            Ok(UnderReplicated {
                file: FileId(r.try_get("id")?),
                size: size_from_db("files.size", r.try_get("size")?)?,
                existing: existing.into_iter().map(NodeId).collect(),
            })
        })
        .collect()
}

/// A replica still being made (`pending`, `copying`) counts as live only while its node
/// can take it, as placement asks (`nodes::takes_copies_sql`: not known to refuse writes
/// nor to have its sshd down). Copies bound for such a node retry until their jobs give
/// up (8 attempts, minutes); counted live meanwhile, their files looked whole to the
/// repair and to `ferry_under_replicated_files` (the operator trial of stop 32: 148
/// files at one copy for 9 minutes, the metric at 0). A present copy there is still served and
/// still counts. SQL over `replicas r` and `node_status s`.
const COPY_CAN_LAND: &str = concat!("(r.state = 'present' OR (", crate::nodes::takes_copies_sql!(), "))");

/// States that count as a live copy (made or being made).
const LIVE: [ReplicaState; 3] = [ReplicaState::Pending, ReplicaState::Copying, ReplicaState::Present];

/// The file's live replicas (as in [`under_replicated`]).
pub async fn live_count(c: &impl GenericClient, file: FileId, grace_secs: f64) -> Result<i64, StoreError> {
    let row = c
        .query_one_cached(
            &format!(
                "SELECT count(*) AS live FROM replicas r JOIN nodes n ON n.id = r.node_id
                 LEFT JOIN node_status s ON s.node_id = r.node_id
                 WHERE r.file_id = $1 AND r.state = ANY($3) AND n.state = $4
                   AND (s.down_since IS NULL OR s.down_since > now() - make_interval(secs => $2::float8))
                   AND {COPY_CAN_LAND}"
            ),
            &[&file.0, &grace_secs, &LIVE.as_slice(), &NodeState::Active],
        )
        .await?;
    Ok(row.try_get("live")?)
}

fn pairs(rows: &[tokio_postgres::Row]) -> Result<Vec<(FileId, NodeId)>, StoreError> {
    rows.iter().map(|r| Ok((FileId(r.try_get("file_id")?), NodeId(r.try_get("node_id")?)))).collect()
}

/// Marks `deleting` the present replicas on draining nodes, among the files of `range`,
/// whose file has at least `want` present replicas on active nodes; returns them. One
/// slice of the files at a time (as the top-up and the surplus trim go), so a call's
/// cost and the number of copies it retires are bounded by the slice, however many
/// copies the draining nodes hold.
pub async fn retire_draining(
    c: &impl GenericClient,
    want: i64,
    range: FileRange,
) -> Result<Vec<(FileId, NodeId)>, StoreError> {
    let rows = c
        .query_cached(
            "UPDATE replicas r SET state = $2, updated_at = now()
             FROM nodes n
             WHERE n.id = r.node_id AND n.state = $3 AND r.state = $4
               AND r.file_id > $6 AND r.file_id <= $7
               AND (SELECT count(*) FROM replicas r2 JOIN nodes n2 ON n2.id = r2.node_id
                    WHERE r2.file_id = r.file_id AND r2.state = $4 AND n2.state = $5) >= $1
             RETURNING r.file_id, r.node_id",
            &[
                &want,
                &ReplicaState::Deleting,
                &NodeState::Draining,
                &ReplicaState::Present,
                &NodeState::Active,
                &range.after,
                &range.through,
            ],
        )
        .await?;
    pairs(&rows)
}

/// Copies beyond `want` on healthy active nodes among the files of `range` (a node came
/// back after its files were repaired elsewhere): keeps the `want` on the nodes with
/// most room, marks the rest `deleting` and returns them.
pub async fn retire_surplus(
    c: &impl GenericClient,
    want: i64,
    range: FileRange,
) -> Result<Vec<(FileId, NodeId)>, StoreError> {
    // Ranked first, on their own (MATERIALIZED): a walk of the replicas' primary key
    // over the range, without `files`. Joined with `files` inside the ranking, the
    // planner chose a scan of every file (0.39 s at 1,000,000 files); filtering the
    // ranking by an aggregate of itself, it re-ran the aggregate for every row (2 s at
    // 2,800 files). A ranked copy's file is looked up (a scalar subquery: one index
    // probe each) only for the copies beyond R. 65 ms per 10,000-file slice at
    // 1,000,000 files, 6 ms at 2,800 files.
    let rows = c
        .query_cached(
            "WITH ranked AS MATERIALIZED (
                 SELECT r.file_id, r.node_id,
                        row_number() OVER (PARTITION BY r.file_id ORDER BY s.free_bytes DESC, r.node_id) AS rank
                 FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN node_status s ON s.node_id = r.node_id
                 WHERE r.file_id > $5 AND r.file_id <= $6 AND r.state = $3 AND n.state = $4 AND s.up),
             surplus AS MATERIALIZED (
                 SELECT file_id, node_id FROM ranked
                 WHERE rank > $1 AND (SELECT f.deleted_at IS NULL FROM files f WHERE f.id = ranked.file_id))
             UPDATE replicas r SET state = $2, updated_at = now()
             FROM surplus
             WHERE r.file_id = surplus.file_id AND r.node_id = surplus.node_id AND r.state = $3
             RETURNING r.file_id, r.node_id",
            &[&want, &ReplicaState::Deleting, &ReplicaState::Present, &NodeState::Active, &range.after, &range.through],
        )
        .await?;
    pairs(&rows)
}

/// Deletes the `failed` replica rows, among the files of `range`, of files that have at
/// least `want` present replicas on active nodes again; returns how many. Such a row
/// records a copy given up (failed for good, revoked, or found corrupt) that the repair
/// has since made elsewhere: its history is in the job records. Kept, it marked
/// whatever bytes the failure left on its node as accounted for, so the orphan sweep
/// never reclaimed them ([`unaccounted`]), and a later replay of its dead copy made a
/// copy beyond R. A file still short keeps its failed rows (the repair reads them).
pub async fn forget_failed(c: &impl GenericClient, want: i64, range: FileRange) -> Result<u64, StoreError> {
    Ok(c.execute_cached(
        "DELETE FROM replicas r
         WHERE r.file_id > $2 AND r.file_id <= $3 AND r.state = $4
           AND (SELECT count(*) FROM replicas r2 JOIN nodes n2 ON n2.id = r2.node_id
                WHERE r2.file_id = r.file_id AND r2.state = $5 AND n2.state = $6) >= $1",
        &[&want, &range.after, &range.through, &ReplicaState::Failed, &ReplicaState::Present, &NodeState::Active],
    )
    .await?)
}

/// Claims present replicas (on nodes that are up) not verified within `interval_secs`
/// and not already queued within `lease_secs`, at most `max_queued` queued at once,
/// stamping `scrub_queued_at`; returns them for scrub jobs.
///
/// Two statements: the free slots first, then a claim with that number as its limit.
/// As one statement (the limit a subquery) the planner could not know the limit was
/// small and hashed every replica to find the few it claimed: 0.3 s at 2,000,000
/// replicas, against about 1 ms this way (the oldest due come from the `replicas_scrub`
/// index, migration 17).
pub async fn claim_scrub(
    c: &impl GenericClient,
    interval_secs: f64,
    max_queued: i64,
    lease_secs: f64,
) -> Result<Vec<(FileId, NodeId)>, StoreError> {
    let queued: i64 = c
        .query_one_cached(
            "SELECT count(*) FROM replicas WHERE scrub_queued_at >= now() - make_interval(secs => $1::float8)",
            &[&lease_secs],
        )
        .await?
        .try_get(0)?;
    let free = max_queued.saturating_sub(queued);
    if free <= 0 {
        return Ok(Vec::new());
    }
    let rows = c
        .query_cached(
            "UPDATE replicas SET scrub_queued_at = now()
             WHERE (file_id, node_id) IN (
                 SELECT r.file_id, r.node_id FROM replicas r JOIN node_status s ON s.node_id = r.node_id
                 WHERE r.state = $4 AND s.up
                   AND COALESCE(r.verified_at, r.updated_at) < now() - make_interval(secs => $1::float8)
                   AND (r.scrub_queued_at IS NULL OR r.scrub_queued_at < now() - make_interval(secs => $3::float8))
                 ORDER BY COALESCE(r.verified_at, r.updated_at)
                 LIMIT $2
                 FOR UPDATE OF r SKIP LOCKED)
             RETURNING file_id, node_id",
            &[&interval_secs, &free, &lease_secs, &ReplicaState::Present],
        )
        .await?;
    pairs(&rows)
}

/// A replica as the admin views and the CLI show it.
#[derive(Debug, Clone)]
pub struct Detail {
    pub file: FileId,
    pub node: NodeId,
    pub node_name: String,
    pub node_state: NodeState,
    pub state: ReplicaState,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The replicas of `files`, by node name.
pub async fn of_files(c: &impl GenericClient, files: &[FileId]) -> Result<Vec<Detail>, StoreError> {
    let ids: Vec<Uuid> = files.iter().map(|f| f.0).collect();
    let rows = c
        .query_cached(
            "SELECT r.file_id, r.node_id, n.name, n.state AS node_state, r.state, r.attempts, r.last_error, r.updated_at
             FROM replicas r JOIN nodes n ON n.id = r.node_id
             WHERE r.file_id = ANY($1) ORDER BY n.name",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Detail {
                file: FileId(r.try_get("file_id")?),
                node: NodeId(r.try_get("node_id")?),
                node_name: r.try_get("name")?,
                node_state: r.try_get("node_state")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}
