//! Ending uploads that will not complete: the state change and the delete job that
//! reclaims the staging bytes, in one transaction. Expiry (abandoned uploads) is shared
//! by the monitor's sweep and `ferry uploads gc`; cancellation is `ferry jobs cancel`.

use ferry_shared::types::FileId;
use ferry_store::uploads::Cancelled;
use ferry_store::{notify, uploads, Client, Pool, StoreError};

use crate::{outbox, Job};

/// Uploads past their expiry become `expired` (further chunks get 410) and a delete
/// job reclaims their staging bytes. Completed files are never touched.
pub async fn expire_uploads(pool: &Pool) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let expired = uploads::expire_due(&tx, 500).await?;
    for id in &expired {
        outbox::enqueue(&tx, &Job::Delete { file: *id }).await?;
    }
    tx.commit().await?;
    if !expired.is_empty() {
        tracing::info!(uploads.expired = expired.len(), "expired abandoned uploads");
    }
    Ok(expired.len())
}

/// Cancels the unfinished upload `id` and its pending jobs ([`uploads::cancel`]) and
/// queues the delete job that reclaims its staging bytes, in one transaction; then
/// announces the upload event, so a completing POST waiting for it answers at once.
pub async fn cancel_upload(client: &mut Client, id: FileId, reason: &str) -> Result<Cancelled, StoreError> {
    let tx = client.transaction().await?;
    let outcome = uploads::cancel(&tx, id, reason).await?;
    if let Cancelled::Done { .. } = outcome {
        outbox::enqueue(&tx, &Job::Delete { file: id }).await?;
        notify::upload_event(&tx, id).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}
