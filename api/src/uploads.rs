//! The upload record: loading it for its owner and rendering it as the original did.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ferry_shared::types::FileId;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    Uploading,
    Assembling,
    Complete,
    Failed,
    Expired,
}

impl UploadState {
    pub fn parse(s: &str) -> UploadState {
        match s {
            "assembling" => UploadState::Assembling,
            "complete" => UploadState::Complete,
            "failed" => UploadState::Failed,
            "expired" => UploadState::Expired,
            _ => UploadState::Uploading,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Uploading => "uploading",
            UploadState::Assembling => "assembling",
            UploadState::Complete => "complete",
            UploadState::Failed => "failed",
            UploadState::Expired => "expired",
        }
    }

    /// drf-chunked-upload's integers: 1 uploading, 2 complete, 3 failed.
    fn legacy_status(self) -> i32 {
        match self {
            UploadState::Uploading | UploadState::Assembling => 1,
            UploadState::Complete => 2,
            UploadState::Failed | UploadState::Expired => 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub id: FileId,
    pub user_id: i64,
    pub filename: String,
    pub parent: Option<Uuid>,
    pub total_size: Option<i64>,
    pub offset: i64,
    pub state: UploadState,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, user_id, filename, parent_id, total_size, \"offset\", status, error, created_at, expires_at, \
                       completed_at";

impl Upload {
    fn from_row(row: &tokio_postgres::Row) -> Upload {
        Upload {
            id: FileId(row.get(0)),
            user_id: row.get(1),
            filename: row.get(2),
            parent: row.get(3),
            total_size: row.get(4),
            offset: row.get(5),
            state: UploadState::parse(row.get(6)),
            error: row.get(7),
            created_at: row.get(8),
            expires_at: row.get(9),
            completed_at: row.get(10),
        }
    }

    /// The caller's upload, optionally locked `FOR UPDATE`. Another user's upload is
    /// "not found", never "forbidden": no existence oracle.
    pub async fn load(client: &impl GenericClient, id: FileId, user: i64, lock: bool) -> ApiResult<Upload> {
        let sql = format!(
            "SELECT {COLUMNS} FROM uploads WHERE id = $1 AND user_id = $2{}",
            if lock { " FOR UPDATE" } else { "" }
        );
        let row = client.query_opt(&sql, &[&id.0, &user]).await?;
        row.map(|r| Upload::from_row(&r)).ok_or(ApiError::NotFound { what: "Upload" })
    }

    /// One page of the caller's uploads, newest first, and how many there are in all.
    pub async fn page(
        client: &impl GenericClient,
        user: i64,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(i64, Vec<Upload>)> {
        let count: i64 = client.query_one("SELECT count(*) FROM uploads WHERE user_id = $1", &[&user]).await?.get(0);
        let sql =
            format!("SELECT {COLUMNS} FROM uploads WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3");
        let rows = client.query(&sql, &[&user, &limit, &offset]).await?;
        Ok((count, rows.iter().map(Upload::from_row).collect()))
    }

    /// Expired in fact even if the sweeper has not marked it yet.
    pub fn effective_state(&self) -> UploadState {
        if self.state == UploadState::Uploading && self.expires_at <= Utc::now() {
            UploadState::Expired
        } else {
            self.state
        }
    }

    pub fn to_json(&self, base: &str) -> Value {
        let state = self.effective_state();
        json!({
            "id": self.id,
            "url": format!("{base}/storage/tmp-upload/{}/", self.id),
            "file": (state == UploadState::Complete).then(|| format!("{base}/storage/download/{}/", self.id)),
            "filename": self.filename,
            "offset": self.offset,
            "total_size": self.total_size,
            "created_at": self.created_at,
            "expires": self.expires_at,
            "status": state.legacy_status(),
            "state": state.as_str(),
            "error": self.error,
            "completed_at": self.completed_at,
            "user": self.user_id,
            "parent": self.parent,
        })
    }
}
