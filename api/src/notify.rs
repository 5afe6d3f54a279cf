//! Upload events: workers `NOTIFY ferry_upload, '<id>'` in the transaction that
//! ends an assembly and in the one that makes a replica present; this task `LISTEN`s on a dedicated connection and fans the ids
//! out to the completing POSTs waiting in this process. A missed notice only delays
//! a waiter until its next periodic look.

use std::time::Duration;

use ferry_shared::backoff;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use ferry_store::pool::UPLOAD_CHANNEL as CHANNEL;

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
    if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        forward.abort();
        return Err(error);
    }
    *attempt = 0;
    match (&mut forward).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
