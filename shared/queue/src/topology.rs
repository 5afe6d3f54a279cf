//! RabbitMQ topology and connections.
//!
//! Topology (declared idempotently by every process that connects):
//! - `ferry.jobs` (direct, durable) routes `assemble|replicate|delete|scrub|drop` to the durable
//!   quorum queues `ferry.<kind>`, which carry a delivery limit and dead-letter
//!   at-least-once to `ferry.dead` -> `ferry.<kind>.dead`.
//! - Delayed retry, shared by every kind: per tier a fanout exchange `ferry.retry.<tier>`
//!   and a classic durable queue of the same name with a queue TTL, dead-lettered to
//!   `ferry.jobs` with the message's own routing key (no `x-dead-letter-routing-key`):
//!   a job parked with routing key `<kind>` comes back to `ferry.<kind>`. One queue per
//!   tier because a per-message TTL only expires at the queue head; one per tier, not
//!   per kind and tier, so the management UI shows 4 retry queues rather than 20.
//! - `ferry.heartbeats` (fanout, transient): monitor -> every API replica.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::JobKind;

pub const JOBS_EXCHANGE: &str = "ferry.jobs";
pub const DEAD_EXCHANGE: &str = "ferry.dead";
pub const HEARTBEAT_EXCHANGE: &str = "ferry.heartbeats";

/// Deliveries of one message before the quorum queue dead-letters it (poison guard
/// for crashes mid-job; ordinary failures go through the retry tiers instead).
pub const DELIVERY_LIMIT: i64 = 20;

/// Delay tiers for retries, in order of attempts.
pub const RETRY_TIERS: &[(&str, Duration)] = &[
    ("1s", Duration::from_secs(1)),
    ("5s", Duration::from_secs(5)),
    ("30s", Duration::from_secs(30)),
    ("2m", Duration::from_secs(120)),
];

/// The delay of the retry tier named `tier` of [`RETRY_TIERS`] (zero for a name that
/// is none of them).
pub fn retry_delay(tier: &str) -> Duration {
    RETRY_TIERS.iter().find(|(name, _)| *name == tier).map_or(Duration::ZERO, |(_, delay)| *delay)
}

/// The retry tier queue (and its fanout exchange) named `tier` of [`RETRY_TIERS`].
pub fn retry_queue(tier: &str) -> String {
    format!("ferry.retry.{tier}")
}

/// Retry queues of releases before the tiers were shared: `ferry.<kind>.retry.<tier>`.
/// They still send what they hold back to `ferry.jobs` (their own TTL and dead-letter
/// arguments); [`retire_per_kind_retry_queues`] deletes the empty ones.
fn per_kind_retry_queues() -> impl Iterator<Item = String> {
    ["assemble", "replicate", "delete"]
        .into_iter()
        .flat_map(|kind| RETRY_TIERS.iter().map(move |(tier, _)| format!("ferry.{kind}.retry.{tier}")))
}

/// Deletes the per-kind retry queues of older releases that are empty (`if-empty`; one
/// holding messages stays until they have expired back, and goes at a later call).
/// Runs on a channel of its own, which a refused delete closes; errors are ignored.
pub async fn retire_per_kind_retry_queues(connection: &Connection) {
    for queue in per_kind_retry_queues() {
        let Ok(channel) = connection.create_channel().await else { return };
        let options = lapin::options::QueueDeleteOptions { if_empty: true, ..Default::default() };
        if channel.queue_delete(queue.as_str().into(), options).await.is_ok() {
            let _ = channel.close(200, "ok".into()).await;
        }
    }
}

/// Opens a connection with Ferry's properties (named for the management UI).
pub async fn connect(url: &str, name: &str, heartbeat_secs: u16) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(mut uri) => {
            uri.query.heartbeat = Some(heartbeat_secs);
            Connection::connect_uri(uri, props).await
        }
        // Let lapin report the malformed URL in its own words.
        Err(_) => Connection::connect(url, props).await,
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Declares the whole job topology. Idempotent: every process calls it on connect.
pub async fn declare_topology(channel: &Channel) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(JOBS_EXCHANGE.into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
    channel.exchange_declare(DEAD_EXCHANGE.into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
    declare_heartbeat_exchange(channel).await?;
    let durable_q = QueueDeclareOptions { durable: true, ..Default::default() };
    for kind in JobKind::ALL {
        let rk = kind.routing_key();
        channel
            .queue_declare(
                kind.queue().as_str().into(),
                durable_q,
                table(&[
                    ("x-queue-type", text("quorum")),
                    ("x-delivery-limit", AMQPValue::LongLongInt(DELIVERY_LIMIT)),
                    ("x-dead-letter-exchange", text(DEAD_EXCHANGE)),
                    ("x-dead-letter-routing-key", text(rk)),
                    ("x-dead-letter-strategy", text("at-least-once")),
                    ("x-overflow", text("reject-publish")),
                ]),
            )
            .await?;
        channel
            .queue_bind(
                kind.queue().as_str().into(),
                JOBS_EXCHANGE.into(),
                rk.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(kind.dead_queue().as_str().into(), durable_q, table(&[("x-queue-type", text("quorum"))]))
            .await?;
        channel
            .queue_bind(
                kind.dead_queue().as_str().into(),
                DEAD_EXCHANGE.into(),
                rk.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    for (tier, delay) in RETRY_TIERS {
        let name = retry_queue(tier);
        channel.exchange_declare(name.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;
        channel
            .queue_declare(
                name.as_str().into(),
                durable_q,
                table(&[
                    ("x-message-ttl", AMQPValue::LongLongInt(delay.as_millis() as i64)),
                    ("x-dead-letter-exchange", text(JOBS_EXCHANGE)),
                ]),
            )
            .await?;
        channel
            .queue_bind(
                name.as_str().into(),
                name.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

pub async fn declare_heartbeat_exchange(channel: &Channel) -> lapin::Result<()> {
    channel
        .exchange_declare(
            HEARTBEAT_EXCHANGE.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
}
