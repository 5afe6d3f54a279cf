//! The `workers` table: the inventory of `ferry-worker` processes. Each registers at
//! start, heartbeats with its in-flight job ids, and marks itself stopped on a clean
//! shutdown; one whose heartbeat is older than a few intervals is stale (killed, hung
//! or cut off).

use crate::cached::Cached;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::StoreError;

/// A worker silent for this long is shown as stale (workers heartbeat every 5 s).
pub const STALE_AFTER_SECS: f64 = 30.0;

/// Workers stopped or silent for longer than this (an hour) are left out of a listing
/// unless all are asked for: replicas scaled down or restarted leave a row each until
/// the monitor prunes it (`jobs.retention_days`).
pub const RECENT_SECS: f64 = 3600.0;

/// What a worker says about itself when it registers.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// `<host>:<pid>`, or the configured `worker.id` (e.g. the pod name).
    pub id: &'a str,
    pub host: &'a str,
    pub pid: i32,
    /// The binary's version (`CARGO_PKG_VERSION`).
    pub version: &'a str,
    /// Queues it consumes (`assemble`, `replicate`, `delete`).
    pub queues: &'a [String],
    /// Jobs per queue at once (the prefetch).
    pub concurrency: i32,
}

/// One row of the inventory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub queues: Vec<String>,
    pub concurrency: i32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub in_flight: Vec<Uuid>,
    /// Seconds since the last heartbeat, by the database's clock.
    pub heartbeat_age_secs: f64,
}

impl WorkerRow {
    /// The row as JSON (`ferry workers ls --json`, `GET /admin/api/workers`): its fields,
    /// times RFC 3339, plus `state` ([`WorkerRow::liveness`]).
    pub fn json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["state"] = self.liveness().into();
        value
    }

    /// `running`, `stale` (no heartbeat for [`STALE_AFTER_SECS`]: killed, hung or cut
    /// off) or `stopped` (shut down cleanly).
    pub fn liveness(&self) -> &'static str {
        if self.stopped_at.is_some() {
            "stopped"
        } else if self.heartbeat_age_secs > STALE_AFTER_SECS {
            "stale"
        } else {
            "running"
        }
    }
}

/// Registers (or re-registers) a worker as running now.
pub async fn register(c: &impl GenericClient, r: &Registration<'_>) -> Result<(), StoreError> {
    c.execute_cached(
        "INSERT INTO workers (id, host, pid, version, queues, concurrency) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, version = $4, queues = $5, concurrency = $6,
             started_at = now(), heartbeat_at = now(), stopped_at = NULL, in_flight = '{}'",
        &[&r.id, &r.host, &r.pid, &r.version, &r.queues, &r.concurrency],
    )
    .await?;
    Ok(())
}

/// Records a heartbeat with the jobs in flight right now.
pub async fn heartbeat(c: &impl GenericClient, id: &str, in_flight: &[Uuid]) -> Result<(), StoreError> {
    c.execute_cached("UPDATE workers SET heartbeat_at = now(), in_flight = $2 WHERE id = $1", &[&id, &in_flight])
        .await?;
    Ok(())
}

/// Marks a worker stopped (clean shutdown).
pub async fn stopped(c: &impl GenericClient, id: &str) -> Result<(), StoreError> {
    c.execute_cached(
        "UPDATE workers SET stopped_at = now(), heartbeat_at = now(), in_flight = '{}' WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Every worker (`all`), or those heard from within [`RECENT_SECS`]: running ones first,
/// then stale, then stopped, each by id. A stable order (not by last heartbeat, which
/// reshuffled the rows at every heartbeat: the admin page reloads every 5 s, and the
/// CLI and the admin API listed the same workers in different orders).
pub async fn list(c: &impl GenericClient, all: bool) -> Result<Vec<WorkerRow>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT id, host, pid, version, queues, concurrency, started_at, heartbeat_at, stopped_at, in_flight,
                    EXTRACT(EPOCH FROM now() - heartbeat_at)::float8 AS heartbeat_age_secs
             FROM workers WHERE $1 OR GREATEST(heartbeat_at, stopped_at) > now() - make_interval(secs => $2)
             ORDER BY stopped_at IS NOT NULL, heartbeat_at < now() - make_interval(secs => $3), id",
            &[&all, &RECENT_SECS, &STALE_AFTER_SECS],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(WorkerRow {
                id: r.try_get("id")?,
                host: r.try_get("host")?,
                pid: r.try_get("pid")?,
                version: r.try_get("version")?,
                queues: r.try_get("queues")?,
                concurrency: r.try_get("concurrency")?,
                started_at: r.try_get("started_at")?,
                heartbeat_at: r.try_get("heartbeat_at")?,
                stopped_at: r.try_get("stopped_at")?,
                in_flight: r.try_get("in_flight")?,
                heartbeat_age_secs: r.try_get("heartbeat_age_secs")?,
            })
        })
        .collect()
}

/// How many workers a listing without `all` leaves out ([`list`]).
pub async fn count_older(c: &impl GenericClient) -> Result<i64, StoreError> {
    Ok(c.query_one_cached(
        "SELECT count(*) FROM workers WHERE GREATEST(heartbeat_at, stopped_at) <= now() - make_interval(secs => $1)",
        &[&RECENT_SECS],
    )
    .await?
    .try_get(0)?)
}

/// Deletes workers stopped, or silent, for longer than `older_than_secs`.
pub async fn prune(c: &impl GenericClient, older_than_secs: f64) -> Result<u64, StoreError> {
    Ok(c.execute_cached(
        "DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => $1)",
        &[&older_than_secs],
    )
    .await?)
}
