//! The tus requests on an upload: `POST /files/` (creation, with or without a first
//! chunk, length known or deferred), `HEAD /files/<id>` (where to resume), `PATCH
//! /files/<id>` (the next chunk) and `DELETE /files/<id>` (termination). Each reuses
//! the chunked protocol's steps (`routes::upload`): intake slot, quota and size checks,
//! the staging writer with its running digest, the writer lease, the recording
//! transaction, and, with the last byte, the assembly job and the wait for its verdict.

use std::path::Path as FsPath;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ferry_queue::{outbox, Job};
use ferry_shared::types::{ByteSize, FileId, FileName, Md5, UserId};
use ferry_store::uploads::{self as store_uploads, Upload};
use ferry_store::{files, UploadState};

use super::protocol::{self, Checksum, Concat, Metadata};
use super::TusError;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::upload::{
    check_size_within, complete_or_assemble, expires_at, insert_upload, intake_permit, quota_left, resolve_parent,
    verdict, Lease, NewDirGuard, TusFields,
};
use crate::state::SharedState;
use crate::upload::intake::{self, Limits, Received};
use crate::upload::pace::BodyPace;
use crate::upload::running_md5;
use crate::upload::staging::{data_path, upload_dir, DigestStart, Written};
use crate::uploads;

pub(super) type TusResult<T> = Result<T, TusError>;

/// The `concat` value of a partial upload.
const PARTIAL: &str = "partial";

fn parse_id(raw: &str) -> TusResult<FileId> {
    raw.parse().map_err(|_| ApiError::NotFound { what: "Upload" }.into())
}

/// The file name from the metadata: `filename`, else `name` (Uppy sends both).
pub(super) fn filename(metadata: &Metadata) -> TusResult<FileName> {
    let raw = match metadata.text("filename")? {
        Some(name) => name,
        None => metadata.text("name")?.ok_or_else(|| {
            ApiError::bad_request("filename_required", "Upload-Metadata must carry a 'filename' (or 'name').")
        })?,
    };
    FileName::parse(&raw).map_err(|e| ApiError::bad_request("invalid_filename", e.to_string()).into())
}

/// The whole file's md5 from the metadata key `md5` (hex), if the client gave one.
pub(super) fn client_md5(metadata: &Metadata) -> TusResult<Option<Md5>> {
    metadata
        .text("md5")?
        .map(|hex| {
            hex.trim().parse().map_err(|_| {
                ApiError::bad_request("invalid_md5", "Upload-Metadata 'md5' must be 32 hex digits.").into()
            })
        })
        .transpose()
}

/// The md5 the assembly will check: the received bytes' own (from the running md5,
/// waited for, nothing re-read), which must equal the client's when it gave one. A
/// mismatch is a 460 before the last chunk is recorded, so the upload stays at `offset`.
pub(super) async fn completion_md5(written: Option<&Written>, client: Option<Md5>, offset: u64) -> TusResult<Md5> {
    let written = written.ok_or_else(intake::file_required)?;
    let actual = written.digest().await.map_err(ApiError::internal)?.finalize().0;
    match client {
        Some(client) if client != actual => Err(TusError::Checksum { what: "file", offset }),
        _ => Ok(actual),
    }
}

fn content_length(headers: &HeaderMap) -> TusResult<Option<u64>> {
    Ok(protocol::size_header(headers, header::CONTENT_LENGTH.as_str(), "invalid_content_length")?)
}

/// 413 before a byte is read when the body announces more than `max`.
fn check_announced(announced: Option<u64>, max: u64) -> TusResult<()> {
    match announced {
        Some(len) if len > max => Err(ApiError::TooLarge {
            detail: format!(
                "This request may carry at most {max} bytes (the upload's remaining length, storage.max_chunk_bytes \
                 and your quota); send the file in smaller chunks."
            ),
            limit: max,
        }
        .into()),
        _ => Ok(()),
    }
}

