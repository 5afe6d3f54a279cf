//! Delete: remove a deleted file's replicas from their nodes, then its staging bytes.
//! Also used for expired uploads, which have staging bytes only.

use std::sync::Arc;

use ferry_shared::staging::upload_dir;
use ferry_shared::types::{FileId, NodeId};

use super::{Ctx, JobError};
use crate::ssh::NodeAddr;

pub async fn run(ctx: &Arc<Ctx>, file: FileId) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    // Only replicas of a file that is really deleted: a stray job must not remove
    // live data.
    let rows = client
        .query(
            "SELECT r.node_id, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path
             FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN files f ON f.id = r.file_id
             WHERE r.file_id = $1 AND f.deleted_at IS NOT NULL",
            &[&file.0],
        )
        .await?;
    let relpath = file.node_relpath();
    for row in &rows {
        let node: i32 = row.get(0);
        let addr = NodeAddr { host: row.get(1), port: row.get(2), user: row.get(3), root: row.get(4) };
        ctx.ssh.remove(&addr, &relpath).await?;
        client.execute("DELETE FROM replicas WHERE file_id = $1 AND node_id = $2", &[&file.0, &node]).await?;
        tracing::info!(file.id = %file, node.id = node, "replica removed");
    }
    // Staging bytes go if the file is deleted or the upload never became a file.
    let releasable = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM files WHERE id = $1 AND deleted_at IS NOT NULL)
                 OR EXISTS (SELECT 1 FROM uploads WHERE id = $1 AND status IN ('expired', 'failed'))",
            &[&file.0],
        )
        .await?
        .get::<_, bool>(0);
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
    tx.execute("SELECT 1 FROM files WHERE id = $1 FOR UPDATE", &[&file.0]).await?;
    let row = tx
        .query_opt(
            "SELECT n.ssh_host, n.ssh_port, n.ssh_user, n.root_path,
                    (SELECT count(*) FROM replicas r2 JOIN nodes n2 ON n2.id = r2.node_id
                     WHERE r2.file_id = r.file_id AND r2.node_id <> r.node_id
                       AND r2.state = 'present' AND n2.state = 'active')
             FROM replicas r JOIN nodes n ON n.id = r.node_id
             WHERE r.file_id = $1 AND r.node_id = $2 AND r.state = 'deleting'
             FOR UPDATE OF r",
            &[&file.0, &node.0],
        )
        .await?;
    let Some(row) = row else { return Ok(()) };
    let elsewhere: i64 = row.get(4);
    if elsewhere < i64::from(ctx.config.storage.replication_factor) {
        // Not safe any more: keep the copy and count it again.
        tx.execute("UPDATE replicas SET state = 'present' WHERE file_id = $1 AND node_id = $2", &[&file.0, &node.0])
            .await?;
        tx.commit().await?;
        return Ok(());
    }
    let addr = NodeAddr { host: row.get(0), port: row.get(1), user: row.get(2), root: row.get(3) };
    ctx.ssh.remove(&addr, &file.node_relpath()).await?;
    tx.execute("DELETE FROM replicas WHERE file_id = $1 AND node_id = $2", &[&file.0, &node.0]).await?;
    tx.commit().await?;
    tracing::info!(file.id = %file, node.id = %node, "surplus replica removed");
    Ok(())
}
