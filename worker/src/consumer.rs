//! Consuming one job queue: a supervisor that (re)dials the broker with jittered
//! backoff, re-declares the topology, consumes with a per-consumer prefetch equal to
//! the concurrency, and settles each delivery only after the handler committed:
//! - success: ack;
//! - transient failure: republish (with confirm) to the next delay tier, then ack;
//! - permanent failure, or retries exhausted: record it in PostgreSQL, then nack
//!   without requeue, which dead-letters it (at-least-once) to `ferry.<kind>.dead`.
//!
//! Attempts, retry delays and the time limit come from the job kind's policy
//! ([`crate::policy`]). A queue an operator paused is not consumed (the consumer is
//! cancelled; deliveries already taken run) until it is resumed.
//!
//! On shutdown it stops consuming and gives in-flight jobs until the drain deadline;
//! whatever is still unacked then is requeued by the broker when the channel closes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use ferry_queue::{self as queue, Job, JobKind, OutgoingMessage, Publisher};
use ferry_shared::backoff;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::jobs::{self, Ctx, JobError};
use ferry_store::jobs as records;

/// Logged when a run ends whose job record is no longer `active` on this worker: the
/// broker gave the job to a later delivery (this worker stalled past its connection's
/// heartbeat, or was cut off), which owns the record and keeps this run as a `lost`
/// attempt; or (rarely) this run's start could not be recorded, and the reconciler
/// runs the job again later. This run's outcome is neither recorded nor acted on (no
/// retry, no dead letter).
const SUPERSEDED: &str =
    "job ended after a later delivery took it over (or its start was not recorded); its outcome is left to the record";

pub struct QueueConsumer {
    pub ctx: Arc<Ctx>,
    pub publisher: Arc<Publisher>,
    pub kind: JobKind,
    pub concurrency: u16,
}

