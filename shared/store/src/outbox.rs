//! The `outbox` table: jobs written in the same transaction as the state change they
//! describe (with their records: `crate::jobs::enqueue`), relayed to the broker by
//! `ferry_queue::outbox`. The store knows nothing of the broker: a row is an exchange,
//! a routing key, a message id and a JSON body.

use crate::cached::Cached;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::StoreError;

/// One row waiting to be published.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// `outbox.id`: the order rows were written in.
    pub id: i64,
    pub exchange: String,
    pub routing_key: String,
    /// The AMQP `message_id` the row is published with (stable across republishes).
    pub message_id: Uuid,
    /// The JSON body as text.
    pub payload: String,
}

/// Locks and returns up to `limit` rows in write order, skipping rows another relay
/// holds (`FOR UPDATE SKIP LOCKED`), so several relays share the table. Call inside a
/// transaction and [`delete`] the rows in it once they are published.
pub async fn claim(tx: &impl GenericClient, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = tx
        .query_cached(
            "SELECT id, exchange, routing_key, message_id, payload::text AS payload FROM outbox
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxRow {
                id: r.try_get("id")?,
                exchange: r.try_get("exchange")?,
                routing_key: r.try_get("routing_key")?,
                message_id: r.try_get("message_id")?,
                payload: r.try_get("payload")?,
            })
        })
        .collect()
}

/// Removes published rows.
pub async fn delete(tx: &impl GenericClient, ids: &[i64]) -> Result<(), StoreError> {
    tx.execute_cached("DELETE FROM outbox WHERE id = ANY($1)", &[&ids]).await?;
    Ok(())
}
