//! The chunked upload protocol (drf-chunked-upload compatible):
//! `PUT /storage/tmp-upload/` (first chunk), `PUT /storage/tmp-upload/<id>/` (next
//! chunks), `GET|HEAD` (resume point), `POST` (complete with md5), and the
//! single-request `POST /storage/tmp-upload/`.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use ferry_queue::completion;
use ferry_queue::outbox;
use ferry_queue::Job;
use ferry_shared::hashing::RunningDigest;
use ferry_shared::slots::{Refused, Slot};
use ferry_shared::types::{ByteSize, FileId, FileName, Md5, Sha256, UserId};
use ferry_store::uploads::{self as store_uploads, Upload, UploadFailure};
use ferry_store::{files, GenericClient, UploadState};
use serde::Deserialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::form::small_form;
use crate::locate::locate;
use crate::page::Page;
use crate::state::SharedState;
use crate::upload::content_range::{self, ChunkRange};
use crate::upload::intake::{self, file_required, Limits, Received};
use crate::upload::pace::BodyPace;
use crate::upload::running_md5;
use crate::upload::staging::{data_path, stored_states, upload_dir, DigestStart};
use crate::uploads;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/storage/tmp-upload/", put(create_chunk).post(create_whole).get(list))
        .route("/storage/tmp-upload/{id}/", put(append_chunk).post(complete).get(show))
}

#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    filename: Option<String>,
    parent: Option<String>,
    md5: Option<String>,
    /// Seconds the completing POST waits for the workers' verdict.
    wait: Option<u64>,
}

fn parse_id(raw: &str) -> ApiResult<FileId> {
    raw.parse().map_err(|_| ApiError::NotFound { what: "Upload" })
}

fn content_range(headers: &HeaderMap) -> ApiResult<Option<ChunkRange>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let text =
        value.to_str().map_err(|_| ApiError::bad_request("invalid_content_range", "Content-Range is not ASCII."))?;
    content_range::parse(text).map(Some).map_err(|e| ApiError::bad_request("invalid_content_range", e.to_string()))
}

pub(crate) fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// A slot of the upload intake for `user`: 503 when the process is full, 429
/// `too_many_uploads` when the user already holds their share.
pub(crate) fn intake_permit(state: &SharedState, user: UserId) -> ApiResult<Slot<UserId>> {
    state.intake.try_acquire(user).map_err(|refused| match refused {
        Refused::Full => ApiError::Unavailable {
            detail: "Too many uploads in progress on this server; retry shortly.",
            retry_after: 1,
        },
        Refused::KeyShare(share) => ApiError::TooManyRequests {
            code: "too_many_uploads",
            detail: format!("You already have {share} chunks in progress on this server; send the next when one ends."),
            retry_after: 1,
        },
    })
}

/// A new upload's bytes as one request brought them: its intake slot (held until the
/// handler returns), its id, the guard of its staging directory, and what was received.
struct NewIntake {
    _permit: Slot<UserId>,
    id: FileId,
    guard: NewDirGuard,
    received: Received,
}

/// Takes an intake slot for `user`, then receives `body` (framed as `headers` say,
/// within `limits` and the configured pace) into a new upload's staging directory:
/// the first chunk of the chunked protocol, or a whole file in one request.
async fn receive_new(
    state: &SharedState,
    user: UserId,
    headers: &HeaderMap,
    body: Body,
    limits: Limits,
) -> ApiResult<NewIntake> {
    let permit = intake_permit(state, user)?;
    let id = FileId::new();
    let dir = upload_dir(&state.config.storage.staging_dir, id);
    let guard = NewDirGuard(Some(dir.clone()));
    let received = receive(state, headers, body, &dir, limits, DigestStart::fresh()).await?;
    Ok(NewIntake { _permit: permit, id, guard, received })
}

/// Receives a request's `body` (framed as its `headers` say) into the staging `dir`,
/// within `limits` and the configured pace, continuing the upload's digests from `start`.
async fn receive(
    state: &SharedState,
    headers: &HeaderMap,
    body: Body,
    dir: &std::path::Path,
    limits: Limits,
    start: DigestStart,
) -> ApiResult<Received> {
    intake::receive(body, content_type(headers), dir, limits, BodyPace::of(&state.config.api), start).await
}

/// Removes a new upload's staging directory unless the upload was recorded.
pub(crate) struct NewDirGuard(pub(crate) Option<PathBuf>);