impl QueueConsumer {
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut attempt = 0;
        loop {
            match this.clone().consume(&shutdown, &mut attempt).await {
                Ok(()) => return,
                Err(error) => {
                    let delay = backoff::delay(attempt, Duration::from_millis(200), Duration::from_secs(15));
                    tracing::warn!(%error, queue = %this.kind.queue(), retry_in_ms = delay.as_millis() as u64, "consumer lost the broker");
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn consume(self: Arc<Self>, shutdown: &CancellationToken, attempt: &mut u32) -> lapin::Result<()> {
        let config = &self.ctx.config.broker;
        let worker = &self.ctx.worker.id;
        let name = format!("ferry-worker {worker} {}", self.kind.routing_key());
        let conn = queue::connect(config.url.expose(), &name, config.heartbeat_secs).await?;
        let channel = conn.create_channel().await?;
        queue::declare_topology(&channel).await?;
        // Per-consumer prefetch (global QoS is an error on quorum queues).
        channel.basic_qos(self.concurrency, BasicQosOptions { global: false }).await?;
        // A queue paused before this (re)connect is not consumed until resumed.
        let mut paused = self.ctx.worker.watch_paused();
        while paused.borrow_and_update().contains(self.kind.routing_key()) {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                changed = paused.changed() => if changed.is_err() { return Ok(()) },
            }
        }
        let mut deliveries = self.start_consuming(&channel).await?;
        *attempt = 0;
        let rk = self.kind.routing_key();
        let mut paused = self.ctx.worker.watch_paused();
        let in_flight = TaskTracker::new();
        let result = 'consuming: loop {
            tracing::info!(queue = %self.kind.queue(), concurrency = self.concurrency, "consuming");
            let outcome = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break Ok(true),
                    changed = paused.changed() => {
                        if changed.is_err() || paused.borrow_and_update().contains(rk) {
                            break Ok(false);
                        }
                    }
                    delivery = deliveries.next() => match delivery {
                        Some(Ok(delivery)) => {
                            let this = self.clone();
                            in_flight.spawn(async move { this.settle(delivery).await });
                        }
                        Some(Err(error)) => break Err(error),
                        None => break Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                            lapin::ChannelState::Closed,
                            "consumer ended",
                        ))),
                    }
                }
            };
            let stop = match outcome {
                Ok(stop) => stop,
                Err(error) => break Err(error),
            };
            let _ = channel.basic_cancel(deliveries.tag(), BasicCancelOptions::default()).await;
            if stop {
                break Ok(());
            }
            // Paused: what was already delivered runs; nothing more is taken until resumed.
            tracing::info!(queue = %self.kind.queue(), "queue paused by an operator; not consuming");
            while let Ok(Some(Ok(delivery))) = tokio::time::timeout(Duration::from_secs(5), deliveries.next()).await {
                let this = self.clone();
                in_flight.spawn(async move { this.settle(delivery).await });
            }
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break 'consuming Ok(()),
                    changed = paused.changed() => {
                        if changed.is_err() || !paused.borrow_and_update().contains(rk) {
                            break;
                        }
                    }
                }
            }
            deliveries = match self.start_consuming(&channel).await {
                Ok(deliveries) => deliveries,
                Err(error) => break Err(error),
            };
        };
        in_flight.close();
        if tokio::time::timeout(self.ctx.policies.drain_deadline(self.kind), in_flight.wait()).await.is_err() {
            tracing::warn!(queue = %self.kind.queue(), "drain deadline passed; unfinished jobs go back to the queue");
        }
        let _ = conn.close(200, "shutdown".into()).await;
        result
    }

    /// Starts consuming this queue on `channel`, the consumer tag naming the worker.
    async fn start_consuming(&self, channel: &lapin::Channel) -> lapin::Result<lapin::Consumer> {
        channel
            .basic_consume(
                self.kind.queue().as_str().into(),
                format!("{} {}", self.ctx.worker.id, self.kind.routing_key()).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    async fn settle(&self, delivery: Delivery) {
        let id: Option<Uuid> = delivery.properties.message_id().as_ref().and_then(|id| id.as_str().parse().ok());
        let attempt = queue::attempt_of(&delivery.properties);
        let job = match serde_json::from_slice::<Job>(&delivery.data) {
            Ok(job) if job.belongs_on(self.kind) => job,
            _ => {
                let span = tracing::error_span!("job", job.id = ?id, worker.id = %self.ctx.worker.id);
                let _entered = span.enter();
                tracing::error!(queue = %self.kind.queue(), "malformed job message; dead-lettering");
                let id = id.unwrap_or_else(Uuid::new_v4);
                self.dead_letter(&delivery, id, None, attempt, "malformed job message").await;
                return;
            }
        };
        // A message without an id predates job records (or was hand-made): it gets one.
        let id = id.unwrap_or_else(Uuid::new_v4);
        let span = tracing::info_span!(
            "job",
            job.id = %id,
            worker.id = %self.ctx.worker.id,
            job.kind = job.name(),
            job.attempt = attempt
        );
        self.run_job(delivery, id, job, attempt).instrument(span).await;
    }

    /// Runs one job and settles its delivery; the job's record follows each step.
    async fn run_job(&self, delivery: Delivery, id: Uuid, job: Job, attempt: u32) {
        let payload = serde_json::to_value(&job).unwrap_or_default();
        let record = queue::outbox::new_job(id, &job, &payload);
        let worker = &self.ctx.worker;
        let attempt_db = i32::try_from(attempt).unwrap_or(i32::MAX);
        let started = self.ctx.started.write(records::Start::new(&record, attempt_db)).await;
        match started.map_err(|error| tracing::warn!(%error, "could not update the job record")).ok() {
            // Its record says the work is done (a duplicate of a job the reconciler
            // re-enqueued, or republished after a relay crash): nothing to do.
            Some(None) => {
                tracing::debug!("job already finished; acknowledging a duplicate delivery");
                if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(%error, "could not settle a delivery");
                }
                return;
            }
            Some(Some(started)) if attempt == 0 => {
                let waited = (chrono::Utc::now() - started.queued_at).to_std().unwrap_or_default();
                ferry_shared::metrics::observe(&ferry_shared::metrics::JOB_WAIT, &[job.name()], waited);
            }
            // Recording failed (logged): the handler re-reads PostgreSQL itself and
            // fails if it is unreachable; the reconciler mends the record later.
            Some(Some(_)) | None => {}
        }
        let _in_flight = worker.track(id, job.name());
        let started = std::time::Instant::now();
        let policy = self.ctx.policies.get(job.name());
        let outcome = guarded(job.name(), policy.time_limit, jobs::handle(&self.ctx, &job)).await;
        let queue_name = self.kind.queue();
        ferry_shared::metrics::observe(
            &ferry_shared::metrics::JOB_DURATION,
            &[&queue_name, job.name()],
            started.elapsed(),
        );
        let outcome_label = match &outcome {
            Ok(()) => "done",
            Err(JobError::Retry(_)) if attempt + 1 < policy.max_attempts => "retried",
            Err(_) => "failed",
        };
        ferry_shared::metrics::JOBS.with_label_values(&[&queue_name, outcome_label]).inc();
        let duration_ms = started.elapsed().as_millis() as u64;
        let settled = match outcome {
            Ok(()) => {
                tracing::info!(?job, duration_ms, "job done");
                let finished = self.ctx.finished.write(id).await;
                match finished.map_err(|error| tracing::warn!(%error, "could not update the job record")).ok() {
                    Some(true) => delivery.ack(BasicAckOptions::default()).await,
                    Some(false) => {
                        tracing::warn!("{SUPERSEDED}");
                        delivery.ack(BasicAckOptions::default()).await
                    }
                    // The record must not stay open for work that is done: run it again
                    // (it finds its work done) once PostgreSQL answers.
                    None => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
                }
            }
            Err(JobError::Retry(reason)) if attempt + 1 < policy.max_attempts => {
                let tier = policy.tier(attempt + 1);
                tracing::warn!(?job, reason, duration_ms, retry_in = tier, "job failed; will retry");
                let retry = records::Retry {
                    id,
                    attempt: i32::try_from(attempt + 1).unwrap_or(i32::MAX),
                    error: &reason,
                    worker: &worker.id,
                    delay: queue::retry_delay(tier),
                    max_attempts: i32::try_from(policy.max_attempts).unwrap_or(i32::MAX),
                };
                let retry = &retry;
                let recorded = self.record(|c| async move { records::retrying(&c, retry).await });
                if recorded.await == Some(false) {
                    // Another delivery runs or ran the job: it decides what comes next.
                    tracing::warn!("{SUPERSEDED}");
                    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                        tracing::warn!(%error, "could not settle a delivery");
                    }
                    return;
                }
                match self.retry_later(&delivery, id, tier, attempt + 1).await {
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                    // Could not park it: let the broker redeliver it now instead.
                    Err(_) => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
                }
            }
            Err(error) => {
                // Out of attempts, or an error no retry can mend.
                let reason = match error {
                    JobError::Retry(reason) => format!("gave up after {} attempts: {reason}", attempt + 1),
                    JobError::Permanent(reason) => reason,
                };
                // The record first: a run that a later delivery superseded must not
                // fail the replica or upload that delivery is working on.
                let dead = records::DeadLetter {
                    job: record.clone(),
                    reason: &reason,
                    attempt: attempt_db,
                    worker: Some(&worker.id),
                    by_worker: true,
                    max_attempts: Some(i32::try_from(policy.max_attempts).unwrap_or(i32::MAX)),
                };
                let dead = &dead;
                if self.record(|c| async move { records::dead(&c, dead).await }).await == Some(false) {
                    tracing::warn!("{SUPERSEDED}");
                    delivery.ack(BasicAckOptions::default()).await
                } else {
                    tracing::error!(?job, reason, duration_ms, "job failed for good; dead-lettering");
                    match jobs::give_up(&self.ctx, &job, &reason).await {
                        Ok(()) => {
                            self.dead_letter(&delivery, id, Some(&job), attempt, &reason).await;
                            return;
                        }
                        // The record says dead; the redelivery starts it again.
                        Err(_) => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
                    }
                }
            }
        };
        if let Err(error) = settled {
            // The channel is gone; the broker requeues the delivery by itself.
            tracing::warn!(%error, "could not settle a delivery");
        }
    }

    /// Writes to the job's record, committed asynchronously (`Ctx::records`); a failure
    /// is logged and swallowed (`None`): the record is for operators, the work itself
    /// does not depend on it, and the reconciler mends a record left open.
    async fn record<T, F, Fut>(&self, write: F) -> Option<T>
    where
        F: FnOnce(ferry_store::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ferry_store::StoreError>>,
    {
        let result = match self.ctx.records.get().await {
            Ok(client) => write(client).await,
            Err(e) => Err(e.into()),
        };
        result.map_err(|error| tracing::warn!(%error, "could not update the job record")).ok()
    }

    /// Sends the delivery to `ferry.<queue>.dead` with the headers saying why (reason,
    /// kind, file, node, attempt, worker), confirmed, then acks it. If that publish
    /// fails the delivery is nacked without requeue, so the broker dead-letters it
    /// itself (without our headers; the job record still has the reason).
    async fn dead_letter(&self, delivery: &Delivery, id: Uuid, job: Option<&Job>, attempt: u32, reason: &str) {
        let mut headers =
            vec![(queue::REASON_HEADER, reason.to_owned()), (queue::WORKER_HEADER, self.ctx.worker.id.clone())];
        if let Some(job) = job {
            headers.push((queue::KIND_HEADER, job.name().to_owned()));
            headers.push((queue::FILE_HEADER, job.file().to_string()));
            if let Some(node) = job.node() {
                headers.push((queue::NODE_HEADER, node.to_string()));
            }
        }
        let published = self
            .publisher
            .publish_confirmed(&[OutgoingMessage {
                exchange: queue::DEAD_EXCHANGE,
                routing_key: self.kind.routing_key(),
                message_id: id,
                payload: &delivery.data,
                attempt,
                headers: &headers,
            }])
            .await;
        let settled = match published {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await,
            Err(error) => {
                tracing::warn!(%error, "could not publish the dead letter; the broker dead-letters it");
                delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await
            }
        };
        if let Err(error) = settled {
            tracing::warn!(%error, "could not settle a delivery");
        }
    }

    /// Parks the job in the delay tier for `attempt` under its queue's routing key; its
    /// TTL expiry routes it back to that queue (the tiers are shared by every kind).
    async fn retry_later(
        &self,
        delivery: &Delivery,
        message_id: Uuid,
        tier: &str,
        attempt: u32,
    ) -> Result<(), queue::PublishError> {
        let tier_exchange = queue::retry_queue(tier);
        self.publisher
            .publish_confirmed(&[OutgoingMessage {
                exchange: &tier_exchange,
                routing_key: self.kind.routing_key(),
                message_id,
                payload: &delivery.data,
                attempt,
                headers: &[],
            }])
            .await
    }
}

