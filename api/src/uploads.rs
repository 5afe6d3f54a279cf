//! The upload record as the API shows it: loading it for its owner and rendering it
//! as the original did. The row itself is `ferry_store::uploads::Upload`.

use chrono::Utc;
use ferry_shared::types::{FileId, UserId};
use ferry_store::uploads::Upload;
use ferry_store::{GenericClient, UploadState};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// drf-chunked-upload's integers: 1 uploading, 2 complete, 3 failed.
fn legacy_status(state: UploadState) -> i32 {
    match state {
        UploadState::Uploading | UploadState::Assembling => 1,
        UploadState::Complete => 2,
        UploadState::Failed | UploadState::Expired => 3,
    }
}

/// The caller's upload, optionally locked `FOR UPDATE`. Another user's upload is
/// "not found", never "forbidden": no existence oracle.
pub async fn load(client: &impl GenericClient, id: FileId, user: UserId, lock: bool) -> ApiResult<Upload> {
    ferry_store::uploads::load(client, id, user, lock).await?.ok_or(ApiError::NotFound { what: "Upload" })
}

/// One page of the caller's uploads, newest first, and how many there are in all.
pub async fn page(client: &impl GenericClient, user: UserId, limit: i64, offset: i64) -> ApiResult<(i64, Vec<Upload>)> {
    Ok(ferry_store::uploads::page(client, user, limit, offset).await?)
}

/// Expired in fact even if the sweeper has not marked it yet.
pub fn effective_state(upload: &Upload) -> UploadState {
    if upload.state == UploadState::Uploading && upload.expires_at <= Utc::now() {
        UploadState::Expired
    } else {
        upload.state
    }
}

/// What a client is told of why its upload failed, expired or was reopened: a
/// recorded failure's fixed public text ([`UploadFailure::public_detail`]), never the
/// stored detail beside it, which is for operators (an operator's cancel reason, an
/// assembly's server paths and internal errors); the fixed texts the server writes
/// itself (expiry, termination) as they are.
fn public_error(upload: &Upload) -> Option<&str> {
    if let Some(failure) = upload.failure() {
        return Some(failure.public_detail());
    }
    let error = upload.error.as_deref()?;
    Some(match error {
        ferry_store::uploads::EXPIRED_TEXT | ferry_store::uploads::TERMINATED_TEXT => error,
        _ => "The upload failed; upload the file again.",
    })
}

/// The upload as its client sees it (the chunked protocol's answers and listings).
pub fn to_json(upload: &Upload, base: &str) -> Value {
    let state = effective_state(upload);
    json!({
        "id": upload.id,
        "url": format!("{base}/storage/tmp-upload/{}/", upload.id),
        "file": (state == UploadState::Complete).then(|| format!("{base}/storage/download/{}/", upload.id)),
        "filename": upload.filename,
        "offset": upload.offset,
        "total_size": upload.total_size,
        "created_at": upload.created_at,
        "expires": upload.expires_at,
        "status": legacy_status(state),
        "state": state.as_str(),
        "error": public_error(upload),
        "completed_at": upload.completed_at,
        "user": upload.user,
        "parent": upload.parent,
    })
}
