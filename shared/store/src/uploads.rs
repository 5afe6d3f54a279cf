//! The `uploads` and `upload_chunks` tables: uploads in progress, their writer lease
//! and running digest, and their outcome.

use crate::cached::Cached;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ferry_shared::types::{ByteSize, FileId, UserId};

use crate::convert::{size_from_db, size_to_db};
use crate::search::{Paging, Search};
use crate::{StoreError, UploadState};

/// What the assembly reads before checking the bytes.
#[derive(Debug, Clone)]
pub struct AssemblyInput {
    pub state: UploadState,
    /// The md5 the client sent (hex).
    pub md5: Option<String>,
    pub total_size: Option<ByteSize>,
    /// Serialised running md5 and sha256 (see `ferry_shared::hashing`); the md5 only
    /// when it covers every byte received (it may lag: `uploads.md5_offset`).
    pub md5_state: Option<Vec<u8>>,
    pub sha256_state: Option<Vec<u8>>,
}

pub async fn assembly_input(c: &impl GenericClient, id: FileId) -> Result<Option<AssemblyInput>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT status, md5, total_size, CASE WHEN md5_offset = \"offset\" THEN md5_state END AS md5_state,
                    sha256_state
             FROM uploads WHERE id = $1",
            &[&id.0],
        )
        .await?;
    row.map(|r| {
        Ok(AssemblyInput {
            state: r.try_get("status")?,
            md5: r.try_get("md5")?,
            total_size: r
                .try_get::<_, Option<i64>>("total_size")?
                .map(|v| size_from_db("uploads.total_size", v))
                .transpose()?,
            md5_state: r.try_get("md5_state")?,
            sha256_state: r.try_get("sha256_state")?,
        })
    })
    .transpose()
}

/// Who the upload belongs to and what it becomes, read under its row lock.
#[derive(Debug, Clone)]
pub struct Origin {
    pub state: UploadState,
    pub user: UserId,
    pub filename: String,
    pub parent: Option<FileId>,
}

/// Locks the upload row (`FOR UPDATE`) and reads its origin.
pub async fn lock_origin(c: &impl GenericClient, id: FileId) -> Result<Option<Origin>, StoreError> {
    let row = c
        .query_opt_cached("SELECT status, user_id, filename, parent_id FROM uploads WHERE id = $1 FOR UPDATE", &[&id.0])
        .await?;
    row.map(|r| {
        Ok(Origin {
            state: r.try_get("status")?,
            user: UserId(r.try_get("user_id")?),
            filename: r.try_get("filename")?,
            parent: r.try_get::<_, Option<uuid::Uuid>>("parent_id")?.map(FileId),
        })
    })
    .transpose()
}

/// The assembly verified the upload: `complete`.
pub async fn mark_complete(c: &impl GenericClient, id: FileId) -> Result<(), StoreError> {
    c.execute_cached(
        "UPDATE uploads SET status = $2, completed_at = now(), error = NULL WHERE id = $1",
        &[&id.0, &UploadState::Complete],
    )
    .await?;
    Ok(())
}

/// Why an assembly failed: the contract between the worker that writes it and the API
/// that answers the completing POST. Stored at the head of `uploads.error` as
/// `<code>: <detail>` by [`mark_failed`] or [`reopen`] (through one formatter) and read
/// back by [`Upload::failure`], the one reader of that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadFailure {
    /// The bytes' md5 differs from the one the client sent.
    ChecksumMismatch,
    /// The staging copy is shorter than the bytes recorded, or gone.
    MissingBytes,
    /// The assembly kept failing and was given up.
    AssemblyFailed,
    /// An operator cancelled the upload (`ferry jobs cancel --upload`).
    Cancelled,
}

impl UploadFailure {
    const ALL: [UploadFailure; 4] = [
        UploadFailure::ChecksumMismatch,
        UploadFailure::MissingBytes,
        UploadFailure::AssemblyFailed,
        UploadFailure::Cancelled,
    ];

