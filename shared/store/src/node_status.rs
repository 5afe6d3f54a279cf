//! The `node_status` table (each node's last probe, written by the active monitor) and
//! the history the same write keeps: `node_events` (every up/down transition with its
//! reason) and `node_space` (free-space samples for the trend).

use crate::cached::Cached;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ferry_shared::types::{ByteSize, NodeId};

use crate::convert::{size_from_db, size_to_db};
use crate::StoreError;

/// A free-space sample is kept at most this often per node (seconds): 144 a day.
pub const SPACE_SAMPLE_SECS: f64 = 600.0;
/// Space samples older than this are dropped (seconds: 7 days).
pub const SPACE_RETENTION_SECS: f64 = 7.0 * 86_400.0;
/// Up/down transitions older than this are dropped (seconds: 30 days).
pub const EVENT_RETENTION_SECS: f64 = 30.0 * 86_400.0;

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe<'a> {
    pub up: bool,
    pub free: ByteSize,
    pub total: ByteSize,
    pub rtt_ms: Option<f64>,
    /// Why the node counts as down.
    pub error: Option<&'a str>,
}

/// Consecutive failed checks of a node's sshd before it counts as unreachable: one
/// banner late under load (the trial of stop 28 saw a healthy sshd miss the 1.5 s
/// timeout once, during a burst) is not an outage.
pub const SSH_FAILURES_TO_DOWN: i32 = 2;

/// Records the check of the node's sshd (`Ok` with the identification string it sent,
/// or `Err` with why not) on its status row, which the node's first probe wrote: a
/// good check makes it reachable at once, the [`SSH_FAILURES_TO_DOWN`]th failure in a
/// row unreachable (a failure before that keeps the last verdict, with its error).
/// Returns the verdict (`ssh_up`: `None` while a first check's failure awaits its
/// second) and whether this check changed it.
pub async fn record_ssh(
    c: &impl GenericClient,
    node: NodeId,
    check: Result<&str, &str>,
) -> Result<(Option<bool>, bool), StoreError> {
    let (ok, error) = match check {
        Ok(_) => (true, None),
        Err(error) => (false, Some(error)),
    };
    let row = c
        .query_opt_cached(
            "WITH prev AS (SELECT ssh_up FROM node_status WHERE node_id = $1)
             UPDATE node_status SET
                 ssh_failures = CASE WHEN $2 THEN 0 ELSE ssh_failures + 1 END,
                 ssh_up = CASE WHEN $2 THEN true WHEN ssh_failures + 1 >= $4 THEN false ELSE ssh_up END,
                 ssh_error = $3, ssh_checked_at = now()
             WHERE node_id = $1
             RETURNING ssh_up, ssh_up IS DISTINCT FROM (SELECT ssh_up FROM prev) AS changed",
            &[&node.0, &ok, &error, &SSH_FAILURES_TO_DOWN],
        )
        .await?;
    let Some(row) = row else { return Ok((None, false)) };
    Ok((row.try_get("ssh_up")?, row.try_get("changed")?))
}

/// Records the agent's write check of its storage root (`None`: a file could be
/// written; `Some` why not) on its status row, which the same probe's [`record`] wrote:
/// `writable` follows each answer (a refused write is the filesystem's verdict, not a
/// slow network's, so no second one is waited for). Returns the verdict and whether
/// this answer changed it (`(None, false)` for a node with no status row).
pub async fn record_write(
    c: &impl GenericClient,
    node: NodeId,
    write_error: Option<&str>,
) -> Result<(Option<bool>, bool), StoreError> {
    let row = c
        .query_opt_cached(
            "WITH prev AS (SELECT writable FROM node_status WHERE node_id = $1)
             UPDATE node_status SET writable = $2::text IS NULL, write_error = $2, write_checked_at = now()
             WHERE node_id = $1
             RETURNING writable, writable IS DISTINCT FROM (SELECT writable FROM prev) AS changed",
            &[&node.0, &write_error],
        )
        .await?;
    let Some(row) = row else { return Ok((None, false)) };
    Ok((row.try_get("writable")?, row.try_get("changed")?))
}

