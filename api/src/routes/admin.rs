//! Admin JSON API (admin users only): storage nodes (add, list, edit, drain,
//! disable, remove; a node added here is used by the next upload, no restart), every
//! user's uploads, files and accounts (filtered and paged like the admin page, the
//! same objects `ferry ... --json` prints), a file's replicas, a user's quota and
//! disabled flag, job records (replay or discard a dead letter) and the worker
//! inventory.

use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::admin_ui::listing::Listing;
use crate::extract::Json as JsonBody;
use crate::job_ops::{self, Acted, JobAction};
use ferry_shared::types::{ByteSize, FileId, NodeId, UserId};
use ferry_store::jobs::{self, JobRecord};
use ferry_store::nodes::{self, NodeError, NodeInput, Overview};
use ferry_store::users::UserError;
use ferry_store::{files, replicas, uploads, users, workers, UploadState};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// Largest admin JSON body: a node is a few hundred bytes. Bigger bodies get
/// `413 too_large` before they are read whole (the router disables axum's default
/// limit for the upload routes, which stream).
pub const MAX_JSON_BYTES: usize = 16 * 1024;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/admin/api/nodes", get(list_nodes).post(add_node))
        .route("/admin/api/nodes/{id}", get(show_node).patch(edit_node).delete(remove_node))
        .route("/admin/api/uploads", get(list_uploads))
        .route("/admin/api/files", get(list_files))
        .route("/admin/api/files/{id}", get(show_file))
        .route("/admin/api/users", get(list_users))
        .route("/admin/api/users/{id}", axum::routing::patch(edit_user))
        .route("/admin/api/jobs", get(list_jobs))
        .route("/admin/api/jobs/{id}", get(show_job))
        .route("/admin/api/jobs/{id}/{action}", axum::routing::post(act_on_job))
        .route("/admin/api/workers", get(list_workers))
        .route_layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
}

fn node_json(state: &SharedState, o: &Overview) -> Value {
    let id = o.node.id;
    let beat = state.heartbeats.latest(id);
    let mut value = o.json();
    // `up` is what this API replica acts on: a fresh heartbeat saying up.
    value["up"] = state.heartbeats.healthy(id).is_some().into();
    if let Some((b, age)) = &beat {
        value["free_bytes"] = json!(b.free_bytes);
        value["total_bytes"] = json!(b.total_bytes);
        value["rtt_ms"] = json!(b.rtt_ms);
        value["heartbeat_age_ms"] = json!(age.as_millis() as u64);
    }
    value
}

async fn list_nodes(State(state): State<SharedState>, _admin: AdminUser) -> ApiResult<Json<Value>> {
    let nodes = nodes::overview(&state.pool.get().await?, None).await?;
    Ok(Json(Value::Array(nodes.iter().map(|o| node_json(&state, o)).collect())))
}

async fn load_node(state: &SharedState, id: NodeId) -> ApiResult<Value> {
    let node = nodes::overview(&state.pool.get().await?, Some(id)).await?.pop();
    Ok(node_json(state, &node.ok_or(ApiError::NotFound { what: "Node" })?))
}

fn parse_node_id(raw: &str) -> ApiResult<NodeId> {
    raw.parse().map(NodeId).map_err(|_| ApiError::NotFound { what: "Node" })
}

async fn show_node(
    State(state): State<SharedState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(load_node(&state, parse_node_id(&id)?).await?))
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Invalid(detail) => ApiError::bad_request("invalid_node", detail),
            NodeError::Exists => ApiError::Conflict {
                code: "node_exists",
                detail: "A node with that name already exists.".into(),
                state: None,
            },
            NodeError::NotFound => ApiError::NotFound { what: "Node" },
            NodeError::Active => ApiError::Conflict { code: "node_active", detail: format!("{e}."), state: None },
            NodeError::HoldsReplicas(_) => {
                ApiError::Conflict { code: "node_holds_replicas", detail: format!("{e}."), state: None }
            }
            NodeError::Store(e) => e.into(),
        }
    }
}

async fn add_node(
    State(state): State<SharedState>,
    _admin: AdminUser,
    JsonBody(input): JsonBody<NodeInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = nodes::insert(&state.pool.get().await?, &input).await?;
    tracing::info!(node.id = %id, node.name = ?input.name, "node added");
    Ok((StatusCode::CREATED, Json(load_node(&state, id).await?)))
}

