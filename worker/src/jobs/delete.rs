//! Delete: remove a deleted file's replicas from their nodes, then its staging bytes.
//! Also used for expired uploads, which have staging bytes only.

use std::sync::Arc;

use ferry_shared::staging::upload_dir;
use ferry_shared::types::{FileId, NodeId};
use ferry_store::{files, notify, replicas, staging, ReplicaState};

use super::{Ctx, JobError};

pub async fn run(ctx: &Arc<Ctx>, file: FileId) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    // Only replicas of a file that is really deleted: a stray job must not remove
    // live data.
    let targets = replicas::of_deleted_file(&client, file).await?;
    for (node, target) in targets {
        let addr = super::node_addr(target);
        ctx.ssh.remove(&addr, file.0).await?;
        replicas::delete(&client, file, node).await?;
        tracing::info!(file.id = %file, node.id = %node, "replica removed");
    }
    // Staging bytes go if the file is deleted or the upload never became a file.
    let releasable = staging::releasable(&client, file).await?;
    if releasable {
        match tokio::fs::remove_dir_all(upload_dir(&ctx.config.storage.staging_dir, file)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes a surplus replica (on a draining node, or one too many after a node came
/// back), but only while the file still has enough present replicas on other active nodes (re-checked under the row lock, so a
/// concurrent failure elsewhere cannot leave the file short).
pub async fn drop_replica(ctx: &Arc<Ctx>, file: FileId, node: NodeId) -> Result<(), JobError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    // One drop per file at a time: two surplus drops must not both count the other.
    files::lock(&tx, file).await?;
    let Some(surplus) = replicas::lock_surplus(&tx, file, node).await? else { return Ok(()) };
    if surplus.present_elsewhere < i64::from(ctx.config.storage.replication_factor) {
        // Not safe any more: keep the copy and count it again.
        replicas::set_state(&tx, file, node, ReplicaState::Present).await?;
        tx.commit().await?;
        return Ok(());
    }
    let addr = super::node_addr(surplus.node);
    ctx.ssh.remove(&addr, file.0).await?;
    replicas::delete(&tx, file, node).await?;
    notify::upload_event(&tx, file).await?;
    tx.commit().await?;
    tracing::info!(file.id = %file, node.id = %node, "surplus replica removed");
    Ok(())
}