    /// The machine-readable code (also the client-facing error `code` of a mismatch).
    pub fn code(self) -> &'static str {
        match self {
            UploadFailure::ChecksumMismatch => "checksum_mismatch",
            UploadFailure::MissingBytes => "missing_bytes",
            UploadFailure::AssemblyFailed => "assembly_failed",
            UploadFailure::Cancelled => "cancelled",
        }
    }

    /// What a client is told: fixed text, never the stored detail (which may name
    /// server paths or internal errors).
    pub fn public_detail(self) -> &'static str {
        match self {
            UploadFailure::ChecksumMismatch => {
                "md5 checksum does not match the uploaded file. The upload stays open: complete it again with the right md5."
            }
            UploadFailure::MissingBytes => {
                "The uploaded bytes are no longer complete on the server; upload the file again."
            }
            UploadFailure::AssemblyFailed => "The server could not check the uploaded file; upload it again.",
            UploadFailure::Cancelled => "An operator cancelled this upload; upload the file again.",
        }
    }

    /// The `uploads.error` text recording this failure with its operator-facing detail.
    fn stored_text(self, detail: &str) -> String {
        format!("{}: {detail}", self.code())
    }

    /// The failure a stored `uploads.error` text records, if it is one of ours.
    fn parse(error: &str) -> Option<UploadFailure> {
        let code = error.split_once(':').map_or(error, |(code, _)| code);
        UploadFailure::ALL.into_iter().find(|f| f.code() == code)
    }
}

impl Upload {
    /// Why the last assembly failed: of a `failed` upload, or of an `uploading` one the
    /// worker reopened after an md5 mismatch (`None` otherwise, or for a text this build
    /// does not know).
    pub fn failure(&self) -> Option<UploadFailure> {
        matches!(self.state, UploadState::Failed | UploadState::Uploading)
            .then(|| self.error.as_deref().and_then(UploadFailure::parse))
            .flatten()
    }
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The upload is `failed` (code `cancelled`) and this many of its queued or
    /// retrying jobs are `cancelled` (a worker acks such a delivery without running it).
    Done { jobs: u64 },
    /// The upload had already ended in this state: nothing changed.
    AlreadyEnded(UploadState),
    /// No upload has this id.
    Unknown,
}

/// Cancels an unfinished (`uploading` or `assembling`) upload and its pending jobs in
/// one statement: the upload becomes `failed` with the `cancelled` failure and
/// `reason`, its queued and retrying job records `cancelled`. A job already running
/// finds the upload no longer assembling and does nothing. The caller reclaims the
/// staging bytes (a delete job) and announces the upload event (a waiting completing
/// POST then answers `409 upload_failed`): `ferry_queue::expiry::cancel_upload`.
pub async fn cancel(c: &impl GenericClient, id: FileId, reason: &str) -> Result<Cancelled, StoreError> {
    let error = UploadFailure::Cancelled.stored_text(reason);
    let row = c
        .query_one_cached(
            "WITH up AS (
                 UPDATE uploads SET status = $2, error = $3
                 WHERE id = $1 AND status = ANY($4) RETURNING id),
             j AS (
                 UPDATE jobs SET state = 'cancelled', error = $3, finished_at = now(), state_at = now()
                 WHERE file_id IN (SELECT id FROM up) AND state IN ('queued', 'retrying') RETURNING id)
             SELECT (SELECT count(*) FROM up) AS cancelled, (SELECT count(*) FROM j) AS jobs,
                    (SELECT status FROM uploads WHERE id = $1) AS status",
            &[&id.0, &UploadState::Failed, &error, &[UploadState::Uploading, UploadState::Assembling].as_slice()],
        )
        .await?;
    let (cancelled, jobs): (i64, i64) = (row.try_get("cancelled")?, row.try_get("jobs")?);
    let status: Option<UploadState> = row.try_get("status")?;
    Ok(match status {
        _ if cancelled > 0 => Cancelled::Done { jobs: jobs as u64 },
        Some(state) => Cancelled::AlreadyEnded(state),
        None => Cancelled::Unknown,
    })
}

