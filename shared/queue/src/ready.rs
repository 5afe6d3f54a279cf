//! Readiness of a process that needs PostgreSQL and RabbitMQ.

use std::sync::Arc;

use ferry_shared::ops::ReadyCheck;
use ferry_store::Pool;

use crate::Publisher;

/// One round trip to each of the database and the broker.
pub fn db_and_broker(pool: Pool, publisher: Arc<Publisher>) -> ReadyCheck {
    Arc::new(move || {
        let (pool, publisher) = (pool.clone(), publisher.clone());
        Box::pin(async move {
            ferry_store::ping(&pool).await.map_err(|e| format!("database: {e}"))?;
            publisher.ping().await.map_err(|e| format!("broker: {e}"))
        })
    })
}