/// Streams one tus body to the upload's data file at `offset` and checks its
/// `Upload-Checksum`, if any, against the bytes now on disk.
async fn receive(
    state: &SharedState,
    dir: &FsPath,
    offset: u64,
    limits: Limits,
    body: Body,
    start: DigestStart,
    checksum: Option<Checksum>,
) -> TusResult<Received> {
    let received = intake::receive(body, None, dir, limits, BodyPace::of(&state.config.api), start).await?;
    if let Some(checksum) = checksum {
        let (path, size) = (data_path(dir), received.size);
        let matches = tokio::task::spawn_blocking(move || checksum.matches_file(&path, offset, size))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        if !matches {
            return Err(TusError::Checksum { what: "request body", offset });
        }
    }
    Ok(received)
}

/// After the last byte: waits (up to `api.complete_wait_secs`) for the assembly's
/// verdict and the write quorum, so that the answer to the last request means
/// downloadable when it came in time. A wait that runs out still answers success: every
/// byte is received and the pipeline finishes on its own.
pub(super) async fn finish(state: &SharedState, id: FileId, user: UserId, headers: &HeaderMap) -> TusResult<()> {
    let wait = Duration::from_secs(state.config.api.complete_wait_secs);
    verdict(state, id, user, wait, headers).await?;
    Ok(())
}

pub(super) fn offset_headers(response: &mut Response, offset: u64, upload: Option<&Upload>) {
    let headers = response.headers_mut();
    headers.insert("upload-offset", HeaderValue::from(offset));
    if let Some(upload) = upload.filter(|u| u.state == UploadState::Uploading) {
        if let Ok(expires) = HeaderValue::from_str(&protocol::http_date(upload.expires_at)) {
            headers.insert("upload-expires", expires);
        }
    }
}

/// `POST /files/`: creates an upload (`Upload-Length`, or `Upload-Defer-Length: 1`),
/// with its first bytes when the body is `application/offset+octet-stream`; a partial
/// upload with `Upload-Concat: partial`, a final one with `Upload-Concat: final;...`
/// (`super::concat`).
pub async fn create(
    State(state): State<SharedState>,
    user: AuthUser,
    headers: HeaderMap,
    body: Body,
) -> TusResult<Response> {
    let partial = match Concat::from_headers(&headers)? {
        Some(Concat::Final(parts)) => return super::concat::create_final(&state, user.id, &headers, &parts).await,
        Some(Concat::Partial) => true,
        None => false,
    };
    let length = protocol::creation_length(&headers)?;
    let metadata = Metadata::from_headers(&headers)?;
    // A part needs no name of its own: the final upload names the file.
    let unnamed = metadata.text("filename")?.is_none() && metadata.text("name")?.is_none();
    let filename =
        if partial && unnamed { FileName::parse(PARTIAL).map_err(ApiError::internal)? } else { filename(&metadata)? };
    let md5 = if partial { None } else { client_md5(&metadata)? };
    let parent = resolve_parent(&state.pool.get().await?, user.id, metadata.text("parent")?.as_deref()).await?;
    let left = user.quota_left;
    if let Some(length) = length {
        check_size_within(&state, left, length)?;
    }
    let with_body = protocol::is_offset_stream(&headers);
    let announced = content_length(&headers)?;
    if !with_body && announced.unwrap_or(0) > 0 {
        return Err(TusError::MediaType);
    }
    let checksum = if with_body { Checksum::from_headers(&headers)? } else { None };
    let room = length.unwrap_or(state.config.storage.max_file_bytes.min(left));
    let max = room.min(state.config.storage.max_chunk_bytes);
    check_announced(announced, max)?;
    let limits = Limits { offset: 0, expected: announced.filter(|_| with_body), max, max_is_limit: true };

    let _permit = intake_permit(&state, user.id)?;
    let id = FileId::new();
    let dir = upload_dir(&state.config.storage.staging_dir, id);
    let guard = NewDirGuard(Some(dir.clone()));
    let body = if with_body { body } else { Body::empty() };
    let received = receive(&state, &dir, 0, limits, body, DigestStart::fresh(), checksum).await?;
    let size = received.size;
    // A part is never a file by itself: its last byte starts no assembly.
    let completes = !partial && length == Some(size);
    let md5 = if completes { Some(completion_md5(received.written.as_ref(), md5, 0).await?) } else { None };
    let tus = TusFields { metadata: metadata.raw.as_deref(), concat: partial.then_some(PARTIAL) };
    let upload = insert_upload(&state, id, user.id, &filename, parent, received, length, md5, tus).await?;
    guard.keep();
    tracing::info!(upload.id = %id, upload.total_bytes = ?length, upload.received_bytes = size, "tus upload created");
    if completes {
        finish(&state, id, user.id, &headers).await?;
    }
    let location = format!("{}/files/{id}", state.base_url(&headers));
    let mut response = StatusCode::CREATED.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).map_err(ApiError::internal)?);
    offset_headers(&mut response, size, Some(&upload));
    Ok(response)
}