/// The assembly failed: `failed` with `failure` and an operator-facing `detail`, if
/// the upload is still assembling.
pub async fn mark_failed(
    c: &impl GenericClient,
    id: FileId,
    failure: UploadFailure,
    detail: &str,
) -> Result<(), StoreError> {
    let error = failure.stored_text(detail);
    c.execute_cached(
        "UPDATE uploads SET status = $3, error = $2 WHERE id = $1 AND status = $4",
        &[&id.0, &error, &UploadState::Failed, &UploadState::Assembling],
    )
    .await?;
    Ok(())
}

/// The assembly found the md5 wrong: the upload is `uploading` again with no accepted
/// md5 and the failure recorded (as [`mark_failed`] records it), so the client may
/// complete it again, as drf-chunked-upload allows. Only while still assembling.
pub async fn reopen(
    c: &impl GenericClient,
    id: FileId,
    failure: UploadFailure,
    detail: &str,
) -> Result<(), StoreError> {
    let error = failure.stored_text(detail);
    c.execute_cached(
        "UPDATE uploads SET status = $3, md5 = NULL, error = $2 WHERE id = $1 AND status = $4",
        &[&id.0, &error, &UploadState::Uploading, &UploadState::Assembling],
    )
    .await?;
    Ok(())
}

/// The `uploads.error` of an upload that expired before it was completed (fixed text,
/// shown to its client as it is).
pub const EXPIRED_TEXT: &str = "expired before completion";

/// The `uploads.error` of an upload its client terminated (tus `termination`; fixed
/// text, shown to its client as it is).
pub const TERMINATED_TEXT: &str = "terminated by its client";

/// Marks up to `limit` uploads still `uploading` past their expiry `expired` (skipping
/// rows another transaction holds) and returns their ids.
pub async fn expire_due(c: &impl GenericClient, limit: i64) -> Result<Vec<FileId>, StoreError> {
    let rows = c
        .query_cached(
            "UPDATE uploads SET status = $2, error = $4
             WHERE id IN (SELECT id FROM uploads WHERE status = $3 AND expires_at <= now()
                          ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id",
            &[&limit, &UploadState::Expired, &UploadState::Uploading, &EXPIRED_TEXT],
        )
        .await?;
    rows.iter().map(|r| Ok(FileId(r.try_get("id")?))).collect()
}

/// An upload row as its owner sees it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: FileId,
    pub user: UserId,
    pub filename: String,
    /// Root of the version chain this upload extends.
    pub parent: Option<FileId>,
    /// The declared size (from `Content-Range`), if any.
    pub total_size: Option<ByteSize>,
    /// Bytes received so far: where the next chunk starts.
    pub offset: ByteSize,
    pub state: UploadState,
    /// Why it failed or expired.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The tus `Upload-Metadata` header sent at creation (None for the chunked protocol).
    pub metadata: Option<String>,
    /// tus concatenation: `partial`, or the final upload's `final;<urls>`.
    pub concat: Option<String>,
}

impl Upload {
    fn from_row(r: &tokio_postgres::Row) -> Result<Upload, StoreError> {
        Ok(Upload {
            id: FileId(r.try_get("id")?),
            user: UserId(r.try_get("user_id")?),
            filename: r.try_get("filename")?,
            parent: r.try_get::<_, Option<uuid::Uuid>>("parent_id")?.map(FileId),
            total_size: r
                .try_get::<_, Option<i64>>("total_size")?
                .map(|v| size_from_db("uploads.total_size", v))
                .transpose()?,
            offset: size_from_db("uploads.offset", r.try_get("offset")?)?,
            state: r.try_get("status")?,
            error: r.try_get("error")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            completed_at: r.try_get("completed_at")?,
            metadata: r.try_get("metadata")?,
            concat: r.try_get("concat")?,
        })
    }
}

