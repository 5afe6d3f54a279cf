//! `GET /storage/files/` (paginated, newest first, with versions),
//! `GET|DELETE /storage/files/<id>/`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use ferry_queue::outbox;
use ferry_queue::Job;
use ferry_shared::types::FileId;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::page::Page;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/storage/files/", get(list)).route("/storage/files/{id}/", get(show).delete(remove))
}

const COLUMNS: &str = "id, filename, size, md5, sha256, created_at, parent_id, version";

fn file_json(row: &tokio_postgres::Row, base: &str) -> Value {
    let id: Uuid = row.get(0);
    let created_at: DateTime<Utc> = row.get(5);
    json!({
        "id": id,
        "filename": row.get::<_, String>(1),
        "size": row.get::<_, i64>(2),
        "md5": row.get::<_, String>(3),
        "sha256": row.get::<_, String>(4),
        "created_at": created_at,
        "parent": row.get::<_, Option<Uuid>>(6),
        "version": row.get::<_, i32>(7),
        "download_url": format!("{base}/storage/download/{id}/"),
    })
}

/// Attaches each root's live versions (oldest first) as `versions`.
async fn with_versions(
    client: &deadpool_postgres::Client,
    roots: Vec<Value>,
    user: i64,
    base: &str,
) -> ApiResult<Vec<Value>> {
    let ids: Vec<Uuid> = roots.iter().filter_map(|r| r["id"].as_str()?.parse().ok()).collect();
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM files WHERE parent_id = ANY($1) AND user_id = $2 AND deleted_at IS NULL
                 ORDER BY version, created_at"
            ),
            &[&ids, &user],
        )
        .await?;
    let mut by_parent: std::collections::HashMap<Uuid, Vec<Value>> = std::collections::HashMap::new();
    for row in &rows {
        if let Some(parent) = row.get::<_, Option<Uuid>>(6) {
            by_parent.entry(parent).or_default().push(file_json(row, base));
        }
    }
    Ok(roots
        .into_iter()
        .map(|mut root| {
            let id = root["id"].as_str().and_then(|s| s.parse::<Uuid>().ok());
            let versions = id.and_then(|id| by_parent.remove(&id)).unwrap_or_default();
            root["versions"] = Value::Array(versions);
            root
        })
        .collect())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
}

async fn list(
    State(state): State<SharedState>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let page = Page::parse(query.page.as_deref(), state.config.api.page_size)?;
    let client = state.pool.get().await?;
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM files WHERE user_id = $1 AND deleted_at IS NULL AND parent_id IS NULL",
            &[&user.id],
        )
        .await?
        .get(0);
    page.check(count)?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM files WHERE user_id = $1 AND deleted_at IS NULL AND parent_id IS NULL
                 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
            ),
            &[&user.id, &page.size, &page.offset],
        )
        .await?;
    let base = state.base_url(&headers);
    let roots = rows.iter().map(|r| file_json(r, &base)).collect();
    let results = with_versions(&client, roots, user.id, &base).await?;
    Ok(Json(page.envelope(count, results, &format!("{base}/storage/files/"))))
}

fn parse_id(raw: &str) -> ApiResult<FileId> {
    raw.parse().map_err(|_| ApiError::NotFound { what: "File" })
}

async fn show(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM files WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"),
            &[&id.0, &user.id],
        )
        .await?
        .ok_or(ApiError::NotFound { what: "File" })?;
    let base = state.base_url(&headers);
    let mut out = with_versions(&client, vec![file_json(&row, &base)], user.id, &base).await?;
    Ok(Json(out.pop().unwrap_or_default()))
}

/// Hides the file (and, for a root, its versions) at once and hands the replicas to
/// the delete workers through the outbox.
async fn remove(State(state): State<SharedState>, user: AuthUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "UPDATE files SET deleted_at = now()
             WHERE user_id = $2 AND deleted_at IS NULL AND (id = $1 OR parent_id = $1)
             RETURNING id",
            &[&id.0, &user.id],
        )
        .await?;
    let deleted: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    if !deleted.contains(&id.0) {
        return Err(ApiError::NotFound { what: "File" });
    }
    tx.execute("UPDATE replicas SET state = 'deleting', updated_at = now() WHERE file_id = ANY($1)", &[&deleted])
        .await?;
    for file in &deleted {
        outbox::enqueue(&tx, &Job::Delete { file: FileId(*file) }).await?;
    }
    tx.commit().await?;
    for file in &deleted {
        state.replicas.invalidate(FileId(*file));
    }
    state.relay.wake();
    tracing::info!(file.id = %id, files.deleted = deleted.len(), "file deleted");
    Ok(StatusCode::NO_CONTENT)
}
