//! Expiring abandoned uploads: the state change and the delete jobs that reclaim their
//! staging bytes, in one transaction. Shared by the monitor's sweep and
//! `ferry uploads gc`.

use ferry_store::{uploads, Pool, StoreError};

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
