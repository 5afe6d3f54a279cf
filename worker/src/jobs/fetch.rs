//! Bringing a file back to staging from a node that holds a verified copy, for
//! replicas made after the staging copy was released (repair, drain, a late node).
//! The worker signs its own download URL with the secret node agents check, streams
//! the body to a temp file while hashing, and keeps it only if the sha256 matches.

use std::io::Write;
use std::path::Path;

use ferry_shared::hashing::RunningDigest;
use ferry_shared::types::{FileId, Sha256};
use ferry_shared::{signing, staging};
use futures::StreamExt;

use super::JobError;

/// Downloads `file` from `public_url` into `dest`: into a unique temp file beside it,
/// checked against `expected`, fsynced, renamed to `dest`, and the directory fsynced.
///
/// # Errors
/// [`JobError::Retry`] for a transport error, a non-2xx answer, a sha256 mismatch or a
/// local I/O error; the temp file is removed in every case.
pub async fn from_node(
    http: &reqwest::Client,
    secret: &[u8],
    public_url: &str,
    file: FileId,
    expected: Sha256,
    dest: &Path,
) -> Result<(), JobError> {
    let expires = chrono::Utc::now().timestamp() + 600;
    let url =
        format!("{}{}", public_url.trim_end_matches('/'), signing::signed_path(secret, file, expires, None, None));
    let response = http.get(&url).send().await.map_err(|e| JobError::Retry(format!("fetch from {public_url}: {e}")))?;
    if !response.status().is_success() {
        return Err(JobError::Retry(format!("fetch from {public_url}: status {}", response.status())));
    }
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // A name of its own in the destination's directory (so the rename stays on one
    // file system), removed when dropped: two jobs restoring the same file never write
    // into each other's temp file, and a failed or cancelled fetch leaves nothing behind.
    let mut tmp = tokio::task::block_in_place(|| {
        staging::create_dir_durable(dir)?;
        tempfile::Builder::new().prefix(".fetch-").tempfile_in(dir)
    })?;
    let mut digest = RunningDigest::default();
    let mut body = response.bytes_stream();
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(|e| JobError::Retry(format!("fetch from {public_url}: {e}")))?;
        digest.update(&frame);
        // Frames are small (tens of KiB): a blocking write here is brief.
        tokio::task::block_in_place(|| tmp.as_file_mut().write_all(&frame))?;
    }
    let (_, sha256) = digest.finalize();
    if sha256 != expected {
        return Err(JobError::Retry(format!(
            "copy fetched from {public_url} has sha256 {sha256}, expected {expected}"
        )));
    }
    // tmp -> fsync -> rename -> fsync the directory: after a crash `dest` is either
    // absent or the whole verified file, never a torn one.
    tokio::task::block_in_place(|| {
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        staging::sync_dir(dir)
    })?;
    Ok(())
}
