//! Publishing with confirms, on a connection of its own.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::topology::{connect, declare_topology, HEARTBEAT_EXCHANGE};
use crate::Heartbeat;

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
            for (name, value) in m.headers {
                headers.insert((*name).into(), AMQPValue::LongString(value.as_str().into()));
            }
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

    /// Messages ready (not delivered to a consumer) in `queue` and its consumers, by a
    /// passive declare. The topology is declared on every new channel, so Ferry's
    /// queues exist.
    pub async fn queue_counts(&self, queue: &str) -> Result<QueueCounts, PublishError> {
        let result = async {
            let channel = self.channel().await?;
            let passive = QueueDeclareOptions { passive: true, ..Default::default() };
            let q = channel.queue_declare(queue.into(), passive, FieldTable::default()).await?;
            Ok::<QueueCounts, PublishError>(QueueCounts { ready: q.message_count(), consumers: q.consumer_count() })
        }
        .await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }
}

/// What a passive declare tells about a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages waiting for a consumer (not those delivered and unacknowledged).
    pub ready: u32,
    pub consumers: u32,
}

/// One message to publish.
pub struct OutgoingMessage<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub message_id: Uuid,
    pub payload: &'a [u8],
    /// Earlier failed attempts of this job (0 for a new job).
    pub attempt: u32,
    /// Further text headers (a dead letter's [`DEAD_LETTER_HEADERS`]).
    pub headers: &'a [(&'a str, String)],
}

/// Headers every dead letter Ferry makes carries: why, which job, about what, at
/// which attempt, on which worker. (A broker-made dead letter has only `x-death`.)
pub const REASON_HEADER: &str = "x-ferry-reason";
/// The job's name (`replicate`, ...).
pub const KIND_HEADER: &str = "x-ferry-kind";
/// The upload (= file) id.
pub const FILE_HEADER: &str = "x-ferry-file";
/// The node id, for jobs about one.
pub const NODE_HEADER: &str = "x-ferry-node";
/// The worker id that gave the job up.
pub const WORKER_HEADER: &str = "x-ferry-worker";
/// All of them, for documentation and readers.
pub const DEAD_LETTER_HEADERS: [&str; 5] = [REASON_HEADER, KIND_HEADER, FILE_HEADER, NODE_HEADER, WORKER_HEADER];

/// A text header of a delivery.
pub fn text_header(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
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
