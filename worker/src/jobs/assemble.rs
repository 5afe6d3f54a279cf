//! Assemble: check an upload's staging file, compare its md5 with the client's, then
//! record the file, its replica targets and their replicate jobs in one transaction.
//!
//! The job is named after the upload state it ends, `assembling` (a state of the HTTP
//! contract, `GET /storage/tmp-upload/<id>/`), not after joining chunks: chunks are
//! written in place, so there is nothing to join. The API ends that state itself
//! whenever staging holds exactly the bytes it hashed
//! (`ferry_queue::completion::record_file`); this job is the fallback for the rest (a
//! staging copy of another length, trimmed here; no stored digest, hashed here).
//!
//! The API wrote every chunk in place into the upload's data file and hashed it as it
//! arrived (the running digest in the upload row), so nothing is copied or re-read
//! here: the job checks the file's length, compares the md5 and records the result.
//! Without a stored digest the file is hashed here.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use ferry_queue::completion::{self, Recorded};
use ferry_shared::hashing::RunningDigest;
use ferry_shared::staging::{data_path, upload_dir};
use ferry_shared::types::{ByteSize, FileId, Md5, Sha256};
use ferry_store::uploads::UploadFailure;
use ferry_store::{notify, uploads, UploadState};

use super::{Ctx, JobError};
const READ_BUF: usize = 1 << 20;

pub async fn run(ctx: &Arc<Ctx>, id: FileId) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    let Some(upload) = uploads::assembly_input(&client, id).await? else {
        tracing::warn!(upload.id = %id, "assemble job for an unknown upload; dropping");
        return Ok(());
    };
    drop(client);
    if upload.state != UploadState::Assembling {
        // Redelivery after the work was committed.
        return Ok(());
    }
    let expected_md5 = upload.md5.ok_or_else(|| JobError::Permanent("upload has no md5".into()))?;
    let total = upload.total_size.unwrap_or_default();
    let stored: Option<RunningDigest> = match (upload.md5_state, upload.sha256_state) {
        (Some(md5), Some(sha)) => RunningDigest::from_bytes(&md5, &sha).ok(),
        _ => None,
    };

    let dir = upload_dir(&ctx.config.storage.staging_dir, id);
    let data = data_path(&dir);
    let started = std::time::Instant::now();
    let checked = tokio::task::spawn_blocking(move || check_data(&data, total.bytes(), stored))
        .await
        .map_err(|e| JobError::Retry(format!("assembly thread: {e}")))?;
    let (md5, sha256) = match checked {
        Ok(d) => d,
        // Bytes that are gone cannot come back: fail visibly.
        Err(AssembleError::Missing(detail)) => {
            tracing::warn!(upload.id = %id, staging = %dir.display(), detail, "staging copy is incomplete");
            return fail(ctx, id, UploadFailure::MissingBytes, &detail).await;
        }
        Err(AssembleError::Io(e)) => return Err(e.into()),
    };
    tracing::info!(
        upload.id = %id,
        size_bytes = total.bytes(),
        duration_ms = started.elapsed().as_millis() as u64,
        "assembled"
    );
    let (md5, sha256) = (md5.to_string(), sha256.to_string());
    if !md5.eq_ignore_ascii_case(&expected_md5) {
        // As drf-chunked-upload does: the upload stays open with its bytes, and the
        // client may complete it again with the right md5.
        let detail = format!("client sent {expected_md5}, file has {md5}");
        reopen(ctx, id, &detail).await?;
        return Ok(());
    }
    record_file(ctx, id, total, &md5, &sha256).await?;
    Ok(())
}

/// Files row, replica rows and replicate jobs, and the upload's completion, at once
/// ([`completion::record_file`], shared with the API's completing request).
async fn record_file(ctx: &Arc<Ctx>, id: FileId, size: ByteSize, md5: &str, sha256: &str) -> Result<(), JobError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let verified = completion::Verified { id, size, md5, sha256 };
    if let Recorded::File = completion::record_file(&tx, verified, &ctx.config).await? {
        // The completing request waits in an API process: wake it at the commit.
        notify::upload_event(&tx, id).await?;
        tx.commit().await?;
        ctx.relay.wake();
    }
    Ok(())
}

/// Hands an upload whose md5 did not match back to its client: `uploading` again with
/// the mismatch recorded (visible to the client) and no accepted md5; wakes its waiter,
/// which answers `400 checksum_mismatch`.
async fn reopen(ctx: &Arc<Ctx>, id: FileId, detail: &str) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    uploads::reopen(&client, id, UploadFailure::ChecksumMismatch, detail).await?;
    notify::upload_event(&client, id).await?;
    tracing::info!(upload.id = %id, detail, "upload reopened: md5 mismatch");
    Ok(())
}

/// Marks the upload failed with `failure` and `detail` (shown to the client in the
/// upload's `error`, so never a server path) and wakes its waiter.
pub async fn fail(ctx: &Arc<Ctx>, id: FileId, failure: UploadFailure, detail: &str) -> Result<(), JobError> {
    let client = ctx.pool.get().await?;
    uploads::mark_failed(&client, id, failure, detail).await?;
    notify::upload_event(&client, id).await?;
    tracing::info!(upload.id = %id, failure = failure.code(), detail, "upload failed");
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
            return Err(AssembleError::Missing("the staging copy is gone".to_owned()));
        }
        Err(e) => return Err(AssembleError::Io(e)),
    };
    let len = file.metadata().map_err(AssembleError::Io)?.len();
    if len < total {
        return Err(AssembleError::Missing(format!("the staging copy holds {len} of {total} bytes")));
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
