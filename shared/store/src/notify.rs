//! Upload events over PostgreSQL `LISTEN`/`NOTIFY`: the one definition of the channel,
//! of sending an event, and of listening for them. Workers notify in the transaction
//! that ends an assembly, and right after the commit that makes a replica present (a
//! transaction that notifies holds PostgreSQL's one notification lock from its commit
//! until its WAL is flushed, which would make every replica's commit wait for the one
//! before it); each API process listens on a dedicated connection and wakes its
//! completing POSTs.

use crate::cached::Cached;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use ferry_shared::backoff;
use ferry_shared::types::FileId;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::StoreError;

/// `NOTIFY` channel for upload events; the payload is the upload's id (= its file's
/// id). Workers notify when an assembly ends and when a replica becomes present.
pub const UPLOAD_CHANNEL: &str = "ferry_upload";

/// Sends an upload event; inside a transaction it is delivered at commit. Sent alone
/// (autocommit) it writes no WAL and waits for no flush.
pub async fn upload_event(c: &impl GenericClient, id: FileId) -> Result<(), StoreError> {
    c.execute_cached("SELECT pg_notify($1, $2)", &[&UPLOAD_CHANNEL, &id.to_string()]).await?;
    Ok(())
}

/// [`upload_event`] for several uploads in one statement (the files of one rsync
/// batch); PostgreSQL delivers one notification per id. Nothing is sent for none.
pub async fn upload_events(c: &impl GenericClient, ids: &[FileId]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    c.execute_cached("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", &[&UPLOAD_CHANNEL, &ids]).await?;
    Ok(())
}

/// Listens for upload events on a dedicated connection until `shutdown`, sending each
/// event's upload id to `tx`; reconnects with backoff when the connection is lost. A
/// missed event only delays a waiter until its next periodic look.
pub async fn run_listener(config: tokio_postgres::Config, tx: broadcast::Sender<Uuid>, shutdown: CancellationToken) {
    let mut attempt = 0;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listen(&config, &tx, &mut attempt) => r,
        };
        let delay = backoff::delay(attempt, Duration::from_millis(200), Duration::from_secs(10));
        if let Err(error) = result {
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "completion listener lost the database");
        }
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn listen(
    config: &tokio_postgres::Config,
    tx: &broadcast::Sender<Uuid>,
    attempt: &mut u32,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let tx = tx.clone();
    let mut forward = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(n) = message? {
                if let Ok(id) = n.payload().parse::<Uuid>() {
                    // No receivers is fine: nobody is waiting for this upload here.
                    let _ = tx.send(id);
                }
            }
        }
        Ok(())
    });
    if let Err(error) = client.batch_execute(&format!("LISTEN {UPLOAD_CHANNEL}")).await {
        forward.abort();
        return Err(error);
    }
    *attempt = 0;
    match (&mut forward).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
