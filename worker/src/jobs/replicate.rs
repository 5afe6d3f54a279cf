//! Replicate: copy a file from staging to one node with rsync over SSH, check that
//! the copy is the upload's bytes (rsync's whole-file md5 against the md5 verified at
//! completion), and only then record the replica as present. When every
//! wanted replica is present the staging copy is released.

use std::sync::Arc;

use ferry_shared::staging::{data_path, upload_dir};
use ferry_shared::types::{FileId, NodeId};

use super::{Ctx, JobError};
use crate::ssh::NodeAddr;

pub async fn run(ctx: &Arc<Ctx>, file: FileId, node: NodeId) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT r.state, f.sha256, f.deleted_at IS NOT NULL, n.state, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path,
                    f.md5
             FROM replicas r JOIN files f ON f.id = r.file_id JOIN nodes n ON n.id = r.node_id
             WHERE r.file_id = $1 AND r.node_id = $2",
            &[&file.0, &node.0],
        )
        .await?;
    let Some(row) = row else {
        // Replica row gone (file deleted and cleaned): nothing to do.
        return Ok(());
    };
    let (state, sha256, deleted, node_state): (String, String, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if state == "present" || state == "deleting" || deleted {
        return Ok(());
    }
    if node_state == "disabled" {
        return Err(JobError::Permanent(format!("node {node} is disabled")));
    }
    let addr = NodeAddr { host: row.get(4), port: row.get(5), user: row.get(6), root: row.get(7) };
    let md5: String = row.get(8);
    client
        .execute(
            "UPDATE replicas SET state = 'copying', attempts = attempts + 1, updated_at = now()
             WHERE file_id = $1 AND node_id = $2 AND state IN ('pending', 'copying', 'failed')",
            &[&file.0, &node.0],
        )
        .await?;
    drop(client);

    let source = data_path(&upload_dir(&ctx.config.storage.staging_dir, file));
    if !tokio::fs::try_exists(&source).await? {
        restore_staging(ctx, file, &sha256, &source).await?;
    }
    let relpath = file.node_relpath();
    let started = std::time::Instant::now();
    let copied = match ctx.ssh.push(&addr, &source, &relpath).await? {
        Some(sent) => sent,
        // Nothing sent: a copy from an earlier attempt is there; read it back.
        None => ctx.ssh.remote_md5(&addr, &relpath).await?,
    };
    if !copied.eq_ignore_ascii_case(&md5) {
        // Never leave a bad copy where a redirect could find it. A mismatch here means
        // the staging copy no longer holds the verified bytes (or the node's copy is
        // damaged); a retry re-sends, and repair restores staging from a good node.
        let _ = ctx.ssh.remove(&addr, &relpath).await;
        return Err(JobError::Retry(format!("md5 of the copy on node {node} is {copied}, expected {md5}")));
    }

    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let updated = tx
        .execute(
            "UPDATE replicas r SET state = 'present', last_error = NULL, updated_at = now(), verified_at = now()
             FROM files f
             WHERE r.file_id = $1 AND r.node_id = $2 AND r.state = 'copying'
               AND f.id = r.file_id AND f.deleted_at IS NULL",
            &[&file.0, &node.0],
        )
        .await?;
    if updated > 0 {
        // Wakes a completing POST waiting for its write quorum (read-after-write).
        tx.execute("SELECT pg_notify($1, $2)", &[&ferry_store::pool::UPLOAD_CHANNEL, &file.to_string()]).await?;
    }
    if updated == 0 {
        // Deleted (or reassigned) while we copied: take the copy back.
        tx.commit().await?;
        ctx.ssh.remove(&addr, &relpath).await?;
        return Ok(());
    }
    tx.commit().await?;
    // Counted after the commit, so of two replicas finishing together the later one
    // sees both (inside the transaction each would see only its own).
    let counts = client
        .query_one(
            "SELECT count(*) FILTER (WHERE state IN ('pending', 'copying')), count(*) FILTER (WHERE state = 'present')
             FROM replicas WHERE file_id = $1",
            &[&file.0],
        )
        .await?;
    let (missing, present): (i64, i64) = (counts.get(0), counts.get(1));
    let node_label = node.to_string();
    ferry_shared::metrics::observe(&ferry_shared::metrics::RSYNC_DURATION, &[&node_label], started.elapsed());
    let size = tokio::fs::metadata(&source).await.map(|m| m.len()).unwrap_or(0);
    ferry_shared::metrics::RSYNC_BYTES.with_label_values(&[&node_label]).inc_by(size);
    tracing::info!(
        file.id = %file,
        node.id = %node,
        size_bytes = size,
        duration_ms = started.elapsed().as_millis() as u64,
        "replica verified"
    );
    if missing == 0 && present >= i64::from(ctx.config.storage.replication_factor) {
        let dir = upload_dir(&ctx.config.storage.staging_dir, file);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "could not release staging copy");
            }
        }
    }
    Ok(())
}

/// Marks the replica failed with its last error, for the repair to replace.
pub async fn fail(ctx: &Arc<Ctx>, file: FileId, node: NodeId, reason: &str) -> Result<(), JobError> {
    ctx.pool
        .get()
        .await?
        .execute(
            "UPDATE replicas SET state = 'failed', last_error = $3, updated_at = now()
             WHERE file_id = $1 AND node_id = $2 AND state IN ('pending', 'copying')",
            &[&file.0, &node.0, &reason],
        )
        .await?;
    tracing::warn!(file.id = %file, node.id = %node, reason, "replica failed");
    Ok(())
}

/// Brings the file back to staging from a healthy node holding a verified copy.
async fn restore_staging(ctx: &Arc<Ctx>, file: FileId, sha256: &str, dest: &std::path::Path) -> Result<(), JobError> {
    let expected: ferry_shared::types::Sha256 =
        sha256.parse().map_err(|_| JobError::Permanent(format!("stored sha256 {sha256:?} is malformed")))?;
    let sources = ctx
        .pool
        .get()
        .await?
        .query(
            "SELECT n.public_url FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN node_status s ON s.node_id = n.id
             WHERE r.file_id = $1 AND r.state = 'present' AND n.state <> 'disabled' AND s.up
             ORDER BY s.rtt_ms NULLS LAST",
            &[&file.0],
        )
        .await?;
    let mut last = JobError::Retry(format!("no healthy node holds a verified copy of {file} to repair from"));
    for row in &sources {
        let url: String = row.get(0);
        match crate::fetch::from_node(
            &ctx.http,
            ctx.config.signing.secret.expose().as_bytes(),
            &url,
            file,
            expected,
            dest,
        )
        .await
        {
            Ok(()) => {
                tracing::info!(file.id = %file, source = %url, "restored staging copy from a replica");
                return Ok(());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
