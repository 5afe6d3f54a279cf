//! `GET /storage/files/` (paginated, newest first, with versions),
//! `GET|DELETE /storage/files/<id>/`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;

use ferry_queue::outbox;
use ferry_queue::Job;
use ferry_shared::types::{FileId, UserId};
use ferry_store::files::{self, File};
use ferry_store::GenericClient;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::page::Page;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/storage/files/", get(list)).route("/storage/files/{id}/", get(show).delete(remove))
}

fn file_json(file: &File, base: &str) -> Value {
    json!({
        "id": file.id,
        "filename": file.filename,
        "size": file.size,
        "md5": file.md5,
        "sha256": file.sha256,
        "created_at": file.created_at,
        "parent": file.parent,
        "version": file.version,
        "download_url": format!("{base}/storage/download/{}/", file.id),
    })
}

/// Renders each root with its live versions (oldest first) as `versions`.
async fn with_versions(client: &impl GenericClient, roots: &[File], user: UserId, base: &str) -> ApiResult<Vec<Value>> {
    let ids: Vec<FileId> = roots.iter().map(|r| r.id).collect();
    let mut by_parent: HashMap<FileId, Vec<Value>> = HashMap::new();
    for version in files::versions_of(client, &ids, user).await? {
        if let Some(parent) = version.parent {
            by_parent.entry(parent).or_default().push(file_json(&version, base));
        }
    }
    Ok(roots
        .iter()
        .map(|root| {
            let mut out = file_json(root, base);
            out["versions"] = Value::Array(by_parent.remove(&root.id).unwrap_or_default());
            out
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
    let count = files::count_roots(&client, user.id).await?;
    page.check(count)?;
    let roots = files::roots_page(&client, user.id, page.size, page.offset).await?;
    let base = state.base_url(&headers);
    let results = with_versions(&client, &roots, user.id, &base).await?;
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
    let file = files::get_live(&client, id, user.id).await?.ok_or(ApiError::NotFound { what: "File" })?;
    let base = state.base_url(&headers);
    let mut out = with_versions(&client, &[file], user.id, &base).await?;
    Ok(Json(out.pop().unwrap_or_default()))
}

/// Hides the file (and, for a root, its versions) at once and hands the replicas to
/// the delete workers through the outbox.
async fn remove(State(state): State<SharedState>, user: AuthUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    delete_file(&state, parse_id(&id)?, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the user's live file `id` as `DELETE /storage/files/<id>/` does (also
/// tus termination of a completed upload); `404` when there is none.
pub(crate) async fn delete_file(state: &SharedState, id: FileId, user: UserId) -> ApiResult<()> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let deleted = files::soft_delete(&tx, id, user).await?;
    if deleted.is_empty() {
        return Err(ApiError::NotFound { what: "File" });
    }
    for file in &deleted {
        outbox::enqueue(&tx, &Job::Delete { file: *file }).await?;
    }
    tx.commit().await?;
    for file in &deleted {
        state.replicas.invalidate(*file);
    }
    state.relay.wake();
    tracing::info!(file.id = %id, files.deleted = deleted.len(), "file deleted");
    Ok(())
}