/// The columns [`Upload::from_row`] reads, for every statement that returns an upload.
const UPLOAD_COLUMNS: &str = "id, user_id, filename, parent_id, total_size, \"offset\", status, error, created_at, \
     expires_at, completed_at, metadata, concat";

/// The user's upload `id`, optionally locked `FOR UPDATE`; `None` when it does not
/// exist or is another user's.
pub async fn load(c: &impl GenericClient, id: FileId, user: UserId, lock: bool) -> Result<Option<Upload>, StoreError> {
    let sql = format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 AND user_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = c.query_opt_cached(&sql, &[&id.0, &user.0]).await?;
    row.map(|r| Upload::from_row(&r)).transpose()
}

/// One page of `user`'s uploads, newest first, and how many there are in all.
pub async fn page(
    c: &impl GenericClient,
    user: UserId,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Upload>), StoreError> {
    let count: i64 =
        c.query_one_cached("SELECT count(*) AS n FROM uploads WHERE user_id = $1", &[&user.0]).await?.try_get("n")?;
    let rows = c
        .query_cached(
            &format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
            ),
            &[&user.0, &limit, &offset],
        )
        .await?;
    Ok((count, rows.iter().map(Upload::from_row).collect::<Result<_, _>>()?))
}

/// A new upload with its first chunk (already written and fsynced).
#[derive(Debug, Clone)]
pub struct NewUpload<'a> {
    pub id: FileId,
    pub user: UserId,
    pub filename: &'a str,
    pub parent: Option<FileId>,
    /// The declared size; None while a tus upload defers its length.
    pub total_size: Option<ByteSize>,
    /// Bytes of the first chunk (the new offset).
    pub received: ByteSize,
    /// The client's md5 (hex) when the whole file came at once: the upload starts
    /// `assembling`, or `complete` when `verified`.
    pub md5: Option<String>,
    /// The bytes were already checked against `md5` (and the staging copy holds exactly
    /// them): the upload is inserted `complete`, its file recorded in the same
    /// transaction (`ferry_queue::completion::record_new_file`). Such an upload never
    /// counts against its user's quota (its file does), so the row costs the user's
    /// row no update; inserted `assembling` and completed after, it cost three.
    pub verified: bool,
    pub expires_at: DateTime<Utc>,
    /// The newest md5 state known and how many bytes it covers (`None`: none yet).
    pub md5_state: Option<(&'a [u8], ByteSize)>,
    /// The sha256 state of the bytes received.
    pub sha256_state: &'a [u8],
    /// The tus `Upload-Metadata` header, stored to be echoed by HEAD.
    pub metadata: Option<&'a str>,
    /// tus concatenation: `partial`, or a final upload's `final;<urls>`.
    pub concat: Option<&'a str>,
}

/// Inserts the upload and, when it has bytes, its first chunk's row, in one statement,
/// and returns the row as [`load`] would read it.
pub async fn insert(c: &impl GenericClient, u: &NewUpload<'_>) -> Result<Upload, StoreError> {
    let state = match (&u.md5, u.verified) {
        (Some(_), true) => UploadState::Complete,
        (Some(_), false) => UploadState::Assembling,
        (None, _) => UploadState::Uploading,
    };
    let received = size_to_db("chunk size", u.received)?;
    // The chunk's foreign key is checked at the end of the statement, when the upload
    // row is there (PostgreSQL docs, "Data-Modifying Statements in WITH").
    let row = c
        .query_one_cached(
            "WITH upload AS (
                 INSERT INTO uploads (id, user_id, filename, parent_id, total_size, \"offset\", md5, status,
                                      expires_at, md5_state, sha256_state, metadata, concat, completed_at,
                                      md5_offset)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                         CASE WHEN $14 THEN now() END, $15)
                 RETURNING id, user_id, filename, parent_id, total_size, \"offset\", status, error, created_at,
                           expires_at, completed_at, metadata, concat),
             chunk AS (
                 INSERT INTO upload_chunks (upload_id, \"offset\", size) SELECT id, 0, $6 FROM upload WHERE $6 > 0)
             SELECT * FROM upload",
            &[
                &u.id.0,
                &u.user.0,
                &u.filename,
                &u.parent.map(|p| p.0),
                &u.total_size.map(|t| size_to_db("total size", t)).transpose()?,
                &received,
                &u.md5,
                &state,
                &u.expires_at,
                &u.md5_state.map(|(state, _)| state),
                &u.sha256_state,
                &u.metadata,
                &u.concat,
                &(state == UploadState::Complete),
                &size_to_db("md5 offset", u.md5_state.map_or(ByteSize::ZERO, |(_, at)| at))?,
            ],
        )
        .await?;
    Upload::from_row(&row)
}

