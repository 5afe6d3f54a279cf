//! Leader election: one monitor is active at a time. The leader holds a session-level
//! PostgreSQL advisory lock on a dedicated connection; if that connection dies, the
//! lock is released and a waiting monitor takes over.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::StoreError;

const LEADER_LOCK_KEY: i64 = 0x6665_7272_7902;

/// Held leadership: the lock lives as long as this value and its connection.
pub struct Leadership {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Tries once to become leader.
    pub async fn try_acquire(config: &tokio_postgres::Config) -> Result<Option<Leadership>, StoreError> {
        let (client, connection) = config.connect(NoTls).await?;
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "leader lock connection ended");
            }
        });
        let got: bool =
            client.query_one("SELECT pg_try_advisory_lock($1) AS got", &[&LEADER_LOCK_KEY]).await?.try_get("got")?;
        if got {
            Ok(Some(Leadership { client, connection }))
        } else {
            connection.abort();
            Ok(None)
        }
    }

    /// Still leader: the lock's connection is alive (checked with a round trip).
    pub async fn still_held(&self) -> bool {
        !self.connection.is_finished()
            && tokio::time::timeout(Duration::from_secs(5), self.client.simple_query("SELECT 1"))
                .await
                .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
