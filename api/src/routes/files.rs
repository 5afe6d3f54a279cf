//! `GET /storage/files/` (paginated, newest first, with each root's newest versions),
//! `GET|DELETE /storage/files/<id>/`, `GET /storage/files/<id>/versions/` (all of a
//! file's versions, paginated).

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
    Router::new()
        .route("/storage/files/", get(list))
        .route("/storage/files/{id}/", get(show).delete(remove))
        .route("/storage/files/{id}/versions/", get(versions))
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

/// Versions listed with their root: its newest ones. A chain may grow without bound
/// (every upload with `parent` adds one), so an answer listing all of them did too
/// (1,001 versions: 393 KB for one root); `versions_count` says how many there are,
/// `GET /storage/files/<id>/versions/` pages through all of them.
pub const MAX_VERSIONS_LISTED: i64 = 100;

/// Renders each root with its newest live versions (at most [`MAX_VERSIONS_LISTED`],
/// oldest first) as `versions`, and the count of all of them as `versions_count`.
async fn with_versions(client: &impl GenericClient, roots: &[File], user: UserId, base: &str) -> ApiResult<Vec<Value>> {
    let ids: Vec<FileId> = roots.iter().map(|r| r.id).collect();
    let (versions, totals) = files::versions_of(client, &ids, user, MAX_VERSIONS_LISTED).await?;
    let mut by_parent: HashMap<FileId, Vec<Value>> = HashMap::new();
    for version in versions {
        if let Some(parent) = version.parent {
            by_parent.entry(parent).or_default().push(file_json(&version, base));
        }
    }
    Ok(roots
        .iter()
        .map(|root| {
            let mut out = file_json(root, base);
            out["versions"] = Value::Array(by_parent.remove(&root.id).unwrap_or_default());
            out["versions_count"] = totals.get(&root.id).copied().unwrap_or(0).into();
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

/// `GET /storage/files/<id>/versions/?page=N`: all of a file's live versions, oldest
/// first, a page at a time (`api.page_size`), in the listing's envelope
/// (`{"count", "next", "previous", "results"}`); empty for a file that is itself a
/// version, 404 for no live file of the caller's.
async fn versions(
    State(state): State<SharedState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let page = Page::parse(query.page.as_deref(), state.config.api.page_size)?;
    let client = state.pool.get().await?;
    files::get_live(&client, id, user.id).await?.ok_or(ApiError::NotFound { what: "File" })?;
    let (count, rows) = files::versions_page(&client, id, user.id, page.size, page.offset).await?;
    page.check(count)?;
    let base = state.base_url(&headers);
    let results = rows.iter().map(|v| file_json(v, &base)).collect();
    Ok(Json(page.envelope(count, results, &format!("{base}/storage/files/{id}/versions/"))))
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