/// Up to `limit` upload or file ids (an upload and its file share one) whose text starts with
/// `prefix` (lowercase hex digits and dashes), in id order: how the CLI takes the
/// start of an id.
pub async fn ids_starting(c: &impl GenericClient, prefix: &str, limit: i64) -> Result<Vec<FileId>, StoreError> {
    let pattern = format!("{prefix}%");
    let rows = c
        .query_cached(
            "SELECT id FROM uploads WHERE id::text LIKE $1 UNION SELECT id FROM files WHERE id::text LIKE $1
             ORDER BY id LIMIT $2",
            &[&pattern, &limit],
        )
        .await?;
    rows.iter().map(|r| Ok(FileId(r.try_get("id")?))).collect()
}

/// How many of `user`'s uploads are open (`uploading`), counting at most `at_most`
/// (the caller's limit plus one is enough to tell).
pub async fn open_count(c: &impl GenericClient, user: UserId, at_most: i64) -> Result<i64, StoreError> {
    Ok(c.query_one_cached(
        "SELECT count(*) FROM (SELECT 1 FROM uploads WHERE user_id = $1 AND status = $2 LIMIT $3) open",
        &[&user.0, &UploadState::Uploading, &at_most],
    )
    .await?
    .try_get(0)?)
}

/// When the first of `user`'s open (`uploading`) uploads expires, if any: each chunk
/// moves an upload's expiry on (`storage.upload_expiry_secs` after its last chunk), so
/// without the user's help the next open-upload slot frees then (the monitor's sweep
/// ends it within a few seconds after).
pub async fn first_open_expiry(c: &impl GenericClient, user: UserId) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(c.query_one_cached(
        "SELECT min(expires_at) FROM uploads WHERE user_id = $1 AND status = $2",
        &[&user.0, &UploadState::Uploading],
    )
    .await?
    .try_get(0)?)
}

/// The serialised running digests stored with an upload.
#[derive(Debug, Clone, Default)]
pub struct DigestState {
    /// The newest md5 state recorded (none before the first one is known).
    pub md5_state: Option<Vec<u8>>,
    /// The bytes `md5_state` covers: at most the offset, behind it while the API's md5
    /// chain works (`api/src/upload/running_md5.rs`).
    pub md5_offset: ByteSize,
    /// The sha256 state of every byte received.
    pub sha256_state: Option<Vec<u8>>,
}

impl DigestState {
    fn from_row(r: &tokio_postgres::Row) -> Result<DigestState, StoreError> {
        Ok(DigestState {
            md5_state: r.try_get("md5_state")?,
            md5_offset: size_from_db("uploads.md5_offset", r.try_get("md5_offset")?)?,
            sha256_state: r.try_get("sha256_state")?,
        })
    }
}