/// Starts job records (`active` on this worker) in groups ([`crate::gather`]) on the
/// job-record pool: a worker's deliveries come in bursts (its prefetch refills as a
/// batch's jobs are acked).
pub fn record_started(
    records: ferry_store::Pool,
    worker: String,
    max: usize,
) -> crate::gather::Gather<records::Start, Option<records::Started>> {
    crate::gather::Gather::spawn(max, move |starts: Vec<records::Start>| {
        let (records, worker) = (records.clone(), worker.clone());
        async move { records::start(&records.get().await?, &starts, &worker).await }
    })
}

/// Ends job records `done` in groups ([`crate::gather`]) on the job-record pool
/// (asynchronous commit, [`ferry_store::bookkeeping_pool`]): the jobs of one rsync
/// batch end together, so their records take one statement. Each job's outcome is
/// false when its record was not `active` on `worker` (a later delivery has it:
/// [`records::finish`]).
pub fn record_finished(records: ferry_store::Pool, worker: String, max: usize) -> crate::gather::Gather<Uuid, bool> {
    crate::gather::Gather::spawn(max, move |ids: Vec<Uuid>| {
        let (records, worker) = (records.clone(), worker.clone());
        async move {
            let done = records::finish(&records.get().await?, &ids, &worker).await?;
            Ok(ids.iter().map(|id| done.contains(id)).collect())
        }
    })
}

