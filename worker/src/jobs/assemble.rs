//! Assemble: check an upload's staging file, compare its md5 with the client's, then record the file, its replica targets and their replicate
//! jobs in one transaction.
//!
//! The API wrote every chunk in place into the upload's data file and hashed it as it
//! arrived (the running digest in the upload row), so nothing is copied or re-read
//! here: the job checks the file's length, compares the md5 and records the result.
//! Without a stored digest the file is hashed here.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use ferry_queue::outbox;
use ferry_queue::Job;
use ferry_shared::hashing::RunningDigest;
use ferry_shared::staging::{data_path, upload_dir};
use ferry_shared::types::FileId;
use ferry_shared::types::{Md5, Sha256};

use super::{Ctx, JobError};
use crate::placement;

const READ_BUF: usize = 1 << 20;

pub async fn run(ctx: &Arc<Ctx>, id: FileId) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    let Some(row) = client
        .query_opt("SELECT status, md5, total_size, md5_state, sha256_state FROM uploads WHERE id = $1", &[&id.0])
        .await?
    else {
        tracing::warn!(upload.id = %id, "assemble job for an unknown upload; dropping");
        return Ok(());
    };
    let (status, md5, total): (String, Option<String>, Option<i64>) = (row.get(0), row.get(1), row.get(2));
    if status != "assembling" {
        // Redelivery after the work was committed.
        return Ok(());
    }
    let expected_md5 = md5.ok_or_else(|| JobError::Permanent("upload has no md5".into()))?;
    let total = total.unwrap_or(0);
    let stored: Option<RunningDigest> = match (row.get::<_, Option<Vec<u8>>>(3), row.get::<_, Option<Vec<u8>>>(4)) {
        (Some(md5), Some(sha)) => RunningDigest::from_bytes(&md5, &sha).ok(),
        _ => None,
    };
    drop(client);

    let dir = upload_dir(&ctx.config.storage.staging_dir, id);
    let data = data_path(&dir);
    let started = std::time::Instant::now();
    let checked = tokio::task::spawn_blocking(move || check_data(&data, total as u64, stored))
        .await
        .map_err(|e| JobError::Retry(format!("assembly thread: {e}")))?;
    let (md5, sha256) = match checked {
        Ok(d) => d,
        // Bytes that are gone cannot come back: fail visibly.
        Err(AssembleError::Missing(detail)) => return fail(ctx, id, &format!("missing_bytes: {detail}")).await,
        Err(AssembleError::Io(e)) => return Err(e.into()),
    };
    tracing::info!(
        upload.id = %id,
        size_bytes = total,
        duration_ms = started.elapsed().as_millis() as u64,
        "assembled"
    );
    let (md5, sha256) = (md5.to_string(), sha256.to_string());
    if !md5.eq_ignore_ascii_case(&expected_md5) {
        // As drf-chunked-upload does: the upload stays open with its bytes, and the
        // client may complete it again with the right md5.
        reopen(ctx, id, &format!("checksum_mismatch: client sent {expected_md5}, file has {md5}")).await?;
        return Ok(());
    }
    record_file(ctx, id, total, &md5, &sha256).await?;
    Ok(())
}

/// Files row, replica rows and replicate jobs, and the upload's completion, at once.
async fn record_file(ctx: &Arc<Ctx>, id: FileId, size: i64, md5: &str, sha256: &str) -> Result<(), JobError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt("SELECT status, user_id, filename, parent_id FROM uploads WHERE id = $1 FOR UPDATE", &[&id.0])
        .await?;
    let Some(row) = row.filter(|r| r.get::<_, String>(0) == "assembling") else {
        return Ok(());
    };
    let (user, filename, parent): (i64, String, Option<uuid::Uuid>) = (row.get(1), row.get(2), row.get(3));
    // The parent may have been deleted meanwhile: the file then stands alone. Its row is
    // locked so that versions of one chain completing at once take their numbers one
    // after another (distinct and increasing; the unique index files_chain_version
    // enforces it).
    let parent = match parent {
        Some(p) => tx
            .query_opt("SELECT id FROM files WHERE id = $1 AND deleted_at IS NULL FOR UPDATE", &[&p])
            .await?
            .map(|r| r.get::<_, uuid::Uuid>(0)),
        None => None,
    };
    let version: i32 = match parent {
        Some(p) => tx
            .query_one("SELECT COALESCE(MAX(version), 1) + 1 FROM files WHERE id = $1 OR parent_id = $1", &[&p])
            .await?
            .get(0),
        None => 1,
    };
    tx.execute(
        "INSERT INTO files (id, user_id, filename, size, md5, sha256, parent_id, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        &[&id.0, &user, &filename, &size, &md5, &sha256, &parent, &version],
    )
    .await?;
    let targets = choose_targets(ctx, &tx, size).await?;
    for node in &targets {
        tx.execute("INSERT INTO replicas (file_id, node_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&id.0, &node.0])
            .await?;
        outbox::enqueue(&tx, &Job::Replicate { file: id, node: *node }).await?;
    }
    tx.execute("UPDATE uploads SET status = 'complete', completed_at = now(), error = NULL WHERE id = $1", &[&id.0])
        .await?;
    tx.execute("SELECT pg_notify($1, $2)", &[&ferry_store::pool::UPLOAD_CHANNEL, &id.to_string()]).await?;
    tx.commit().await?;
    ctx.relay.wake();
    if (targets.len() as u32) < ctx.config.storage.replication_factor {
        tracing::warn!(
            file.id = %id,
            replicas.targets = targets.len(),
            replicas.wanted = ctx.config.storage.replication_factor,
            "not enough eligible nodes; the monitor's repair will add replicas when nodes are available"
        );
    }
    Ok(())
}