/// Takes the writer lease of the user's `uploading` upload for the chunk at `offset`:
/// sets `token` with an expiry `lease_secs` away, only if the offset is `offset` and
/// no unexpired lease exists. Returns the upload and its stored digest state (the same
/// statement reads them, so a chunk's start costs one round trip), or `None` when the
/// lease is not to be had.
pub async fn take_lease(
    c: &impl GenericClient,
    id: FileId,
    user: UserId,
    offset: ByteSize,
    token: uuid::Uuid,
    lease_secs: f64,
) -> Result<Option<(Upload, DigestState)>, StoreError> {
    let row = c
        .query_opt_cached(
            &format!(
                "UPDATE uploads SET writer = $3, writer_until = now() + make_interval(secs => $5)
                 WHERE id = $1 AND user_id = $2 AND status = $6 AND \"offset\" = $4
                   AND (writer IS NULL OR writer_until < now())
                 RETURNING {UPLOAD_COLUMNS}, md5_state, md5_offset, sha256_state"
            ),
            &[&id.0, &user.0, &token, &size_to_db("offset", offset)?, &lease_secs, &UploadState::Uploading],
        )
        .await?;
    row.map(|r| Ok((Upload::from_row(&r)?, DigestState::from_row(&r)?))).transpose()
}

/// Releases the writer lease if `token` still holds it.
pub async fn release_lease(c: &impl GenericClient, id: FileId, token: uuid::Uuid) -> Result<(), StoreError> {
    c.execute_cached(
        "UPDATE uploads SET writer = NULL, writer_until = NULL WHERE id = $1 AND writer = $2",
        &[&id.0, &token],
    )
    .await?;
    Ok(())
}

/// A chunk written under the lease `token`.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    pub start: ByteSize,
    pub size: ByteSize,
    /// The newest md5 state known and how many bytes it covers, stored when it covers
    /// more than the row's (`None`: the row's stays).
    pub md5_state: Option<(&'a [u8], ByteSize)>,
    /// The sha256 state of the upload's bytes up to the chunk's end.
    pub sha256_state: &'a [u8],
    /// The upload's new expiry (it slides with each accepted chunk).
    pub expires_at: DateTime<Utc>,
}

/// Records a chunk in one statement, so atomic without a transaction around it:
/// advances the offset, stores the digest states (the md5's only when newer than the
/// row's) and releases the lease (conditional on
/// `token` still holding the lease at `chunk.start`), and inserts the chunk's row.
/// Returns the upload as recorded (the same statement reads it back, so a chunk's end
/// costs one round trip), or `None` (nothing written) when the lease was lost.
pub async fn record_chunk(
    c: &impl GenericClient,
    id: FileId,
    token: uuid::Uuid,
    chunk: &Chunk<'_>,
) -> Result<Option<Upload>, StoreError> {
    let (start, size) = (size_to_db("offset", chunk.start)?, size_to_db("chunk size", chunk.size)?);
    let md5_offset = chunk.md5_state.map(|(_, at)| size_to_db("md5 offset", at)).transpose()?.unwrap_or(-1);
    let row = c
        .query_opt_cached(
            &format!(
                "WITH advanced AS (
                     UPDATE uploads SET \"offset\" = \"offset\" + $2, sha256_state = $4,
                            md5_state = CASE WHEN $9 > md5_offset THEN $3 ELSE md5_state END,
                            md5_offset = GREATEST(md5_offset, $9),
                            writer = NULL, writer_until = NULL, expires_at = $8
                     WHERE id = $1 AND writer = $5 AND \"offset\" = $6 AND status = $7
                     RETURNING {UPLOAD_COLUMNS}),
                 recorded AS (INSERT INTO upload_chunks (upload_id, \"offset\", size) SELECT id, $6, $2 FROM advanced)
                 SELECT {UPLOAD_COLUMNS} FROM advanced"
            ),
            &[
                &id.0,
                &size,
                &chunk.md5_state.map(|(state, _)| state),
                &chunk.sha256_state,
                &token,
                &start,
                &UploadState::Uploading,
                &chunk.expires_at,
                &md5_offset,
            ],
        )
        .await?;
    row.map(|r| Upload::from_row(&r)).transpose()
}

/// The offset of the user's `uploading` upload `id` and its stored running digest
/// states, read together; `None` when it is not `uploading` (or not the user's).
pub async fn digest_state(
    c: &impl GenericClient,
    id: FileId,
    user: UserId,
) -> Result<Option<(ByteSize, DigestState)>, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT \"offset\", md5_state, md5_offset, sha256_state FROM uploads
             WHERE id = $1 AND user_id = $2 AND status = $3",
            &[&id.0, &user.0, &UploadState::Uploading],
        )
        .await?;
    row.map(|r| Ok((size_from_db("uploads.offset", r.try_get("offset")?)?, DigestState::from_row(&r)?))).transpose()
}

