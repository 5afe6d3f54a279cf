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
        "error": upload.error,
        "completed_at": upload.completed_at,
        "user": upload.user,
        "parent": upload.parent,
    })
}
