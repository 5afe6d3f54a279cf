//! The `node_status` table: each node's last probe, written by the active monitor.

use deadpool_postgres::GenericClient;
use ferry_shared::types::{ByteSize, NodeId};

use crate::convert::size_to_db;
use crate::StoreError;

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe<'a> {
    pub up: bool,
    pub free: ByteSize,
    pub total: ByteSize,
    pub rtt_ms: Option<f64>,
    /// Why the node counts as down.
    pub error: Option<&'a str>,
}

/// Upserts the node's status; `down_since` is set at the first failed probe and
/// cleared by the next good one.
pub async fn record(c: &impl GenericClient, node: NodeId, probe: &Probe<'_>) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO node_status (node_id, up, free_bytes, total_bytes, rtt_ms, error, checked_at, down_since)
         VALUES ($1, $2, $3, $4, $5, $6, now(), CASE WHEN $2 THEN NULL ELSE now() END)
         ON CONFLICT (node_id) DO UPDATE SET up = $2, free_bytes = $3, total_bytes = $4,
            rtt_ms = $5, error = $6, checked_at = now(),
            down_since = CASE WHEN $2 THEN NULL ELSE COALESCE(node_status.down_since, now()) END",
        &[
            &node.0,
            &probe.up,
            &size_to_db("free bytes", probe.free)?,
            &size_to_db("total bytes", probe.total)?,
            &probe.rtt_ms,
            &probe.error,
        ],
    )
    .await?;
    Ok(())
}