async fn edit_node(
    State(state): State<SharedState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<NodeInput>,
) -> ApiResult<Json<Value>> {
    let id = parse_node_id(&id)?;
    nodes::update(&state.pool.get().await?, id, &input).await?;
    tracing::info!(node.id = %id, node.state = ?input.state, "node edited");
    Ok(Json(load_node(&state, id).await?))
}

/// `DELETE /admin/api/nodes/<id>`: 204 once removed; 409 `node_active` (drain it
/// first) or `node_holds_replicas` (the count is in `detail`).
async fn remove_node(
    State(state): State<SharedState>,
    admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_node_id(&id)?;
    let name = nodes::remove(&state.pool.get().await?, id).await?;
    tracing::info!(node.id = %id, node.name = %name, admin.id = %admin.0.id, "node removed");
    Ok(StatusCode::NO_CONTENT)
}

fn listing(query: Option<&str>) -> ApiResult<Listing> {
    Listing::parse(query).map_err(|detail| ApiError::bad_request("invalid_query", detail))
}

/// The page envelope of every listing: `{"total", "page", "per_page", "items"}`.
fn page_json(l: &Listing, total: i64, items: Vec<Value>) -> Json<Value> {
    Json(json!({ "total": total, "page": l.page, "per_page": l.per_page, "items": items }))
}

/// A `state` filter with two values: `no` is `Some(false)`, `yes` `Some(true)`, none
/// `None`.
fn two_states(l: &Listing, no: &str, yes: &str) -> ApiResult<Option<bool>> {
    match l.state.as_deref() {
        None => Ok(None),
        Some(s) if s == no => Ok(Some(false)),
        Some(s) if s == yes => Ok(Some(true)),
        Some(_) => Err(ApiError::bad_request("invalid_query", format!("state must be {no} or {yes}."))),
    }
}

/// `GET /admin/api/uploads?user=&name=&id=&from=&to=&state=&page=&per_page=`
async fn list_uploads(
    State(state): State<SharedState>,
    _admin: AdminUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let l = listing(query.as_deref())?;
    let upload_state = l
        .state
        .as_deref()
        .map(|s| s.parse::<UploadState>())
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_query", "state must be an upload state."))?;
    let (total, rows) = uploads::search(&state.pool.get().await?, &l.search, upload_state, l.paging()).await?;
    Ok(page_json(&l, total, rows.iter().map(|r| r.json()).collect()))
}

/// `GET /admin/api/files?...&state=live|deleted` (both without `state`)
async fn list_files(
    State(state): State<SharedState>,
    _admin: AdminUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let l = listing(query.as_deref())?;
    let deleted = two_states(&l, "live", "deleted")?;
    let (total, rows) = files::search(&state.pool.get().await?, &l.search, deleted, l.paging()).await?;
    Ok(page_json(&l, total, rows.iter().map(|r| r.json()).collect()))
}

/// `GET /admin/api/users?...&state=active|disabled`
async fn list_users(
    State(state): State<SharedState>,
    _admin: AdminUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let l = listing(query.as_deref())?;
    let disabled = two_states(&l, "active", "disabled")?;
    let (total, rows) = users::search(&state.pool.get().await?, &l.search, disabled, l.paging()).await?;
    Ok(page_json(&l, total, rows.iter().map(|u| u.json()).collect()))
}

/// `GET /admin/api/jobs?upload=&state=&kind=&user=&name=&id=&from=&to=&page=&per_page=`:
/// job records, newest first (an upload's, oldest first), as `ferry jobs ls --json`
/// prints them, in the page envelope.
async fn list_jobs(
    State(state): State<SharedState>,
    _admin: AdminUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let l = listing(query.as_deref())?;
    let filter = job_ops::filter(&l).map_err(|detail| ApiError::bad_request("invalid_query", detail))?;
    let client = state.pool.get().await?;
    let rows = jobs::list(&client, &filter, l.per_page).await?;
    let total = jobs::count(&client, &filter).await?;
    Ok(page_json(&l, total, rows.iter().map(JobRecord::json).collect()))
}

fn parse_job_id(raw: &str) -> ApiResult<Uuid> {
    raw.parse().map_err(|_| ApiError::NotFound { what: "Job" })
}

/// `GET /admin/api/jobs/<id>`: one job record with its attempts that did not succeed
/// (`ferry jobs show`; `jobs::JobDetail::json`).
async fn show_job(
    State(state): State<SharedState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = jobs::detail(&state.pool.get().await?, parse_job_id(&id)?).await?;
    Ok(Json(job.ok_or(ApiError::NotFound { what: "Job" })?.json()))
}