/// Runs a job's handler under its hard time limit, turning a panic into a failed
/// attempt (retried like any transient failure, counted in `ferry_job_panics_total`)
/// instead of a task that dies holding its delivery unacknowledged.
pub async fn guarded<F>(kind: &str, limit: Duration, handler: F) -> Result<(), JobError>
where
    F: std::future::Future<Output = Result<(), JobError>>,
{
    match tokio::time::timeout(limit, AssertUnwindSafe(handler).catch_unwind()).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            ferry_shared::metrics::JOB_PANICS.with_label_values(&[kind]).inc();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".into());
            tracing::error!(panic = %message, "job panicked");
            Err(JobError::Retry(format!("job panicked: {message}")))
        }
        Err(_) => Err(JobError::Retry(format!("job exceeded its {} s time limit", limit.as_secs()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_is_a_counted_retryable_failure() {
        let panics = || ferry_shared::metrics::JOB_PANICS.with_label_values(&["test-kind"]).get();
        let before = panics();
        let outcome = guarded("test-kind", Duration::from_secs(5), async {
            if before < u64::MAX {
                panic!("boom at offset {}", 7);
            }
            Ok(())
        })
        .await;
        match outcome {
            Err(JobError::Retry(reason)) => assert_eq!(reason, "job panicked: boom at offset 7"),
            other => panic!("expected a retryable failure, got {other:?}"),
        }
        assert_eq!(panics(), before + 1);
        assert!(guarded("test-kind", Duration::from_secs(5), async { Ok(()) }).await.is_ok());
        assert_eq!(panics(), before + 1);
    }

    #[tokio::test]
    async fn a_job_past_its_time_limit_is_a_retryable_failure() {
        let outcome = guarded("test-kind", Duration::from_millis(20), std::future::pending()).await;
        assert!(matches!(outcome, Err(JobError::Retry(r)) if r.contains("0 s time limit")));
    }
}