async fn choose_targets(
    ctx: &Arc<Ctx>,
    client: &impl GenericClient,
    size: i64,
) -> Result<Vec<ferry_shared::types::NodeId>, JobError> {
    Ok(placement::choose_nodes(
        client,
        i64::from(ctx.config.storage.replication_factor),
        size,
        ctx.config.storage.node_reserve_bytes as i64,
        ctx.config.api.heartbeat_stale_secs as f64,
        &[],
    )
    .await?)
}

/// Hands an upload whose md5 did not match back to its client: `uploading` again with
/// `error` (visible to the client) and no accepted md5; wakes its waiter, which answers
/// `400 checksum_mismatch`.
async fn reopen(ctx: &Arc<Ctx>, id: FileId, error: &str) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    client
        .execute(
            "UPDATE uploads SET status = 'uploading', md5 = NULL, error = $2 WHERE id = $1 AND status = 'assembling'",
            &[&id.0, &error],
        )
        .await?;
    client.execute("SELECT pg_notify($1, $2)", &[&ferry_store::pool::UPLOAD_CHANNEL, &id.to_string()]).await?;
    tracing::info!(upload.id = %id, error, "upload reopened: md5 mismatch");
    Ok(())
}

/// Marks the upload failed with `error` (visible to the client) and wakes its waiter.
pub async fn fail(ctx: &Arc<Ctx>, id: FileId, error: &str) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    client
        .execute(
            "UPDATE uploads SET status = 'failed', error = $2 WHERE id = $1 AND status = 'assembling'",
            &[&id.0, &error],
        )
        .await?;
    client.execute("SELECT pg_notify($1, $2)", &[&ferry_store::pool::UPLOAD_CHANNEL, &id.to_string()]).await?;
    tracing::info!(upload.id = %id, error, "upload failed");
    Ok(())
}

#[derive(Debug)]
enum AssembleError {
    Missing(String),
    Io(std::io::Error),
}

/// Checks the data file holds the `total` recorded bytes (trimming anything a failed
/// chunk left beyond them) and returns md5 and sha256 of those bytes: `stored` when the
/// API hashed them on the way in, else hashed here. Runs on a blocking thread.
fn check_data(data: &Path, total: u64, stored: Option<RunningDigest>) -> Result<(Md5, Sha256), AssembleError> {
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(data) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && total == 0 => {
            return Ok(stored.unwrap_or_default().finalize());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AssembleError::Missing(format!("{} is gone", data.display())));
        }
        Err(e) => return Err(AssembleError::Io(e)),
    };
    let len = file.metadata().map_err(AssembleError::Io)?.len();
    if len < total {
        return Err(AssembleError::Missing(format!("{} holds {len} of {total} bytes", data.display())));
    }
    if len > total {
        file.set_len(total).and_then(|()| file.sync_all()).map_err(AssembleError::Io)?;
    }
    let digest = match stored {
        Some(digest) => digest,
        None => {
            let mut digest = RunningDigest::default();
            copy_hashing(file.take(total), &mut std::io::sink(), &mut digest, &mut vec![0u8; READ_BUF])?;
            digest
        }
    };
    Ok(digest.finalize())
}

fn copy_hashing(
    mut from: impl Read,
    to: &mut impl Write,
    digest: &mut RunningDigest,
    buf: &mut [u8],
) -> Result<u64, AssembleError> {
    let mut copied = 0u64;
    loop {
        let n = from.read(buf).map_err(AssembleError::Io)?;
        if n == 0 {
            return Ok(copied);
        }
        digest.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(AssembleError::Io)?;
        copied += n as u64;
    }
}