impl NewDirGuard {
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for NewDirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Bytes the user may still store: quota minus live files and open uploads.
pub(crate) async fn quota_left(client: &impl GenericClient, state: &SharedState, user: UserId) -> ApiResult<u64> {
    let default = ByteSize(state.config.storage.default_quota_bytes);
    Ok(ferry_store::users::quota_left(client, user, default).await?.bytes())
}

/// Checks a new file's declared size against the file size limit and the quota, as
/// the database has it now.
pub(crate) async fn check_new_file_size(
    client: &impl GenericClient,
    state: &SharedState,
    user: UserId,
    total: u64,
) -> ApiResult<()> {
    check_size_within(state, quota_left(client, state, user).await?, total)
}

/// Checks a new file's declared size (`total` bytes) against the file size limit and
/// the `left` bytes of the user's quota (e.g. [`AuthUser::quota_left`]).
pub(crate) fn check_size_within(state: &SharedState, left: u64, total: u64) -> ApiResult<()> {
    let max = state.config.storage.max_file_bytes;
    if total > max {
        return Err(ApiError::TooLarge { detail: format!("Files are limited to {max} bytes."), limit: max });
    }
    if total > left {
        return Err(ApiError::TooLarge {
            detail: format!("This upload would exceed your quota ({left} bytes left)."),
            limit: left,
        });
    }
    Ok(())
}

fn chunk_limit(state: &SharedState, range: &ChunkRange) -> ApiResult<Limits> {
    let max = state.config.storage.max_chunk_bytes;
    if range.len() > max {
        return Err(ApiError::TooLarge { detail: format!("Chunks are limited to {max} bytes."), limit: max });
    }
    Ok(Limits { offset: range.start, expected: Some(range.len()), max, max_is_limit: true })
}

fn resolve_filename(fields: &Option<String>, query: &UploadQuery, headers: &HeaderMap) -> ApiResult<FileName> {
    let raw = fields
        .clone()
        .or_else(|| query.filename.clone())
        .or_else(|| headers.get("x-filename").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .ok_or_else(|| ApiError::bad_request("filename_required", "The first chunk must carry a 'filename'."))?;
    FileName::parse(&raw).map_err(|e| ApiError::bad_request("invalid_filename", e.to_string()))
}

/// The root of `parent`'s version chain, which must be a live file of the same user.
pub(crate) async fn resolve_parent(
    client: &impl GenericClient,
    user: UserId,
    raw: Option<&str>,
) -> ApiResult<Option<FileId>> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    let not_found = || ApiError::bad_request("parent_not_found", "The parent file does not exist.");
    let id: FileId = raw.parse().map_err(|_| not_found())?;
    files::chain_root(client, id, user).await?.map(Some).ok_or_else(not_found)
}

pub(crate) fn expires_at(state: &SharedState) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::seconds(state.config.storage.upload_expiry_secs as i64)
}

/// What a tus upload records beside the chunked protocol's fields (none for it).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TusFields<'a> {
    /// The `Upload-Metadata` header, echoed by HEAD.
    pub metadata: Option<&'a str>,
    /// `partial`, or a final upload's `final;<urls>` (concatenation).
    pub concat: Option<&'a str>,
}