/// The md5 (hex) a completing POST handed to the workers, if any.
pub async fn accepted_md5(c: &impl GenericClient, id: FileId) -> Result<Option<String>, StoreError> {
    let row = c.query_one_cached("SELECT md5 FROM uploads WHERE id = $1", &[&id.0]).await?;
    Ok(row.try_get("md5")?)
}

/// The client sent its md5: `assembling`.
pub async fn start_assembly(c: &impl GenericClient, id: FileId, md5: &str) -> Result<(), StoreError> {
    c.execute_cached(
        "UPDATE uploads SET status = $3, md5 = $2 WHERE id = $1",
        &[&id.0, &md5, &UploadState::Assembling],
    )
    .await?;
    Ok(())
}

/// Sets the size of an upload that deferred it (tus `creation-defer-length`), only
/// while it is still unknown and `uploading`. Returns false when nothing changed.
pub async fn declare_length(c: &impl GenericClient, id: FileId, total: ByteSize) -> Result<bool, StoreError> {
    let n = c
        .execute_cached(
            "UPDATE uploads SET total_size = $2 WHERE id = $1 AND total_size IS NULL AND status = $3",
            &[&id.0, &size_to_db("total size", total)?, &UploadState::Uploading],
        )
        .await?;
    Ok(n == 1)
}

/// Ends the user's `uploading` upload at its client's request (tus `termination`): it
/// becomes `expired` (further requests get 410) and its lease is dropped. Returns
/// false when it was not `uploading`. The caller enqueues the delete job that
/// reclaims the staging bytes, in the same transaction.
pub async fn terminate(c: &impl GenericClient, id: FileId, user: UserId) -> Result<bool, StoreError> {
    let n = c
        .execute_cached(
            "UPDATE uploads SET status = $3, error = $5, writer = NULL, writer_until = NULL
             WHERE id = $1 AND user_id = $2 AND status = $4",
            &[&id.0, &user.0, &UploadState::Expired, &UploadState::Uploading, &TERMINATED_TEXT],
        )
        .await?;
    Ok(n == 1)
}

/// An upload as the admin page and `ferry uploads ls` list it.
#[derive(Debug, Clone)]
pub struct Recent {
    pub upload: Upload,
    pub username: String,
    /// The md5 the client sent with its completing POST (hex), once it did.
    pub md5: Option<String>,
}

impl Recent {
    /// When an upload in progress expires; `None` once it is no longer open (a
    /// completed upload never expires: its file is kept).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        (self.upload.state == UploadState::Uploading).then_some(self.upload.expires_at)
    }

    /// The upload as JSON (`ferry uploads ls --json`, `GET /admin/api/uploads`): sizes
    /// in bytes, times RFC 3339, `expires_at` only while it is open.
    pub fn json(&self) -> serde_json::Value {
        let u = &self.upload;
        serde_json::json!({
            "id": u.id,
            "user": self.username,
            "filename": u.filename,
            "state": u.state.as_str(),
            "offset": u.offset,
            "total_size": u.total_size,
            "md5": self.md5,
            "parent": u.parent,
            "error": u.error,
            "created_at": u.created_at,
            "completed_at": u.completed_at,
            "expires_at": self.expires_at(),
        })
    }
}

