//! tus concatenation: a client uploads parts of one file in parallel as partial uploads
//! (`Upload-Concat: partial`; ordinary uploads that never become files by themselves),
//! then creates the final upload with `Upload-Concat: final;<url> <url> ...`. The parts
//! must be the caller's and finished (`concatenation-unfinished` is not offered).
//!
//! The final upload's bytes are the parts' bytes copied, in order, into its own staging
//! file through the same writer the chunks use, which computes its md5 and sha256 on the
//! way: the digests of parts do not combine into the digest of the whole, so the bytes
//! are read once either way, and the copy keeps one data file per upload (what
//! replication, expiry and the staging sweep rely on). From there it is an ordinary
//! complete upload: assembled, replicated, listed. The parts are then terminated (tus
//! 1.0 lets a server remove them once concatenated), which releases their staging bytes
//! and quota.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use ferry_queue::{outbox, Job};
use ferry_shared::types::{FileId, UserId};
use ferry_store::uploads as store_uploads;
use ferry_store::UploadState;
use tokio::io::AsyncReadExt;

use super::protocol::{Concat, Metadata};
use super::upload::{client_md5, completion_md5, filename, finish, offset_headers, TusResult};
use crate::error::ApiError;
use crate::routes::upload::{
    check_new_file_size, insert_upload, intake_permit, resolve_parent, NewDirGuard, TusFields,
};
use crate::state::SharedState;
use crate::upload::intake::{Fields, Received};
use crate::upload::staging::{data_path, upload_dir, ChunkWriter, DigestStart, Written};
use crate::uploads;

/// Bytes read from a part per step (the writer's budgets bound what is in flight).
const COPY_STEP: u64 = 1 << 20;

fn invalid(detail: String) -> ApiError {
    ApiError::bad_request("invalid_concat", detail)
}

/// `POST /files/` with `Upload-Concat: final;...`: the final upload of `parts`, complete
/// at once (no `Upload-Length`: it is the parts' sum). Waits for the verdict as the last
/// PATCH of an upload does.
pub async fn create_final(
    state: &SharedState,
    user: UserId,
    headers: &HeaderMap,
    parts: &[FileId],
) -> TusResult<Response> {
    if headers.contains_key("upload-length") || headers.contains_key("upload-defer-length") {
        return Err(invalid("A final upload's length is its parts' sum: send no Upload-Length.".into()).into());
    }
    let metadata = Metadata::from_headers(headers)?;
    let filename = filename(&metadata)?;
    let md5 = client_md5(&metadata)?;
    let (parent, sizes, total) = {
        let client = state.pool.get().await?;
        let parent = resolve_parent(&client, user, metadata.text("parent")?.as_deref()).await?;
        let mut sizes = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if parts[..i].contains(part) {
                return Err(invalid(format!("Upload-Concat names /files/{part} twice.")).into());
            }
            let upload = store_uploads::load(&client, *part, user, false).await?;
            let finished = upload.as_ref().filter(|u| {
                u.concat.as_deref() == Some("partial")
                    && uploads::effective_state(u) == UploadState::Uploading
                    && u.total_size == Some(u.offset)
            });
            let Some(upload) = finished else {
                return Err(invalid(format!("/files/{part} is not a finished partial upload of yours.")).into());
            };
            sizes.push((*part, upload.offset.bytes()));
        }
        let total: u64 = sizes.iter().map(|(_, size)| size).sum();
        check_new_file_size(&client, state, user, total).await?;
        (parent, sizes, total)
    };

    let _permit = intake_permit(state, user)?;
    let id = FileId::new();
    let dir = upload_dir(&state.config.storage.staging_dir, id);
    let guard = NewDirGuard(Some(dir.clone()));
    let written = copy_parts(state, &dir, &sizes).await?;
    let md5 = completion_md5(Some(&written), md5, 0).await?;
    let received = Received { written: Some(written), size: total, fields: Fields::default() };
    let concat = Concat::final_header(parts);
    let tus = TusFields { metadata: metadata.raw.as_deref(), concat: Some(&concat) };
    let upload = insert_upload(state, id, user, &filename, parent, received, Some(total), Some(md5), tus).await?;
    guard.keep();
    retire_parts(state, user, parts).await?;
    tracing::info!(upload.id = %id, upload.total_bytes = total, upload.parts = parts.len(), "tus final upload created");
    finish(state, id, user, headers).await?;

    let location = format!("{}/files/{id}", state.base_url(headers));
    let mut response = StatusCode::CREATED.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).map_err(ApiError::internal)?);
    offset_headers(&mut response, total, Some(&upload));
    Ok(response)
}

/// Copies the parts' recorded bytes, in order, into a new data file in `dir` through
/// the chunk writer (fsynced, digests computed on the way).
async fn copy_parts(state: &SharedState, dir: &std::path::Path, parts: &[(FileId, u64)]) -> TusResult<Written> {
    let mut writer = ChunkWriter::open(dir, DigestStart::fresh()).await.map_err(ApiError::internal)?;
    for (part, size) in parts {
        let path = data_path(&upload_dir(&state.config.storage.staging_dir, *part));
        let mut file = tokio::fs::File::open(&path).await.map_err(ApiError::internal)?;
        let mut left = *size;
        while left > 0 {
            let mut buf = BytesMut::with_capacity(COPY_STEP.min(left) as usize);
            let n = file.read_buf(&mut buf).await.map_err(ApiError::internal)?;
            if n == 0 {
                return Err(ApiError::internal(format!("partial upload {part} is shorter than recorded")).into());
            }
            left -= n as u64;
            writer.write(&buf).await.map_err(ApiError::internal)?;
        }
    }
    Ok(writer.finish().await.map_err(ApiError::internal)?)
}

/// Terminates the concatenated parts (as `DELETE` would): `expired`, and a delete job
/// per part reclaims its staging bytes.
async fn retire_parts(state: &SharedState, user: UserId, parts: &[FileId]) -> TusResult<()> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    for part in parts {
        if store_uploads::terminate(&tx, *part, user).await? {
            outbox::enqueue(&tx, &Job::Delete { file: *part }).await?;
        }
    }
    tx.commit().await?;
    state.relay.wake();
    Ok(())
}
