//! Bringing a file back to staging from a node that holds a verified copy, for
//! replicas made after the staging copy was released (repair, drain, a late node).
//! The worker signs its own download URL with the secret node agents check, streams
//! the body to a temp file while hashing, and keeps it only if the sha256 matches.

use std::io::Write;
use std::path::Path;

use ferry_shared::hashing::RunningDigest;
use ferry_shared::signing;
use ferry_shared::types::{FileId, Sha256};
use futures::StreamExt;

use crate::jobs::JobError;

/// Downloads `file` from `public_url` into `dest` (temp, fsync, rename).
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
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = dest.with_extension("fetch");
    let mut out = std::fs::File::create(&tmp)?;
    let mut digest = RunningDigest::default();
    let mut body = response.bytes_stream();
    let result: Result<(), JobError> = async {
        while let Some(frame) = body.next().await {
            let frame = frame.map_err(|e| JobError::Retry(format!("fetch from {public_url}: {e}")))?;
            digest.update(&frame);
            // Frames are small (tens of KiB): a blocking write here is brief.
            tokio::task::block_in_place(|| out.write_all(&frame))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let (_, sha256) = digest.finalize();
    if sha256 != expected {
        let _ = std::fs::remove_file(&tmp);
        return Err(JobError::Retry(format!(
            "copy fetched from {public_url} has sha256 {sha256}, expected {expected}"
        )));
    }
    tokio::task::block_in_place(|| {
        out.sync_all()?;
        std::fs::rename(&tmp, dest)
    })?;
    Ok(())
}