/// Upserts the node's status in one statement: `down_since` is set at the first failed
/// probe and cleared by the next good one, `last_up_at` moves with every good probe; a
/// change of up/down (or a node's first probe) is appended to `node_events` with the
/// reason, and an up probe adds a `node_space` sample when the last is older than
/// [`SPACE_SAMPLE_SECS`]. Returns true when the node changed between up and down.
pub async fn record(c: &impl GenericClient, node: NodeId, probe: &Probe<'_>) -> Result<bool, StoreError> {
    // Data-modifying CTEs all see the table as it was before the statement, so `prev`
    // is the previous probe even though `upsert` replaces it.
    let row = c
        .query_one_cached(
            "WITH prev AS (SELECT up FROM node_status WHERE node_id = $1),
             upsert AS (
                INSERT INTO node_status (node_id, up, free_bytes, total_bytes, rtt_ms, error, checked_at, down_since,
                                         last_up_at)
                VALUES ($1, $2, $3, $4, $5, $6, now(), CASE WHEN $2 THEN NULL ELSE now() END,
                        CASE WHEN $2 THEN now() END)
                ON CONFLICT (node_id) DO UPDATE SET up = $2, free_bytes = $3, total_bytes = $4,
                   rtt_ms = $5, error = $6, checked_at = now(),
                   down_since = CASE WHEN $2 THEN NULL ELSE COALESCE(node_status.down_since, now()) END,
                   last_up_at = CASE WHEN $2 THEN now() ELSE node_status.last_up_at END
                RETURNING 1),
             event AS (
                INSERT INTO node_events (node_id, up, reason)
                SELECT $1, $2, $6 WHERE NOT EXISTS (SELECT 1 FROM prev WHERE prev.up = $2)
                RETURNING 1),
             sample AS (
                INSERT INTO node_space (node_id, free_bytes, total_bytes)
                SELECT $1, $3, $4 WHERE $2 AND NOT EXISTS (
                    SELECT 1 FROM node_space WHERE node_id = $1 AND at > now() - make_interval(secs => $7))
                ON CONFLICT DO NOTHING
                RETURNING 1),
             old_space AS (DELETE FROM node_space WHERE node_id = $1 AND at < now() - make_interval(secs => $8)),
             old_events AS (DELETE FROM node_events WHERE node_id = $1 AND at < now() - make_interval(secs => $9))
             SELECT EXISTS (SELECT 1 FROM prev) AND EXISTS (SELECT 1 FROM event) AS changed",
            &[
                &node.0,
                &probe.up,
                &size_to_db("free bytes", probe.free)?,
                &size_to_db("total bytes", probe.total)?,
                &probe.rtt_ms,
                &probe.error,
                &SPACE_SAMPLE_SECS,
                &SPACE_RETENTION_SECS,
                &EVENT_RETENTION_SECS,
            ],
        )
        .await?;
    Ok(row.try_get("changed")?)
}

/// A node coming up or going down, as the monitor saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub up: bool,
    /// Why it counted as down (`None` when it came up).
    pub reason: Option<String>,
}

/// Node `node`'s latest `limit` transitions, newest first.
pub async fn events(c: &impl GenericClient, node: NodeId, limit: i64) -> Result<Vec<Event>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT at, up, reason FROM node_events WHERE node_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            &[&node.0, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| Ok(Event { at: r.try_get("at")?, up: r.try_get("up")?, reason: r.try_get("reason")? }))
        .collect()
}

/// One free-space sample.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SpaceSample {
    pub at: DateTime<Utc>,
    pub free_bytes: ByteSize,
    pub total_bytes: ByteSize,
}

/// Node `node`'s free-space samples of the last `secs` seconds, oldest first.
pub async fn space(c: &impl GenericClient, node: NodeId, secs: f64) -> Result<Vec<SpaceSample>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT at, free_bytes, total_bytes FROM node_space
             WHERE node_id = $1 AND at > now() - make_interval(secs => $2) ORDER BY at",
            &[&node.0, &secs],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(SpaceSample {
                at: r.try_get("at")?,
                free_bytes: size_from_db("node_space.free_bytes", r.try_get("free_bytes")?)?,
                total_bytes: size_from_db("node_space.total_bytes", r.try_get("total_bytes")?)?,
            })
        })
        .collect()
}