/// `POST /admin/api/jobs/<id>/replay` (a dead letter back in its queue, same id),
/// `POST /admin/api/jobs/<id>/discard` (cancelled for good) and
/// `POST /admin/api/jobs/<id>/revoke` (a copy or check that waits, cancelled before it
/// runs again; `ferry jobs revoke`): the job record after it. 409 `not_dead_letter` for
/// a replay or discard of a job that is not one (any more), 409 `file_deleted` for a
/// replay of a copy or check whose file was deleted since (discard it instead), 409
/// `not_revocable` for a revoke of a job that runs, has ended, or is no copy or check
/// (the detail says which and what to do instead). A revoke may say why in its body,
/// `{"reason": "..."}` (recorded after who revoked it, as `ferry jobs revoke --reason`
/// does); no body, or `{}`, records who alone. A reason for a replay or discard, which
/// record none, is a 400 `reason_not_recorded` rather than dropped unsaid.
async fn act_on_job(
    State(state): State<SharedState>,
    admin: AdminUser,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Body,
) -> ApiResult<Json<Value>> {
    let id = parse_job_id(&id)?;
    let action = JobAction::parse(&action).ok_or(ApiError::NotFound { what: "Action" })?;
    let reason = ActionBody::read(&state, body).await?.reason()?;
    if reason.is_some() && action != JobAction::Revoke {
        return Err(ApiError::bad_request(
            "reason_not_recorded",
            "Only a revoke records a reason; send no reason with a replay or discard.",
        ));
    }
    let by = match reason {
        Some(reason) => format!("{}, through the admin API: {reason}", admin.0.username),
        None => format!("{}, through the admin API", admin.0.username),
    };
    match action.apply(&state, id, &by).await? {
        Acted::Done => {}
        Acted::Unknown => return Err(ApiError::NotFound { what: "Job" }),
        Acted::NotRevoked(detail) => return Err(ApiError::Conflict { code: "not_revocable", detail, state: None }),
        Acted::FileDeleted => {
            return Err(ApiError::Conflict { code: "file_deleted", detail: job_ops::FILE_DELETED.into(), state: None })
        }
        Acted::NotDeadLetter => {
            let exists = jobs::get(&state.pool.get().await?, id).await?.is_some();
            return Err(if exists {
                ApiError::Conflict {
                    code: "not_dead_letter",
                    detail: "That job is not a dead letter (any more).".into(),
                    state: None,
                }
            } else {
                ApiError::NotFound { what: "Job" }
            });
        }
    }
    tracing::info!(job.id = %id, ?action, admin.id = %admin.0.id, "job steered through the admin API");
    let job = jobs::detail(&state.pool.get().await?, id).await?;
    Ok(Json(job.ok_or(ApiError::NotFound { what: "Job" })?.json()))
}

/// The optional JSON body of a job action: why (a revoke's reason).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    reason: Option<String>,
}

/// Longest reason recorded, in characters.
const MAX_REASON_CHARS: usize = 500;

impl ActionBody {
    /// The body as sent: empty is no reason; anything else must be the JSON object
    /// (400 `invalid_json`), at most [`MAX_JSON_BYTES`], read under the body pace floor.
    async fn read(state: &SharedState, body: axum::body::Body) -> ApiResult<ActionBody> {
        let pace = crate::upload::pace::BodyPace::of(&state.config.api);
        let bytes = crate::upload::pace::read_whole(body, MAX_JSON_BYTES, pace).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ActionBody::default());
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
    }

    /// The reason, trimmed; 400 `invalid_reason` when blank or over
    /// [`MAX_REASON_CHARS`].
    fn reason(self) -> ApiResult<Option<String>> {
        let Some(reason) = self.reason else { return Ok(None) };
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::bad_request(
                "invalid_reason",
                format!("A reason is 1 to {MAX_REASON_CHARS} characters (or leave it out)."),
            ));
        }
        Ok(Some(reason.to_owned()))
    }
}

/// `GET /admin/api/workers[?all=true]`: the worker inventory (`ferry workers ls
/// --json [--all]`): without `all`, workers stopped or silent for over an hour are
/// left out.
async fn list_workers(
    State(state): State<SharedState>,
    _admin: AdminUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let all = AllQuery::parse(query.as_deref()).map_err(|detail| ApiError::bad_request("invalid_query", detail))?;
    let rows = workers::list(&state.pool.get().await?, all).await?;
    Ok(Json(Value::Array(rows.iter().map(workers::WorkerRow::json).collect())))
}

