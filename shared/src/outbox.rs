//! Transactional outbox: a job is written to `outbox` in the same transaction as the
//! state change it describes, and a relay publishes it with publisher confirms and
//! deletes the row only after the broker confirmed. A broker outage therefore delays
//! work and never loses it; a crash between confirm and delete re-publishes, which
//! idempotent handlers absorb.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::DbError;
use crate::queue::{Job, OutgoingMessage, Publisher, JOBS_EXCHANGE};

/// Rows published per relay round trip.
const BATCH: i64 = 256;
/// How often the relay looks for rows even without a wake-up (other processes'
/// rows, rows left by a crash).
const POLL: Duration = Duration::from_millis(500);

/// Adds `job` to the outbox inside the caller's transaction.
pub async fn enqueue(tx: &impl GenericClient, job: &Job) -> Result<(), DbError> {
    let payload = serde_json::to_value(job).map_err(|e| DbError::Config(e.to_string()))?;
    tx.execute(
        "INSERT INTO outbox (exchange, routing_key, message_id, payload) VALUES ($1, $2, $3, $4)",
        &[&JOBS_EXCHANGE, &job.kind().routing_key(), &Uuid::new_v4(), &payload],
    )
    .await?;
    Ok(())
}

/// Handle to wake the relay right after a commit, so jobs do not wait for the poll.
#[derive(Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Relays outbox rows until `shutdown`. Several relays (one per process) may run at
/// once: `FOR UPDATE SKIP LOCKED` gives each row to one of them.
pub async fn run_relay(pool: Pool, publisher: Arc<Publisher>, waker: RelayWaker, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay_batch(&pool, &publisher).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => backoff = Duration::from_millis(100),
            Err(error) => {
                tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "outbox relay failed; will retry");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(crate::backoff::jitter(backoff)) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = waker.0.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Pg(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Publish(#[from] crate::queue::PublishError),
}

async fn relay_batch(pool: &Pool, publisher: &Publisher) -> Result<usize, RelayError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, exchange, routing_key, message_id, payload::text FROM outbox
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&BATCH],
        )
        .await?;
    if rows.is_empty() {
        crate::metrics::OUTBOX_BACKLOG.set(0);
        return Ok(0);
    }
    crate::metrics::OUTBOX_BACKLOG.set(rows.len() as i64);
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let owned: Vec<(String, String, Uuid, String)> =
        rows.iter().map(|r| (r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let messages: Vec<OutgoingMessage<'_>> = owned
        .iter()
        .map(|(exchange, routing_key, message_id, payload)| OutgoingMessage {
            exchange,
            routing_key,
            message_id: *message_id,
            payload: payload.as_bytes(),
            attempt: 0,
        })
        .collect();
    publisher.publish_confirmed(&messages).await?;
    tx.execute("DELETE FROM outbox WHERE id = ANY($1)", &[&ids]).await?;
    tx.commit().await?;
    tracing::debug!(outbox.published = ids.len(), "relayed outbox rows");
    Ok(ids.len())
}