/// Records a new upload and its first chunk, already written and fsynced (a crash
/// before the commit leaves only an orphan staging directory, which the workers'
/// garbage collection removes, never a row without its bytes).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_upload(
    state: &SharedState,
    id: FileId,
    user: UserId,
    filename: &FileName,
    parent: Option<FileId>,
    received: Received,
    total: Option<u64>,
    md5: Option<Md5>,
    tus: TusFields<'_>,
) -> ApiResult<Upload> {
    let written = received.written.as_ref().ok_or_else(file_required)?;
    // The whole file with its md5, and the bytes give it: the upload is recorded
    // `complete` with its file, in this transaction.
    let verified = match md5 {
        Some(md5) => {
            let digest = written.digest().await.map_err(ApiError::internal)?;
            verified_bytes(state, id, received.size, digest.finalize(), md5).await
        }
        None => None,
    };
    let states = written.states();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // The quota check below holds the user's row until the commit: committed without
    // waiting for the WAL flush, the row is free again at once for the user's next
    // upload, and the flush is waited for after the commit, outside the lock.
    ferry_store::wal::commit_without_flush(&tx).await?;
    let new = store_uploads::NewUpload {
        id,
        user,
        filename: filename.as_str(),
        parent,
        total_size: total.map(ByteSize),
        received: ByteSize(received.size),
        md5: md5.map(|m| m.to_string()),
        expires_at: expires_at(state),
        md5_state: states.md5.as_ref().map(|(md5, at)| (md5.as_slice(), ByteSize(*at))),
        sha256_state: &states.sha256,
        metadata: tus.metadata,
        concat: tus.concat,
        verified: verified.is_some(),
    };
    let upload = store_uploads::insert(&tx, &new).await?;
    match (md5, verified) {
        (Some(md5), Some(sha256)) => {
            let origin = store_uploads::Origin {
                state: UploadState::Complete,
                user,
                filename: filename.as_str().to_owned(),
                parent,
            };
            let file = completion::Verified {
                id,
                size: ByteSize(received.size),
                md5: &md5.to_string(),
                sha256: &sha256.to_string(),
            };
            completion::record_new_file(&tx, file, &origin, &state.config).await?;
            tracing::info!(upload.id = %id, upload.total_bytes = received.size, "upload verified and recorded");
        }
        // Recorded `assembling`: the worker's assemble job says why not (a short
        // staging copy, or the md5 differs: the upload is reopened).
        (Some(_), None) => hand_to_assembly(&tx, id).await?,
        (None, _) => {}
    }
    // The authoritative quota check (the one before the body was read only spares a
    // hopeless upload its bytes), last: it holds the user's row until the commit. This
    // upload uses its declared length, or the bytes received so far when the length is
    // deferred (tus), whether it is still open or already recorded as a file.
    let default = ByteSize(state.config.storage.default_quota_bytes);
    let own = total.unwrap_or(received.size);
    let left_after = ferry_store::users::lock_quota_left(&tx, user, default, ByteSize(own)).await?;
    if left_after < 0 {
        // Dropping the transaction rolls the upload's rows back.
        let left = u64::try_from(left_after.saturating_add(i64::try_from(own).unwrap_or(i64::MAX))).unwrap_or(0);
        return Err(ApiError::TooLarge {
            detail: format!("This upload would exceed your quota ({left} bytes left)."),
            limit: left,
        });
    }
    // An upload left open takes one of the user's open slots, counted under the same
    // lock of the user's row (so two requests cannot both take the last).
    if upload.state == UploadState::Uploading {
        let cap = state.config.storage.max_open_uploads_per_user;
        let cap_db = i64::try_from(cap).unwrap_or(i64::MAX);
        if store_uploads::open_count(&tx, user, cap_db.saturating_add(1)).await? > cap_db {
            let first_expiry = store_uploads::first_open_expiry(&tx, user).await?;
            return Err(too_many_open_uploads(cap, first_expiry));
        }
    }
    tx.commit().await?;
    ferry_store::wal::flush(&client).await?;
    if md5.is_some() {
        state.relay.wake();
    } else {
        written.recorded(id);
    }
    Ok(upload)
}