/// `HEAD /files/<id>`: the offset to resume from, the length (or that it is deferred)
/// and the metadata. 410 once the upload expired, was terminated or failed; 404 once
/// its file was deleted.
pub async fn show(State(state): State<SharedState>, user: AuthUser, Path(id): Path<String>) -> TusResult<Response> {
    let id = parse_id(&id)?;
    let client = state.pool.get().await?;
    let upload = uploads::load(&client, id, user.id, false).await?;
    match uploads::effective_state(&upload) {
        UploadState::Expired | UploadState::Failed => return Err(ApiError::Expired.into()),
        UploadState::Complete if files::get_live(&client, id, user.id).await?.is_none() => {
            return Err(ApiError::NotFound { what: "Upload" }.into())
        }
        _ => {}
    }
    let mut response = StatusCode::OK.into_response();
    offset_headers(&mut response, upload.offset.bytes(), Some(&upload));
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match upload.total_size {
        Some(total) => headers.insert("upload-length", HeaderValue::from(total.bytes())),
        None => headers.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if let Some(metadata) = upload.metadata.as_deref().and_then(|m| HeaderValue::from_str(m).ok()) {
        headers.insert("upload-metadata", metadata);
    }
    if let Some(concat) = upload.concat.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert("upload-concat", concat);
    }
    Ok(response)
}

/// `PATCH /files/<id>`: the bytes at `Upload-Offset`, which must be where the upload
/// stands (409 otherwise, also while another request writes there). A deferred length
/// may be declared with `Upload-Length`. The chunk is recorded only after its
/// `Upload-Checksum` (and, for the last one, the whole file's `md5`) matched: a 460
/// leaves the upload at its previous offset.
pub async fn append(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> TusResult<Response> {
    let id = parse_id(&id)?;
    if !protocol::is_offset_stream(&headers) {
        return Err(TusError::MediaType);
    }
    let offset = protocol::size_header(&headers, "upload-offset", "invalid_upload_offset")?
        .ok_or_else(|| ApiError::bad_request("invalid_upload_offset", "PATCH needs an Upload-Offset header."))?;
    let checksum = Checksum::from_headers(&headers)?;
    let announced = content_length(&headers)?;
    // The lease for this offset is taken by the statement that also reads the upload:
    // one round trip before the body. Without it, the upload is read to say why.
    let Some((lease, upload)) = Lease::take(&state, id, user.id, offset).await? else {
        let upload = uploads::load(&state.pool.get().await?, id, user.id, false).await?;
        return match admit(&state, &upload, &headers, offset, announced).await? {
            Admit::Done(response) => Ok(response),
            // Writable at this offset, so another request is writing there.
            Admit::Write(_) => Err(TusError::Offset { offset }),
        };
    };
    let admitted = match admit(&state, &upload, &headers, offset, announced).await {
        Ok(Admit::Write(plan)) => intake_permit(&state, user.id).map(|permit| (plan, permit)).map_err(TusError::from),
        Ok(Admit::Done(_)) => Err(TusError::Offset { offset }),
        Err(e) => Err(e),
    };
    let (plan, _permit) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => {
            lease.release().await;
            return Err(e);
        }
    };
    let dir = upload_dir(&state.config.storage.staging_dir, id);
    let Plan { total, declared, limits, md5 } = plan;
    let assembles = upload.concat.is_none();
    let chunk = Chunk { id, user: user.id, offset, total, declared, md5, assembles };
    match record(&state, &lease, &dir, chunk, limits, body, checksum).await {
        Ok((upload, received)) => {
            if received == 0 {
                // Nothing was written, so no chunk row took the lease back.
                lease.release().await;
            } else {
                lease.committed();
            }
            let new_offset = upload.offset.bytes();
            // This PATCH completed the upload (it was `uploading` when it came): the API
            // recorded the file itself (`complete`) or handed it to an assemble job.
            if matches!(upload.state, UploadState::Assembling | UploadState::Complete) {
                finish(&state, id, user.id, &headers).await?;
            }
            let mut response = StatusCode::NO_CONTENT.into_response();
            offset_headers(&mut response, new_offset, Some(&upload));
            Ok(response)
        }
        Err(e) => {
            // Released before answering, so the client's retry finds it free.
            lease.release().await;
            Err(e)
        }
    }
}

