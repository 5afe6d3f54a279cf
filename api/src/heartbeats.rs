//! The API's view of node health: the monitor's heartbeats, read from the fanout
//! exchange through this replica's own exclusive, server-named queue and kept in
//! memory. A node counts as healthy only while its latest beat says up and is fresh
//! (younger than `api.heartbeat_stale_secs`, i.e. a few missed beats).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ferry_queue::{self as queue, Heartbeat, HEARTBEAT_EXCHANGE};
use ferry_shared::backoff;
use ferry_shared::types::NodeId;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct HeartbeatTable {
    beats: Arc<RwLock<HashMap<NodeId, (Heartbeat, Instant)>>>,
    stale_after: Duration,
}

impl HeartbeatTable {
    pub fn new(stale_after: Duration) -> Self {
        HeartbeatTable { beats: Arc::default(), stale_after }
    }

    pub fn record(&self, beat: Heartbeat) {
        if let Ok(mut beats) = self.beats.write() {
            beats.insert(beat.node, (beat, Instant::now()));
        }
    }

    /// The node's latest beat if it is fresh and says up.
    pub fn healthy(&self, node: NodeId) -> Option<Heartbeat> {
        let beats = self.beats.read().ok()?;
        let (beat, at) = beats.get(&node)?;
        (beat.up && at.elapsed() <= self.stale_after).then(|| beat.clone())
    }

    /// The latest beat whatever its age, with its age (for the admin view).
    pub fn latest(&self, node: NodeId) -> Option<(Heartbeat, Duration)> {
        let beats = self.beats.read().ok()?;
        beats.get(&node).map(|(beat, at)| (beat.clone(), at.elapsed()))
    }
}

/// Consumes heartbeats until `shutdown`, redialling with jittered backoff.
pub async fn run_consumer(url: String, heartbeat_secs: u16, table: HeartbeatTable, shutdown: CancellationToken) {
    let mut attempt = 0;
    loop {
        match consume(&url, heartbeat_secs, &table, &shutdown, &mut attempt).await {
            Ok(()) => return,
            Err(error) => {
                let delay = backoff::delay(attempt, Duration::from_millis(200), Duration::from_secs(10));
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "heartbeat consumer lost the broker");
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn consume(
    url: &str,
    heartbeat_secs: u16,
    table: &HeartbeatTable,
    shutdown: &CancellationToken,
    attempt: &mut u32,
) -> lapin::Result<()> {
    let conn = queue::connect(url, "ferry-api heartbeats", heartbeat_secs).await?;
    let channel = conn.create_channel().await?;
    queue::declare_heartbeat_exchange(&channel).await?;
    let q = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            q.name().clone(),
            HEARTBEAT_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut deliveries = channel
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    *attempt = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = conn.close(200, "shutdown".into()).await;
                return Ok(());
            }
            delivery = deliveries.next() => match delivery {
                Some(Ok(delivery)) => match serde_json::from_slice::<Heartbeat>(&delivery.data) {
                    Ok(beat) => table.record(beat),
                    Err(error) => tracing::warn!(%error, "ignoring malformed heartbeat"),
                },
                Some(Err(error)) => return Err(error),
                None => return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Closed,
                    "heartbeat consumer ended",
                ))),
            }
        }
    }
}
