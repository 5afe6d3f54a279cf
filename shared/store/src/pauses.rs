//! The `paused_queues` table: job queues an operator paused. Workers read it with
//! every heartbeat and stop (or resume) consuming accordingly.

use crate::cached::Cached;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::StoreError;

/// One paused queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Paused {
    /// The queue's routing key (`assemble`, `replicate`, `delete`).
    pub queue: String,
    pub paused_at: DateTime<Utc>,
    pub paused_by: String,
}

/// Pauses `queue`; false when it was paused already.
pub async fn pause(c: &impl GenericClient, queue: &str, by: &str) -> Result<bool, StoreError> {
    let n = c
        .execute_cached(
            "INSERT INTO paused_queues (queue, paused_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&queue, &by],
        )
        .await?;
    Ok(n > 0)
}

/// Resumes `queue`; false when it was not paused.
pub async fn resume(c: &impl GenericClient, queue: &str) -> Result<bool, StoreError> {
    Ok(c.execute_cached("DELETE FROM paused_queues WHERE queue = $1", &[&queue]).await? > 0)
}

/// Every paused queue.
pub async fn list(c: &impl GenericClient) -> Result<Vec<Paused>, StoreError> {
    let rows = c.query_cached("SELECT queue, paused_at, paused_by FROM paused_queues ORDER BY queue", &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(Paused {
                queue: r.try_get("queue")?,
                paused_at: r.try_get("paused_at")?,
                paused_by: r.try_get("paused_by")?,
            })
        })
        .collect()
}