fn recent_from_row(r: &tokio_postgres::Row) -> Result<Recent, StoreError> {
    Ok(Recent { upload: Upload::from_row(r)?, username: r.try_get("username")?, md5: r.try_get("md5")? })
}

const RECENT: &str = "SELECT u.id, u.user_id, u.filename, u.parent_id, u.total_size, u.\"offset\", u.status, u.error,
        u.created_at, u.expires_at, u.completed_at, u.metadata, u.concat, u.md5, us.username
     FROM uploads u JOIN users us ON us.id = u.user_id";

/// Every user's uploads matching `search` (and `state`), newest first: one page of
/// them and how many match in all.
pub async fn search(
    c: &impl GenericClient,
    search: &Search,
    state: Option<UploadState>,
    paging: Paging,
) -> Result<(i64, Vec<Recent>), StoreError> {
    let filter = "WHERE ($1::text IS NULL OR us.username = $1) AND ($2::text IS NULL OR u.filename ILIKE $2)
           AND ($3::text IS NULL OR u.id::text LIKE $3) AND ($4::date IS NULL OR u.created_at >= $4::date)
           AND ($5::date IS NULL OR u.created_at < $5::date + 1) AND ($6::text IS NULL OR u.status = $6)";
    let (name, id) = (search.name_pattern(), search.id_pattern());
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&search.user, &name, &id, &search.from, &search.to, &state];
    let total: i64 = c
        .query_one_cached(
            &format!("SELECT count(*) AS n FROM uploads u JOIN users us ON us.id = u.user_id {filter}"),
            &params,
        )
        .await?
        .try_get("n")?;
    let mut all = params.to_vec();
    all.extend([&paging.limit as &(dyn tokio_postgres::types::ToSql + Sync), &paging.offset]);
    let rows =
        c.query_cached(&format!("{RECENT} {filter} ORDER BY u.created_at DESC, u.id LIMIT $7 OFFSET $8"), &all).await?;
    Ok((total, rows.iter().map(recent_from_row).collect::<Result<_, _>>()?))
}

/// Any user's upload `id`.
pub async fn get_any(c: &impl GenericClient, id: FileId) -> Result<Option<Recent>, StoreError> {
    let row = c.query_opt_cached(&format!("{RECENT} WHERE u.id = $1"), &[&id.0]).await?;
    row.as_ref().map(recent_from_row).transpose()
}

/// One accepted chunk of an upload.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    pub offset: ByteSize,
    pub size: ByteSize,
    pub received_at: DateTime<Utc>,
}

/// The accepted chunks of upload `id`, in offset order (at most `limit`), and how many
/// there are.
pub async fn chunks(c: &impl GenericClient, id: FileId, limit: i64) -> Result<(i64, Vec<ChunkRow>), StoreError> {
    let total: i64 = c
        .query_one_cached("SELECT count(*) AS n FROM upload_chunks WHERE upload_id = $1", &[&id.0])
        .await?
        .try_get("n")?;
    let rows = c
        .query_cached(
            "SELECT \"offset\", size, received_at FROM upload_chunks WHERE upload_id = $1 ORDER BY \"offset\" LIMIT $2",
            &[&id.0, &limit],
        )
        .await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(ChunkRow {
                offset: size_from_db("upload_chunks.offset", r.try_get("offset")?)?,
                size: size_from_db("upload_chunks.size", r.try_get("size")?)?,
                received_at: r.try_get("received_at")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((total, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_text_round_trips_through_its_one_writer_and_reader() {
        for f in UploadFailure::ALL {
            let stored = f.stored_text("some detail: /srv/staging/x/data");
            assert_eq!(UploadFailure::parse(&stored), Some(f));
            assert!(!f.public_detail().contains('/'), "no paths in what clients see");
        }
        assert_eq!(UploadFailure::parse("expired before completion"), None);
        assert_eq!(UploadFailure::parse("checksum_mismatchy: x"), None);
    }
}
