//! RabbitMQ: topology, connections, publishing with confirms, and job messages.
//!
//! Topology (declared idempotently by every process that connects):
//! - `ferry.jobs` (direct, durable) routes `assemble|replicate|delete` to the durable
//!   quorum queues `ferry.<kind>`, which carry a delivery limit and dead-letter
//!   at-least-once to `ferry.dead` -> `ferry.<kind>.dead`.
//! - Delayed retry: classic durable queues `ferry.<kind>.retry.<tier>` with a queue TTL
//!   whose dead-letter target is `ferry.jobs` with routing key `<kind>`. One queue per
//!   tier because a per-message TTL only expires at the queue head.
//! - `ferry.heartbeats` (fanout, transient): monitor -> every API replica.

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::types::{FileId, NodeId};

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

/// The job queues a worker can consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Assemble,
    Replicate,
    Delete,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Assemble, JobKind::Replicate, JobKind::Delete];

    pub fn routing_key(self) -> &'static str {
        match self {
            JobKind::Assemble => "assemble",
            JobKind::Replicate => "replicate",
            JobKind::Delete => "delete",
        }
    }

    pub fn queue(self) -> String {
        format!("ferry.{}", self.routing_key())
    }

    pub fn dead_queue(self) -> String {
        format!("ferry.{}.dead", self.routing_key())
    }

    pub fn retry_queue(self, tier: &str) -> String {
        format!("ferry.{}.retry.{tier}", self.routing_key())
    }
}

impl std::str::FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.routing_key() == s)
            .ok_or_else(|| format!("unknown queue {s:?} (expected assemble, replicate or delete)"))
    }
}

/// A job message. The body says what to do; the current state lives in PostgreSQL,
/// and each handler re-reads it so a redelivered job finds the work done and acks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "lowercase")]
pub enum Job {
    /// Concatenate an upload's chunks, hash, compare with the client's md5.
    Assemble { upload: FileId },
    /// Copy a file to one node and verify it there.
    Replicate { file: FileId, node: NodeId },
    /// Remove a deleted file's replicas and staging bytes.
    Delete { file: FileId },
    /// Re-check one present replica's sha256 on its node (scrub). Travels on the
    /// replicate queue.
    Verify { file: FileId, node: NodeId },
    /// Remove one surplus replica (its node is draining and the file has enough
    /// replicas elsewhere). Travels on the delete queue.
    DropReplica { file: FileId, node: NodeId },
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self {
            Job::Assemble { .. } => JobKind::Assemble,
            Job::Replicate { .. } | Job::Verify { .. } => JobKind::Replicate,
            Job::Delete { .. } | Job::DropReplica { .. } => JobKind::Delete,
        }
    }
}

/// What the monitor publishes about a node on every probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: NodeId,
    pub up: bool,
    pub free_bytes: i64,
    pub total_bytes: i64,
    pub rtt_ms: Option<f64>,
    /// Unix milliseconds at the probe.
    pub at_ms: i64,
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
        for (tier, delay) in RETRY_TIERS {
            channel
                .queue_declare(
                    kind.retry_queue(tier).as_str().into(),
                    durable_q,
                    table(&[
                        ("x-message-ttl", AMQPValue::LongLongInt(delay.as_millis() as i64)),
                        ("x-dead-letter-exchange", text(JOBS_EXCHANGE)),
                        ("x-dead-letter-routing-key", text(rk)),
                    ]),
                )
                .await?;
        }
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

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker did not confirm the message (nack or returned unroutable)")]
    NotConfirmed,
}

/// A confirm-mode publishing channel on its own connection, redialled lazily after
/// a failure. Publishing and consuming never share a connection, so a slow consumer
/// cannot stall confirms (flow control applies per connection).
pub struct Publisher {
    url: String,
    name: String,
    heartbeat_secs: u16,
    state: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(url: &str, name: &str, heartbeat_secs: u16) -> Self {
        Publisher { url: url.to_owned(), name: name.to_owned(), heartbeat_secs, state: Mutex::new(None) }
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut state = self.state.lock().await;
        if let Some((conn, channel)) = state.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *state = None;
        let conn = connect(&self.url, &self.name, self.heartbeat_secs).await?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        declare_topology(&channel).await?;
        *state = Some((conn, channel.clone()));
        Ok(channel)
    }

    /// Forgets the current connection so the next call redials.
    pub async fn reset(&self) {
        if let Some((conn, _)) = self.state.lock().await.take() {
            let _ = conn.close(200, "reset".into()).await;
        }
    }

    /// Publishes a batch persistently and mandatory, then awaits every confirm.
    /// Returns only when the broker has taken responsibility for all of them.
    pub async fn publish_confirmed(&self, messages: &[OutgoingMessage<'_>]) -> Result<(), PublishError> {
        let result = self.publish_inner(messages).await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn publish_inner(&self, messages: &[OutgoingMessage<'_>]) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let mut confirms = Vec::with_capacity(messages.len());
        for m in messages {
            let mut headers = FieldTable::default();
            headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(m.attempt));
            let props = BasicProperties::default()
                .with_headers(headers)
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(m.message_id.to_string().as_str().into());
            let confirm = channel
                .basic_publish(
                    m.exchange.into(),
                    m.routing_key.into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    m.payload,
                    props,
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = confirm.await?;
            // A returned (unroutable) message is acked by the broker but carries the
            // message back: treat it as not delivered.
            if !confirmation.is_ack() || confirmation.take_message().is_some() {
                return Err(PublishError::NotConfirmed);
            }
        }
        Ok(())
    }

    /// Publishes a transient heartbeat (no confirm: a lost beat is replaced by the next).
    pub async fn publish_heartbeat(&self, beat: &Heartbeat) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(beat).unwrap_or_default();
        let result = async {
            let channel = self.channel().await?;
            channel
                .basic_publish(
                    HEARTBEAT_EXCHANGE.into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_expiration("10000".into()),
                )
                .await?
                .await?;
            Ok::<(), PublishError>(())
        }
        .await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    /// Readiness: the broker is reachable (redials if needed).
    pub async fn ping(&self) -> Result<(), PublishError> {
        self.channel().await.map(|_| ())
    }
}

/// One message to publish.
pub struct OutgoingMessage<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub message_id: Uuid,
    pub payload: &'a [u8],
    /// Earlier failed attempts of this job (0 for a new job).
    pub attempt: u32,
}

/// Header carrying the number of earlier attempts of a retried job.
pub const ATTEMPT_HEADER: &str = "x-ferry-attempt";

/// Attempts recorded on a delivery (0 when absent).
pub fn attempt_of(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
            _ => None,
        })
        .unwrap_or(0)
}
