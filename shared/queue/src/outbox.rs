//! Transactional outbox: a job is written to `outbox` in the same transaction as the
//! state change it describes, and a relay publishes it with publisher confirms and
//! deletes the row only after the broker confirmed. A broker outage therefore delays
//! work and never loses it; a crash between confirm and delete re-publishes, which
//! idempotent handlers absorb.

use std::sync::Arc;
use std::time::Duration;

use ferry_store::{GenericClient, Pool, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Job, OutgoingMessage, PublishError, Publisher, JOBS_EXCHANGE};

/// Rows published per relay round trip.
const BATCH: i64 = 256;
/// How often the relay looks for rows even without a wake-up (other processes'
/// rows, rows left by a crash).
const POLL: Duration = Duration::from_millis(500);

/// Adds `job` to the outbox inside the caller's transaction, with its job record
/// (`queued`); returns the job's id, which is also its AMQP `message_id`.
pub async fn enqueue(tx: &impl GenericClient, job: &Job) -> Result<Uuid, StoreError> {
    let ids = enqueue_all(tx, std::slice::from_ref(job)).await?;
    ids.into_iter().next().ok_or_else(|| StoreError::Config("enqueued no job".into()))
}

/// [`enqueue`] for several jobs, in one statement whatever their number (a file's
/// replicate jobs go together: `ferry_store::jobs::enqueue`); returns their ids in
/// order.
pub async fn enqueue_all(tx: &impl GenericClient, jobs: &[Job]) -> Result<Vec<Uuid>, StoreError> {
    let payloads = jobs
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Config(e.to_string()))?;
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::new_v4()).collect();
    let records: Vec<_> =
        jobs.iter().zip(&ids).zip(&payloads).map(|((job, id), payload)| new_job(*id, job, payload)).collect();
    ferry_store::jobs::enqueue(tx, JOBS_EXCHANGE, &records).await?;
    Ok(ids)
}

/// The record of `job` with id `id` and body `payload`.
pub fn new_job<'a>(id: Uuid, job: &Job, payload: &'a serde_json::Value) -> ferry_store::jobs::NewJob<'a> {
    ferry_store::jobs::NewJob {
        id,
        kind: job.name(),
        queue: job.kind().routing_key(),
        file: job.file(),
        node: job.node(),
        payload,
    }
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
                    _ = tokio::time::sleep(ferry_shared::backoff::jitter(backoff)) => {}
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
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

async fn relay_batch(pool: &Pool, publisher: &Publisher) -> Result<usize, RelayError> {
    let mut client = pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let rows = ferry_store::outbox::claim(&tx, BATCH).await?;
    ferry_shared::metrics::OUTBOX_BACKLOG.set(rows.len() as i64);
    if rows.is_empty() {
        return Ok(0);
    }
    let messages: Vec<OutgoingMessage<'_>> = rows
        .iter()
        .map(|row| OutgoingMessage {
            exchange: &row.exchange,
            routing_key: &row.routing_key,
            message_id: row.message_id,
            payload: row.payload.as_bytes(),
            attempt: 0,
            headers: &[],
        })
        .collect();
    publisher.publish_confirmed(&messages).await?;
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    ferry_store::outbox::delete(&tx, &ids).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::debug!(outbox.published = ids.len(), "relayed outbox rows");
    Ok(ids.len())
}