/// 429 `too_many_open_uploads`: the user already has `cap` uploads begun and not
/// completed (`storage.max_open_uploads_per_user`). `Retry-After` (RFC 9110 §10.2.3)
/// is the time until the first of them expires (`first_expiry`), when a slot frees
/// without the user's help; completing or terminating one frees a slot at once.
fn too_many_open_uploads(cap: u64, first_expiry: Option<chrono::DateTime<chrono::Utc>>) -> ApiError {
    let now = chrono::Utc::now();
    let wait = first_expiry.map_or(1, |at| u64::try_from((at - now).num_seconds()).unwrap_or(0).max(1));
    let when = first_expiry.unwrap_or(now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ApiError::TooManyRequests {
        code: "too_many_open_uploads",
        detail: format!(
            "You have {cap} uploads in progress, the most one user may have open at once: complete one or \
             terminate it (tus DELETE) before starting another. Without that, the first of them expires at \
             {when} (an upload expires a fixed time after its last chunk)."
        ),
        retry_after: wait,
    }
}

/// Hands the `assembling` upload `id` (md5 `md5` accepted, `total` bytes) on, in the
/// caller's transaction: when `digest` (md5 and sha256 of the bytes, hashed by this API
/// as they arrived) gives that md5 and the staging data file holds exactly `total`
/// bytes, nothing is left to check, so the file is recorded here with its replicate jobs
/// ([`completion::record_file`], the assemble job's own code) and a small file's
/// completion costs no job of its own; otherwise the worker's `assemble` job is queued
/// (it trims or reports a staging copy of the wrong length, hashes an upload without a
/// digest, and reopens one whose md5 differs). Either way the caller commits and then
/// wakes the relay.
pub(crate) async fn complete_or_assemble(
    state: &SharedState,
    tx: &ferry_store::Transaction<'_>,
    id: FileId,
    total: u64,
    digest: Option<(Md5, Sha256)>,
    md5: Md5,
) -> ApiResult<()> {
    if let Some(digest) = digest {
        if let Some(sha256) = verified_bytes(state, id, total, digest, md5).await {
            let verified =
                completion::Verified { id, size: ByteSize(total), md5: &md5.to_string(), sha256: &sha256.to_string() };
            completion::record_file(tx, verified, &state.config).await?;
            tracing::info!(upload.id = %id, upload.total_bytes = total, "upload verified and recorded");
            return Ok(());
        }
    }
    hand_to_assembly(tx, id).await
}

/// Queues the worker's `assemble` job for upload `id`, in the caller's transaction:
/// for an `assembling` upload whose bytes this API could not verify itself.
async fn hand_to_assembly(tx: &ferry_store::Transaction<'_>, id: FileId) -> ApiResult<()> {
    outbox::enqueue(tx, &Job::Assemble { upload: id }).await?;
    Ok(())
}

/// The sha256 of upload `id`'s bytes when nothing is left to check: `digest` (md5 and
/// sha256 of the bytes, hashed by this API as they arrived) gives the client's `md5`
/// and the staging data file holds exactly `total` bytes. `None` otherwise (the
/// worker's assemble job then looks at it).
async fn verified_bytes(
    state: &SharedState,
    id: FileId,
    total: u64,
    digest: (Md5, Sha256),
    md5: Md5,
) -> Option<Sha256> {
    let (actual, sha256) = digest;
    let data = data_path(&upload_dir(&state.config.storage.staging_dir, id));
    let len = match tokio::fs::metadata(&data).await {
        Ok(meta) => Some(meta.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    };
    (actual == md5 && len == Some(total)).then_some(sha256)
}

/// `400 checksum_mismatch`: the md5 sent is not the md5 of the bytes received. The
/// upload stays open (drf-chunked-upload's behaviour), so a retry with the right md5
/// completes it.
fn checksum_mismatch() -> ApiError {
    let failure = UploadFailure::ChecksumMismatch;
    ApiError::bad_request(failure.code(), failure.public_detail())
}

/// How many bytes the `uploading` upload `id` has received and their md5 and sha256: the
/// sha256 stored with its last chunk, the md5 from this process's chain or caught up
/// from the stored state (`running_md5`). Computed before the completing transaction, so
/// no row lock waits for it. `None` for an upload in another state or without a sha256
/// state, or when the staging file cannot be read here (the assemble job then hashes
/// the bytes itself).
async fn received_digest(state: &SharedState, id: FileId, user: UserId) -> ApiResult<Option<(u64, RunningDigest)>> {
    let stored = store_uploads::digest_state(&state.pool.get().await?, id, user).await?;
    let Some((offset, stored)) = stored else { return Ok(None) };
    let (Some(sha256), md5) = stored_states(&stored).map_err(ApiError::internal)? else { return Ok(None) };
    let data = data_path(&upload_dir(&state.config.storage.staging_dir, id));
    match running_md5::md5_of_upload(id, offset.bytes(), md5, &data).await {
        Ok(md5) => Ok(Some((offset.bytes(), RunningDigest::join(md5, sha256)))),
        Err(e) => {
            tracing::warn!(upload.id = %id, error = %e, "md5 of the received bytes not computed here; the assemble job hashes them");
            Ok(None)
        }
    }
}

/// The md5 a completing POST already handed to the workers, if any.
async fn accepted_md5(client: &impl GenericClient, id: FileId) -> ApiResult<Option<Md5>> {
    Ok(store_uploads::accepted_md5(client, id).await?.and_then(|m| m.parse().ok()))
}

/// `PUT /storage/tmp-upload/`: a new upload from its first chunk.
async fn create_chunk(
    State(state): State<SharedState>,
    user: AuthUser,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let range = content_range(&headers)?
        .ok_or_else(|| ApiError::bad_request("content_range_required", "Chunks need a Content-Range header."))?;
    if range.start != 0 {
        return Err(ApiError::OffsetMismatch { offset: ByteSize::ZERO });
    }
    let limits = chunk_limit(&state, &range)?;
    check_size_within(&state, user.quota_left, range.total)?;
    let NewIntake { _permit, id, guard, received } = receive_new(&state, user.id, &headers, body, limits).await?;
    let filename = resolve_filename(&received.fields.filename, &query, &headers)?;
    let parent_raw = received.fields.parent.clone().or(query.parent.clone());
    let parent = resolve_parent(&state.pool.get().await?, user.id, parent_raw.as_deref()).await?;
    let upload =
        insert_upload(&state, id, user.id, &filename, parent, received, Some(range.total), None, TusFields::default())
            .await?;
    guard.keep();
    tracing::info!(upload.id = %id, upload.total_bytes = range.total, "upload created");
    Ok(Json(uploads::to_json(&upload, &state.base_url(&headers))).into_response())
}

/// `POST /storage/tmp-upload/`: a whole file with its md5 in one request.
async fn create_whole(
    State(state): State<SharedState>,
    user: AuthUser,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let range = content_range(&headers)?;
    if let Some(range) = range {
        if range.start != 0 || range.end != range.total {
            return Err(ApiError::bad_request(
                "incomplete_upload",
                "A single-request upload must carry the whole file; use PUT for chunks.",
            ));
        }
    }
    let max = state.config.storage.max_file_bytes.min(user.quota_left);
    let limits = Limits { offset: 0, expected: range.map(|r| r.len()), max, max_is_limit: true };
    let NewIntake { _permit, id, guard, received } = receive_new(&state, user.id, &headers, body, limits).await?;
    let md5 = parse_md5(received.fields.md5.clone().or(query.md5.clone()))?;
    // Checked here from the digest computed while receiving (nothing is re-read): a
    // wrong md5 records nothing and the guard releases the bytes.
    let written = received.written.as_ref().ok_or_else(file_required)?;
    if written.digest().await.map_err(ApiError::internal)?.finalize().0 != md5 {
        // Not the open upload's text: nothing is kept here to complete again.
        return Err(ApiError::bad_request(
            UploadFailure::ChecksumMismatch.code(),
            "md5 checksum does not match the uploaded file. Nothing was stored: upload the file again with its md5.",
        ));
    }
    let filename = resolve_filename(&received.fields.filename, &query, &headers)?;
    let parent_raw = received.fields.parent.clone().or(query.parent.clone());
    let parent = resolve_parent(&state.pool.get().await?, user.id, parent_raw.as_deref()).await?;
    let size = received.size;
    let upload =
        insert_upload(&state, id, user.id, &filename, parent, received, Some(size), Some(md5), TusFields::default())
            .await?;
    guard.keep();
    tracing::info!(upload.id = %id, upload.total_bytes = size, "single-request upload received");
    verdict_from(&state, Some(upload), id, user.id, wait(&state, &query), &headers).await
}

/// `PUT /storage/tmp-upload/<id>/`: the next chunk.
async fn append_chunk(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let range = content_range(&headers)?
        .ok_or_else(|| ApiError::bad_request("content_range_required", "Chunks need a Content-Range header."))?;
    let limits = chunk_limit(&state, &range)?;
    // Only the lease holder writes into the data file; a second PUT for the same
    // offset finds the lease taken and gets the offset error at once.
    let Some((lease, upload)) = Lease::take(&state, id, user.id, range.start).await? else {
        let upload = uploads::load(&state.pool.get().await?, id, user.id, false).await?;
        check_appendable(&upload, &range)?;
        // Appendable at this offset, so another request is writing there.
        return Err(ApiError::OffsetMismatch { offset: upload.offset });
    };
    let admitted = check_appendable(&upload, &range).and_then(|()| intake_permit(&state, user.id));
    let _permit = match admitted {
        Ok(permit) => permit,
        Err(e) => {
            lease.release().await;
            return Err(e);
        }
    };
    match receive_and_record(&state, &lease, id, user.id, &range, limits, &headers, body).await {
        Ok(upload) => {
            lease.committed();
            Ok(Json(uploads::to_json(&upload, &state.base_url(&headers))).into_response())
        }
        Err(e) => {
            // Released before answering, so the client's retry finds it free.
            lease.release().await;
            Err(e)
        }
    }
}

/// Streams the chunk in place under `lease` and records it with the lease's release.
#[allow(clippy::too_many_arguments)]
async fn receive_and_record(
    state: &SharedState,
    lease: &Lease,
    id: FileId,
    user: UserId,
    range: &ChunkRange,
    limits: Limits,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Upload> {
    let dir = upload_dir(&state.config.storage.staging_dir, id);
    // The digests as of this offset, which the lease read.
    let received = receive(state, headers, body, &dir, limits, lease.digest_start()?).await?;
    let written = received.written.ok_or_else(file_required)?;
    let states = written.states();
    // One statement records the chunk and reads the upload back, atomic on its own: no
    // transaction around it, one round trip at the end of every chunk.
    let client = state.pool.get().await?;
    let chunk = store_uploads::Chunk {
        start: ByteSize(range.start),
        size: ByteSize(received.size),
        md5_state: states.md5.as_ref().map(|(md5, at)| (md5.as_slice(), ByteSize(*at))),
        sha256_state: &states.sha256,
        // Expiry slides: an upload that keeps receiving chunks never expires mid-way.
        expires_at: expires_at(state),
    };
    match store_uploads::record_chunk(&client, id, lease.token, &chunk).await? {
        Some(upload) => {
            written.recorded(id);
            Ok(upload)
        }
        None => {
            // The lease ran out and another writer took over: its chunk is the one recorded.
            let upload = uploads::load(&client, id, user, false).await?;
            Err(ApiError::OffsetMismatch { offset: upload.offset })
        }
    }
}

/// The right to write the next chunk of one upload: a token in the upload row with an
/// expiry, taken only while the offset is the chunk's start. Released on commit (the
/// same UPDATE), or by `Drop` when the request fails or the client goes away; a crash
/// leaves it to expire.
pub(crate) struct Lease {
    state: SharedState,
    upload: FileId,
    offset: u64,
    pub(crate) token: Uuid,
    /// The digest states stored with the upload, as the lease's statement read them.
    digests: store_uploads::DigestState,
    held: bool,
}

/// Longest a chunk may take to arrive before another writer may take over.
const LEASE_SECS: f64 = 900.0;

impl Lease {
    /// Takes the lease of the caller's `uploading` upload for the chunk at `offset`, by
    /// the statement that also reads the upload, so the checks that follow need no read
    /// of their own; a request they refuse hands the lease back ([`Lease::release`]).
    /// `None` when the upload is not `uploading` at `offset` or another writer holds it:
    /// the caller reads the upload to say which.
    pub(crate) async fn take(
        state: &SharedState,
        upload: FileId,
        user: UserId,
        offset: u64,
    ) -> ApiResult<Option<(Lease, Upload)>> {
        let token = Uuid::new_v4();
        let client = state.pool.get().await?;
        let taken = store_uploads::take_lease(&client, upload, user, ByteSize(offset), token, LEASE_SECS).await?;
        let Some((row, digests)) = taken else { return Ok(None) };
        Ok(Some((Lease { state: state.clone(), upload, offset, token, digests, held: true }, row)))
    }

    /// Where the chunk's digests start (`running_md5` for the md5's). An unreadable
    /// stored state is a 500, and dropping the lease releases it.
    pub(crate) fn digest_start(&self) -> ApiResult<DigestStart> {
        DigestStart::resume(self.upload, self.offset, &self.digests).map_err(ApiError::internal)
    }

    pub(crate) fn committed(mut self) {
        self.held = false;
    }

    pub(crate) async fn release(mut self) {
        self.held = false;
        release(self.state.pool.clone(), self.upload, self.token).await;
    }
}

async fn release(pool: ferry_store::Pool, upload: FileId, token: Uuid) {
    if let Ok(client) = pool.get().await {
        let _ = store_uploads::release_lease(&client, upload, token).await;
    }
}

impl Drop for Lease {
    /// The request went away mid-chunk (client gone, shutdown): release in the
    /// background; at worst the lease expires.
    fn drop(&mut self) {
        if self.held {
            tokio::spawn(release(self.state.pool.clone(), self.upload, self.token));
        }
    }
}

fn check_appendable(upload: &Upload, range: &ChunkRange) -> ApiResult<()> {
    match uploads::effective_state(upload) {
        UploadState::Uploading => {}
        UploadState::Expired => return Err(ApiError::Expired),
        other => {
            return Err(ApiError::bad_request(
                "upload_closed",
                format!("This upload no longer accepts chunks (state {}).", other.as_str()),
            ))
        }
    }
    if upload.total_size != Some(ByteSize(range.total)) {
        return Err(ApiError::bad_request("total_mismatch", "Content-Range TOTAL must not change between chunks."));
    }
    if upload.offset != ByteSize(range.start) {
        if range.one_based && range.start + 1 == upload.offset.bytes() {
            // `bytes 40-100/100` at offset 40: a 0-based range whose END is TOTAL. Read as
            // the original's 1-based form it starts at 39; answering offset_mismatch with
            // the offset the client already sent would make it loop forever.
            return Err(ApiError::bad_request(
                "invalid_content_range",
                format!(
                    "Content-Range END must be below TOTAL (RFC 9110 ranges are 0-based: bytes {}-{}/{}).",
                    upload.offset.bytes(),
                    range.total - 1,
                    range.total
                ),
            ));
        }
        return Err(ApiError::OffsetMismatch { offset: upload.offset });
    }
    Ok(())
}

/// `GET /storage/tmp-upload/`: the caller's uploads, newest first, paginated like
/// the files listing (drf-chunked-upload lists them at the same URL).
async fn list(
    State(state): State<SharedState>,
    user: AuthUser,
    Query(query): Query<crate::routes::files::ListQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let page = Page::parse(query.page.as_deref(), state.config.api.page_size)?;
    let (count, uploads) = uploads::page(&state.pool.get().await?, user.id, page.size, page.offset).await?;
    page.check(count)?;
    let base = state.base_url(&headers);
    let results = uploads.iter().map(|u| uploads::to_json(u, &base)).collect();
    Ok(Json(page.envelope(count, results, &format!("{base}/storage/tmp-upload/"))).into_response())
}

/// `GET|HEAD /storage/tmp-upload/<id>/`: where to resume.
async fn show(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let upload = uploads::load(&state.pool.get().await?, parse_id(&id)?, user.id, false).await?;
    let mut response = Json(uploads::to_json(&upload, &state.base_url(&headers))).into_response();
    response.headers_mut().insert("upload-offset", HeaderValue::from(upload.offset.bytes()));
    response.headers_mut().insert("upload-state", HeaderValue::from_static(uploads::effective_state(&upload).as_str()));
    Ok(response)
}

pub(crate) fn parse_md5(raw: Option<String>) -> ApiResult<Md5> {
    let raw = raw.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("md5_required", "The completing request must include the file's md5 (hex).")
    })?;
    raw.parse().map_err(|_| ApiError::bad_request("invalid_md5", "md5 must be 32 hexadecimal digits."))
}

fn wait(state: &SharedState, query: &UploadQuery) -> Duration {
    let default = state.config.api.complete_wait_secs;
    Duration::from_secs(query.wait.unwrap_or(default).min(default.max(300)))
}

/// `POST /storage/tmp-upload/<id>/` with `md5`: hands the upload to the workers and
/// waits (bounded) for their verdict.
async fn complete(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let form = small_form(body, content_type(&headers), BodyPace::of(&state.config.api)).await?;
    let md5 = parse_md5(form.get("md5").cloned().or(query.md5.clone()))?;
    let received = received_digest(&state, id, user.id).await?;

    // The connection goes back to the pool before the (long) wait for the verdict.
    {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        // Recording the file moves the user's use, which takes the user's row at the
        // commit: released without waiting for the WAL flush, flushed after.
        ferry_store::wal::commit_without_flush(&tx).await?;
        let upload = uploads::load(&tx, id, user.id, true).await?;
        match uploads::effective_state(&upload) {
            UploadState::Uploading => {
                let total = upload.total_size.unwrap_or(upload.offset);
                if upload.offset != total {
                    return Err(ApiError::bad_request(
                        "upload_incomplete",
                        format!("Only {} of {} bytes have been received.", upload.offset.bytes(), total.bytes()),
                    ));
                }
                // The md5 of what was received (computed on the way in: nothing is
                // re-read here unless the chunks went to another process). A wrong md5 is
                // answered here and leaves the upload open, as drf-chunked-upload does: the
                // client may retry.
                let stored = received.filter(|(at, _)| *at == total.bytes()).map(|(_, digest)| digest.finalize());
                if stored.is_some_and(|(stored_md5, _)| stored_md5 != md5) {
                    return Err(checksum_mismatch());
                }
                store_uploads::start_assembly(&tx, id, &md5.to_string()).await?;
                complete_or_assemble(&state, &tx, id, total.bytes(), stored, md5).await?;
                tx.commit().await?;
                ferry_store::wal::flush(&client).await?;
                running_md5::end(id);
                state.relay.wake();
                tracing::info!(upload.id = %id, "upload completing");
            }
            UploadState::Expired => return Err(ApiError::Expired),
            // A repeated POST (a client retrying after a timeout) waits again, but only
            // with the md5 already accepted: in no state may another md5 get a 200.
            UploadState::Assembling | UploadState::Complete => {
                if accepted_md5(&tx, id).await?.is_some_and(|accepted| accepted != md5) {
                    return Err(ApiError::bad_request(
                        UploadFailure::ChecksumMismatch.code(),
                        "This upload was completed with another md5; it cannot be completed again.",
                    ));
                }
                // Its file deleted since: nothing to download, so no 200 (the file's
                // own routes answer 404 too).
                if upload.state == UploadState::Complete && files::get_live(&tx, id, user.id).await?.is_none() {
                    return Err(ApiError::NotFound { what: "File" });
                }
                drop(tx)
            }
            UploadState::Failed => drop(tx),
        }
    }
    verdict(&state, id, user.id, wait(&state, &query), &headers).await
}

/// Waits up to `wait` for the upload's verdict, then answers: 200 when the md5 is
/// verified AND `storage.write_quorum` verified copies are on healthy nodes (with a
/// quorum of 0, the default, the verified staging copy serves downloads until the
/// first node copy: `super::staging`); either way the file is downloadable now
/// (read-after-write). 400 checksum_mismatch, 409 for another failure, 202 while
/// assembling or copying (the POST may be repeated to wait again).
pub(crate) async fn verdict(
    state: &SharedState,
    id: FileId,
    user: UserId,
    wait: Duration,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    verdict_from(state, None, id, user, wait, headers).await
}

/// [`verdict`], its first look at the upload being `first` when the caller has just
/// read it as committed (a single-request upload's own transaction read it back),
/// which spares that look a pooled connection and a query.
async fn verdict_from(
    state: &SharedState,
    mut first: Option<Upload>,
    id: FileId,
    user: UserId,
    wait: Duration,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let mut completions = state.completions.subscribe();
    let deadline = Instant::now() + wait;
    loop {
        // A pooled connection per look, not one held across the wait.
        let upload = match first.take() {
            Some(upload) => upload,
            None => uploads::load(&state.pool.get().await?, id, user, false).await?,
        };
        let body = uploads::to_json(&upload, &state.base_url(headers));
        match upload.state {
            // Verified; 200 once the write quorum of node copies can be served (the
            // same test the download redirect makes), so a download right after finds
            // one; with a quorum of 0 the staging copy the md5 was checked on serves.
            UploadState::Complete if quorum_met(state, id, user).await? => {
                return Ok((StatusCode::OK, Json(body)).into_response())
            }
            // The worker found the md5 wrong and reopened the upload for another try.
            UploadState::Uploading if upload.failure() == Some(UploadFailure::ChecksumMismatch) => {
                return Err(checksum_mismatch())
            }
            UploadState::Failed => {
                // The stored text is for operators; clients get the failure's fixed text.
                return Err(match upload.failure() {
                    Some(UploadFailure::ChecksumMismatch) => checksum_mismatch(),
                    other => ApiError::Conflict {
                        code: "upload_failed",
                        detail: format!(
                            "The upload failed: {}",
                            other.map_or("the server gave up on it; upload the file again.", |f| f.public_detail())
                        ),
                        state: Some("failed"),
                    },
                });
            }
            _ if Instant::now() >= deadline || state.shutdown.is_cancelled() => {
                return Ok((StatusCode::ACCEPTED, Json(body)).into_response())
            }
            _ => {}
        }
        // Woken by the worker's NOTIFY; the periodic look covers a missed one.
        let next_look = (Instant::now() + Duration::from_millis(500)).min(deadline);
        loop {
            tokio::select! {
                done = completions.recv() => match done {
                    Ok(done) if done != id.0 => continue,
                    _ => break,
                },
                _ = tokio::time::sleep_until(next_look) => break,
                _ = state.shutdown.cancelled() => break,
            }
        }
    }
}

/// Whether `storage.write_quorum` verified copies of complete file `id` are on nodes
/// this process sees healthy (always, for a quorum of 0).
async fn quorum_met(state: &SharedState, id: FileId, user: UserId) -> ApiResult<bool> {
    let quorum = state.config.storage.write_quorum as usize;
    Ok(quorum == 0 || locate(state, id, user, true).await?.healthy.len() >= quorum)
}
