//! Dead-letter intake: every message that reaches a `ferry.<queue>.dead` queue becomes
//! (or confirms) a job record in state `dead` with its reason, then is acknowledged.
//! PostgreSQL is then where dead letters are listed, filtered, replayed (through the
//! outbox, keeping the job id) and discarded (`ferry dlq`, the admin Jobs page); the
//! dead-letter queues are only the way in. Reading them there instead (peeking with
//! requeue) would reorder them and count a delivery each time, and cannot filter by
//! upload or age.
//!
//! A dead letter a worker made carries `x-ferry-reason`, `-kind`, `-file`, `-node`,
//! `-worker` and `x-ferry-attempt`; one the broker made (delivery limit, a worker's
//! fallback nack) only `x-death`, from which the reason is taken.

use std::time::Duration;

use ferry_queue::{self as queue, Job, JobKind};
use ferry_shared::backoff;
use ferry_shared::config::BrokerConfig;
use ferry_store::jobs::{DeadLetter, NewJob};
use ferry_store::{jobs, Pool, StoreError};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Dead letters taken in at once per queue.
const PREFETCH: u16 = 32;

/// Consumes every dead-letter queue until `shutdown`, redialling with backoff.
pub async fn run(pool: Pool, broker: BrokerConfig, shutdown: CancellationToken) {
    let mut attempt = 0;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = consume(&pool, &broker, &mut attempt) => result,
        };
        let delay = backoff::delay(attempt, Duration::from_millis(200), Duration::from_secs(15));
        if let Err(error) = result {
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "dead-letter intake lost the broker");
        }
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn consume(pool: &Pool, broker: &BrokerConfig, attempt: &mut u32) -> lapin::Result<()> {
    let conn = queue::connect(broker.url.expose(), "ferry-monitor dead-letters", broker.heartbeat_secs).await?;
    let channel = conn.create_channel().await?;
    queue::declare_topology(&channel).await?;
    // The monitor (one leader per cluster is not needed: deletes are if-empty) clears
    // away the per-kind retry queues of older releases once they have drained.
    queue::retire_per_kind_retry_queues(&conn).await;
    channel.basic_qos(PREFETCH, BasicQosOptions { global: false }).await?;
    let mut streams = Vec::new();
    for kind in JobKind::ALL {
        let consumer = channel
            .basic_consume(
                kind.dead_queue().as_str().into(),
                format!("ferry-monitor dead-letters {}", kind.routing_key()).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        streams.push(consumer.map(move |d| (kind, d)));
    }
    *attempt = 0;
    let mut deliveries = futures::stream::select_all(streams);
    while let Some((kind, delivery)) = deliveries.next().await {
        let delivery = delivery?;
        match take_in(pool, kind, &delivery).await {
            Ok(()) => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Err(error) => {
                // PostgreSQL unreachable: leave it in the queue and try again shortly.
                tracing::warn!(%error, "cannot record a dead letter; it stays queued");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
            }
        }
    }
    Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(lapin::ChannelState::Closed, "consumer ended")))
}

/// Records one dead letter as a `dead` job.
async fn take_in(pool: &Pool, kind: JobKind, delivery: &Delivery) -> Result<(), StoreError> {
    let props = &delivery.properties;
    let id: Uuid = props.message_id().as_ref().and_then(|id| id.as_str().parse().ok()).unwrap_or_else(Uuid::new_v4);
    let reason = queue::text_header(props, queue::REASON_HEADER).unwrap_or_else(|| broker_reason(props));
    let worker = queue::text_header(props, queue::WORKER_HEADER);
    let attempt = i32::try_from(queue::attempt_of(props)).unwrap_or(i32::MAX);
    let parsed: Option<Job> = serde_json::from_slice(&delivery.data).ok();
    let Some(job) = parsed else {
        // Not a job at all: nothing to replay it as. Logged with its headers and dropped.
        tracing::error!(job.id = %id, queue = %kind.dead_queue(), reason, body_bytes = delivery.data.len(),
            "dropping a malformed dead letter");
        return Ok(());
    };
    let payload = serde_json::to_value(&job).unwrap_or_default();
    let record = NewJob {
        id,
        kind: job.name(),
        queue: job.kind().routing_key(),
        file: job.file(),
        node: job.node(),
        payload: &payload,
    };
    let dead = DeadLetter {
        job: record,
        reason: &reason,
        attempt,
        worker: worker.as_deref(),
        by_worker: false,
        max_attempts: None,
    };
    jobs::dead(&pool.get().await?, &dead).await?;
    tracing::warn!(job.id = %id, job.kind = job.name(), file.id = %job.file(), reason, "dead letter recorded");
    Ok(())
}

/// The reason of a dead letter the broker made, from its `x-death` header.
fn broker_reason(props: &BasicProperties) -> String {
    let death = props.headers().as_ref().and_then(|h| match h.inner().get("x-death") {
        Some(AMQPValue::FieldArray(deaths)) => deaths.as_slice().first().cloned(),
        _ => None,
    });
    let Some(AMQPValue::FieldTable(death)) = death else {
        return "dead-lettered without a reason".into();
    };
    let text = |key: &str| match death.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        _ => "?".into(),
    };
    format!("dead-lettered by the broker: {} (from {})", text("reason"), text("queue"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString, ShortString};

    #[test]
    fn broker_made_dead_letters_get_their_reason_from_x_death() {
        let mut death = FieldTable::default();
        death.insert(ShortString::from("reason"), AMQPValue::LongString(LongString::from("delivery_limit")));
        death.insert(ShortString::from("queue"), AMQPValue::LongString(LongString::from("ferry.replicate")));
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from("x-death"),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        let props = BasicProperties::default().with_headers(headers);
        assert_eq!(broker_reason(&props), "dead-lettered by the broker: delivery_limit (from ferry.replicate)");
        assert_eq!(broker_reason(&BasicProperties::default()), "dead-lettered without a reason");
    }
}