/// What [`admit`] decided for a PATCH.
enum Admit {
    /// Write the body under this plan.
    Write(Plan),
    /// Every byte is in already and this PATCH brings none: the answer, as done.
    Done(Response),
}

/// How a PATCH's body is written and recorded.
struct Plan {
    total: Option<u64>,
    declared: bool,
    limits: Limits,
    md5: Option<Md5>,
}

/// Checks a PATCH at `offset` against `upload` as read (by the lease's statement, or
/// after it was refused): 403 for a final upload of a concatenation, 410 once expired
/// or failed, 409 when the upload stands elsewhere, then the declared length, the
/// announced size against what the upload, the chunk limit and the quota leave (413),
/// and the metadata's md5.
async fn admit(
    state: &SharedState,
    upload: &Upload,
    headers: &HeaderMap,
    offset: u64,
    announced: Option<u64>,
) -> TusResult<Admit> {
    if upload.concat.as_deref().is_some_and(|c| c != PARTIAL) {
        // tus 1.0, concatenation: a final upload takes no PATCH.
        return Err(ApiError::Forbidden.into());
    }
    match uploads::effective_state(upload) {
        UploadState::Uploading => {}
        UploadState::Expired | UploadState::Failed => return Err(ApiError::Expired.into()),
        // Every byte is in: a repeated last PATCH with nothing more is answered as done.
        UploadState::Assembling | UploadState::Complete if offset == upload.offset.bytes() && announced == Some(0) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            offset_headers(&mut response, offset, None);
            return Ok(Admit::Done(response));
        }
        UploadState::Assembling | UploadState::Complete => {
            return Err(TusError::Offset { offset: upload.offset.bytes() })
        }
    }
    if upload.offset.bytes() != offset {
        return Err(TusError::Offset { offset: upload.offset.bytes() });
    }
    let (total, declared) = length_after(state, upload, headers).await?;
    let room = match total {
        Some(total) => total - offset,
        None => {
            let left = quota_left(&state.pool.get().await?, state, upload.user).await?;
            state.config.storage.max_file_bytes.saturating_sub(offset).min(left)
        }
    };
    let max = room.min(state.config.storage.max_chunk_bytes);
    check_announced(announced, max)?;
    let limits = Limits { offset, expected: announced, max, max_is_limit: true };
    let metadata = upload.metadata.as_deref().map(Metadata::parse).transpose()?.unwrap_or_default();
    let md5 = client_md5(&metadata)?;
    Ok(Admit::Write(Plan { total, declared, limits, md5 }))
}