/// `?all=true`: also what a listing leaves out by default. The admin API and the admin
/// page's workers listing read it the same way.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllQuery {
    #[serde(default)]
    all: bool,
}

impl AllQuery {
    /// Whether a query string (without the `?`) asks for `all`: absent or empty is
    /// `false`; `all=true` or `all=false` only.
    ///
    /// # Errors
    /// The detail of a `400 invalid_query` for any other value or any other key.
    pub(crate) fn parse(raw: Option<&str>) -> Result<bool, &'static str> {
        serde_urlencoded::from_str::<AllQuery>(raw.unwrap_or_default())
            .map(|q| q.all)
            .map_err(|_| "all must be true or false.")
    }
}

/// What `PATCH /admin/api/users/<id>` may change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    /// Bytes; `null` for the configured default. Absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    quota_bytes: Option<Option<ByteSize>>,
    /// Disabling ends the user's tokens and sessions at once.
    disabled: Option<bool>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<ByteSize>>, D::Error> {
    Option::<ByteSize>::deserialize(d).map(Some)
}

/// `PATCH /admin/api/users/<id>` with `{"quota_bytes": N|null, "disabled": bool}`:
/// the user as `GET /admin/api/users` shows it.
async fn edit_user(
    State(state): State<SharedState>,
    admin: AdminUser,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<UserPatch>,
) -> ApiResult<Json<Value>> {
    let id = UserId(id.parse().map_err(|_| ApiError::NotFound { what: "User" })?);
    let client = state.pool.get().await?;
    let username = users::account(&client, id).await?.ok_or(ApiError::NotFound { what: "User" })?.username;
    if patch.quota_bytes.flatten().is_some_and(|q| i64::try_from(q.bytes()).is_err()) {
        return Err(ApiError::bad_request("invalid_quota", "quota_bytes is too large."));
    }
    if let Some(quota) = patch.quota_bytes {
        users::set_quota(&client, &username, quota).await?;
    }
    if let Some(disabled) = patch.disabled {
        users::set_disabled(&client, &username, disabled).await.map_err(|e| match e {
            UserError::LastAdmin(_) => {
                ApiError::Conflict { code: "last_admin", detail: format!("The {e}."), state: None }
            }
            UserError::Store(e) => e.into(),
            other => ApiError::internal(other),
        })?;
    }
    tracing::info!(user.id = %id, admin.id = %admin.0.id, quota = ?patch.quota_bytes, disabled = ?patch.disabled, "user edited");
    let search = ferry_store::search::Search { id_prefix: Some(id.to_string()), ..Default::default() };
    let (_, rows) = users::search(&client, &search, None, ferry_store::search::Paging { limit: 1, offset: 0 }).await?;
    let user = rows.first().ok_or(ApiError::NotFound { what: "User" })?;
    Ok(Json(user.json()))
}

/// A file (any user's) with its checksums and where its replicas are.
async fn show_file(
    State(state): State<SharedState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: FileId = id.parse().map_err(|_| ApiError::NotFound { what: "File" })?;
    let client = state.pool.get().await?;
    let file = files::get_any(&client, id).await?.ok_or(ApiError::NotFound { what: "File" })?.file;
    let mut replicas = replicas::of_files(&client, &[id]).await?;
    replicas.sort_by_key(|r| r.node);
    Ok(Json(json!({
        "id": file.id,
        "user": file.user,
        "filename": file.filename,
        "size": file.size,
        "md5": file.md5,
        "sha256": file.sha256,
        "created_at": file.created_at,
        "deleted_at": file.deleted_at,
        "replicas": replicas.iter().map(|r| json!({
            "node": r.node,
            "node_name": r.node_name,
            "state": r.state.as_str(),
            "attempts": r.attempts,
            "last_error": r.last_error,
            "updated_at": r.updated_at,
        })).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::AllQuery;

    #[test]
    fn all_is_true_false_or_absent() {
        assert_eq!(AllQuery::parse(None), Ok(false));
        assert_eq!(AllQuery::parse(Some("")), Ok(false));
        assert_eq!(AllQuery::parse(Some("all=true")), Ok(true));
        assert_eq!(AllQuery::parse(Some("all=false")), Ok(false));
        for bad in ["all=1", "all=x", "all=", "every=true", "all=true&page=2"] {
            assert!(AllQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
