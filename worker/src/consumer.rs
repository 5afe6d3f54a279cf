//! Consuming one job queue: a supervisor that (re)dials the broker with jittered
//! backoff, re-declares the topology, consumes with a per-consumer prefetch equal to
//! the concurrency, and settles each delivery only after the handler committed:
//! - success: ack;
//! - transient failure: republish (with confirm) to the next delay tier, then ack;
//! - permanent failure, or retries exhausted: record it in PostgreSQL, then nack
//!   without requeue, which dead-letters it (at-least-once) to `ferry.<kind>.dead`.
//!
//! On shutdown it stops consuming and gives in-flight jobs until the drain deadline;
//! whatever is still unacked then is requeued by the broker when the channel closes.

use std::sync::Arc;
use std::time::Duration;

use ferry_queue::{self as queue, Job, JobKind, OutgoingMessage, Publisher, RETRY_TIERS};
use ferry_shared::backoff;
use ferry_shared::shutdown::DRAIN_DEADLINE;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::jobs::{self, Ctx, JobError};

/// Attempts before a transiently failing job is given up.
pub const MAX_ATTEMPTS: u32 = 8;

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
        let name = format!("ferry-worker {}", self.kind.routing_key());
        let conn = queue::connect(config.url.expose(), &name, config.heartbeat_secs).await?;
        let channel = conn.create_channel().await?;
        queue::declare_topology(&channel).await?;
        // Per-consumer prefetch (global QoS is an error on quorum queues).
        channel.basic_qos(self.concurrency, BasicQosOptions { global: false }).await?;
        let mut deliveries = channel
            .basic_consume(
                self.kind.queue().as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        *attempt = 0;
        tracing::info!(queue = %self.kind.queue(), concurrency = self.concurrency, "consuming");
        let in_flight = TaskTracker::new();
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
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
        if result.is_ok() {
            let _ = channel.basic_cancel(deliveries.tag(), BasicCancelOptions::default()).await;
        }
        in_flight.close();
        if tokio::time::timeout(DRAIN_DEADLINE, in_flight.wait()).await.is_err() {
            tracing::warn!(queue = %self.kind.queue(), "drain deadline passed; unfinished jobs go back to the queue");
        }
        let _ = conn.close(200, "shutdown".into()).await;
        result
    }

    async fn settle(&self, delivery: Delivery) {
        let job: Job = match serde_json::from_slice(&delivery.data) {
            Ok(job) if Job::kind(&job) == self.kind => job,
            _ => {
                tracing::error!(queue = %self.kind.queue(), "malformed job message; dead-lettering");
                let _ = delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await;
                return;
            }
        };
        let attempt = queue::attempt_of(&delivery.properties);
        let started = std::time::Instant::now();
        let limit = Duration::from_secs(self.ctx.config.worker.job_timeout_secs);
        let outcome = match tokio::time::timeout(limit, jobs::handle(&self.ctx, &job)).await {
            Ok(result) => result,
            Err(_) => Err(JobError::Retry(format!("job exceeded its {} s time limit", limit.as_secs()))),
        };
        let queue_name = self.kind.queue();
        ferry_shared::metrics::observe(&ferry_shared::metrics::JOB_DURATION, &[&queue_name], started.elapsed());
        let outcome_label = match &outcome {
            Ok(()) => "done",
            Err(JobError::Retry(_)) if attempt + 1 < MAX_ATTEMPTS => "retried",
            Err(_) => "failed",
        };
        ferry_shared::metrics::JOBS.with_label_values(&[&queue_name, outcome_label]).inc();
        let settled = match outcome {
            Ok(()) => {
                tracing::debug!(?job, duration_ms = started.elapsed().as_millis() as u64, "job done");
                delivery.ack(BasicAckOptions::default()).await
            }
            Err(JobError::Retry(reason)) if attempt + 1 < MAX_ATTEMPTS => {
                tracing::warn!(?job, attempt, reason, "job failed; will retry");
                match self.retry_later(&delivery, attempt + 1).await {
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                    // Could not park it: let the broker redeliver it now instead.
                    Err(_) => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
                }
            }
            Err(JobError::Retry(reason) | JobError::Permanent(reason)) => {
                tracing::error!(?job, attempt, reason, "job failed for good; dead-lettering");
                match jobs::give_up(&self.ctx, &job, &reason).await {
                    Ok(()) => delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await,
                    Err(_) => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
                }
            }
        };
        if let Err(error) = settled {
            // The channel is gone; the broker requeues the delivery by itself.
            tracing::warn!(%error, "could not settle a delivery");
        }
    }

    /// Parks the job in the delay tier for `attempt`; its TTL expiry routes it back.
    async fn retry_later(&self, delivery: &Delivery, attempt: u32) -> Result<(), queue::PublishError> {
        let tier = RETRY_TIERS[(attempt as usize - 1).min(RETRY_TIERS.len() - 1)].0;
        let retry_queue = self.kind.retry_queue(tier);
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .and_then(|id| id.as_str().parse().ok())
            .unwrap_or_else(uuid::Uuid::new_v4);
        self.publisher
            .publish_confirmed(&[OutgoingMessage {
                exchange: "",
                routing_key: &retry_queue,
                message_id,
                payload: &delivery.data,
                attempt,
            }])
            .await
    }
}