/// The upload's length after this PATCH: the recorded one, or the one it declares now
/// with `Upload-Length` (checked against the file size limit and the quota), and
/// whether it was declared now.
async fn length_after(state: &SharedState, upload: &Upload, headers: &HeaderMap) -> TusResult<(Option<u64>, bool)> {
    let sent = protocol::size_header(headers, "upload-length", "invalid_upload_length")?;
    match (upload.total_size.map(ByteSize::bytes), sent) {
        (Some(total), Some(sent)) if total != sent => Err(ApiError::bad_request(
            "invalid_upload_length",
            format!("Upload-Length is {total} already and cannot change."),
        )
        .into()),
        (Some(total), _) => Ok((Some(total), false)),
        (None, Some(sent)) => {
            let offset = upload.offset.bytes();
            if sent < offset {
                return Err(ApiError::bad_request(
                    "invalid_upload_length",
                    format!("Upload-Length {sent} is below the {offset} bytes already received."),
                )
                .into());
            }
            let max = state.config.storage.max_file_bytes;
            if sent > max {
                return Err(
                    ApiError::TooLarge { detail: format!("Files are limited to {max} bytes."), limit: max }.into()
                );
            }
            let client = state.pool.get().await?;
            let left = quota_left(&client, state, upload.user).await?;
            if sent - offset > left {
                return Err(ApiError::TooLarge {
                    detail: format!("This upload would exceed your quota ({left} bytes left)."),
                    limit: left,
                }
                .into());
            }
            Ok((Some(sent), true))
        }
        (None, None) => Ok((None, false)),
    }
}

/// What a PATCH writes, decided before its body is read.
struct Chunk {
    id: FileId,
    user: UserId,
    offset: u64,
    total: Option<u64>,
    /// The length is declared by this request (it was deferred).
    declared: bool,
    /// The whole file's md5 from the metadata.
    md5: Option<Md5>,
    /// The last byte starts the assembly (not for a partial upload).
    assembles: bool,
}

/// Streams the body under `lease`, then records it: a chunk in the middle by one
/// statement; one that moves the user's use in one transaction with the declared
/// length and, when it was the last, the assembly job. Returns the upload as recorded
/// and the bytes received.
async fn record(
    state: &SharedState,
    lease: &Lease,
    dir: &FsPath,
    chunk: Chunk,
    limits: Limits,
    body: Body,
    checksum: Option<Checksum>,
) -> TusResult<(Upload, u64)> {
    let received = receive(state, dir, chunk.offset, limits, body, lease.digest_start()?, checksum).await?;
    let end = chunk.offset + received.size;
    let completes = chunk.assembles && chunk.total == Some(end);
    let written = received.written.ok_or_else(intake::file_required)?;
    let md5 = if completes { Some(completion_md5(Some(&written), chunk.md5, chunk.offset).await?) } else { None };
    // Known now for a completing chunk (just waited for), else what is known so far.
    let states = written.states();
    let recorded = store_uploads::Chunk {
        start: ByteSize(chunk.offset),
        size: ByteSize(received.size),
        md5_state: states.md5.as_ref().map(|(md5, at)| (md5.as_slice(), ByteSize(*at))),
        sha256_state: &states.sha256,
        expires_at: expires_at(state),
    };
    let mut client = state.pool.get().await?;
    // A PATCH that completes the upload, declares its length or extends one whose length
    // is still deferred (its use is its offset then) moves the user's use, which takes
    // the user's row at the commit: released without waiting for the WAL flush, flushed
    // after (`ferry_store::wal`). Any other PATCH is recorded by one statement, atomic on
    // its own and read back by the same statement: one round trip instead of seven (a few
    // of the chunk's last milliseconds).
    let moves_use = completes || chunk.declared || chunk.total.is_none();
    if !moves_use {
        let upload = if received.size == 0 {
            uploads::load(&client, chunk.id, chunk.user, false).await?
        } else {
            match store_uploads::record_chunk(&client, chunk.id, lease.token, &recorded).await? {
                Some(upload) => {
                    written.recorded(chunk.id);
                    upload
                }
                None => return Err(lost(&client, &chunk).await),
            }
        };
        return Ok((upload, received.size));
    }
    let tx = client.transaction().await?;
    ferry_store::wal::commit_without_flush(&tx).await?;
    if let (true, Some(total)) = (chunk.declared, chunk.total) {
        if !store_uploads::declare_length(&tx, chunk.id, ByteSize(total)).await? {
            return Err(lost(&tx, &chunk).await);
        }
    }
    if received.size > 0 && store_uploads::record_chunk(&tx, chunk.id, lease.token, &recorded).await?.is_none() {
        // The lease ran out and another writer took over: its chunk is the one recorded.
        return Err(lost(&tx, &chunk).await);
    }
    if let Some(md5) = md5 {
        store_uploads::start_assembly(&tx, chunk.id, &md5.to_string()).await?;
        let digest = written.digest().await.map_err(ApiError::internal)?;
        complete_or_assemble(state, &tx, chunk.id, end, Some(digest.finalize()), md5).await?;
    }
    let upload = uploads::load(&tx, chunk.id, chunk.user, false).await?;
    tx.commit().await?;
    ferry_store::wal::flush(&client).await?;
    if !completes && received.size > 0 {
        written.recorded(chunk.id);
    }
    if completes {
        running_md5::end(chunk.id);
        state.relay.wake();
        tracing::info!(upload.id = %chunk.id, upload.total_bytes = end, "tus upload received in full");
    }
    Ok((upload, received.size))
}

/// `POST /files/<id>` with `X-HTTP-Method-Override: PATCH|HEAD|DELETE`: that request
/// (tusd's convention, tus-js-client's `overridePatchMethod`, for proxies that drop
/// those methods); 405 without it.
pub async fn overridden(
    state: State<SharedState>,
    user: AuthUser,
    id: Path<String>,
    headers: HeaderMap,
    body: Body,
) -> TusResult<Response> {
    let method = headers.get("x-http-method-override").map(|v| v.as_bytes().to_ascii_uppercase());
    match method.as_deref() {
        Some(b"PATCH") => append(state, user, id, headers, body).await,
        Some(b"HEAD") => show(state, user, id).await,
        Some(b"DELETE") => Ok(terminate(state, user, id).await?.into_response()),
        _ => Err(ApiError::MethodNotAllowed.into()),
    }
}

/// The 409 for a request that lost the upload to another writer, with where it stands.
async fn lost(client: &impl ferry_store::GenericClient, chunk: &Chunk) -> TusError {
    match uploads::load(client, chunk.id, chunk.user, false).await {
        Ok(current) => TusError::Offset { offset: current.offset.bytes() },
        Err(e) => e.into(),
    }
}

/// `DELETE /files/<id>`: termination. An upload in progress ends (`expired`, 410 from
/// then on) and a delete job reclaims its staging bytes; a completed upload's file is
/// deleted as `DELETE /storage/files/<id>/` deletes it. 409 while it is being
/// assembled.
pub async fn terminate(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> TusResult<StatusCode> {
    let id = parse_id(&id)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let upload = uploads::load(&tx, id, user.id, true).await?;
    match upload.state {
        UploadState::Uploading => {
            store_uploads::terminate(&tx, id, user.id).await?;
            outbox::enqueue(&tx, &Job::Delete { file: id }).await?;
            tx.commit().await?;
            running_md5::end(id);
            state.relay.wake();
            tracing::info!(upload.id = %id, "tus upload terminated");
        }
        UploadState::Complete => {
            drop(tx);
            drop(client);
            crate::routes::files::delete_file(&state, id, user.id).await?;
        }
        UploadState::Assembling => {
            return Err(ApiError::Conflict {
                code: "upload_busy",
                detail: "The upload is being checked and copied; delete its file once it is complete.".into(),
                state: Some("assembling"),
            }
            .into())
        }
        UploadState::Expired | UploadState::Failed => return Err(ApiError::Expired.into()),
    }
    Ok(StatusCode::NO_CONTENT)
}
