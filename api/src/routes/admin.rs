//! Admin JSON API (admin users only): storage nodes (add, list, edit, drain,
//! disable; a node added here is used by the next upload, no restart) and a file's
//! replicas.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::extract::Json as JsonBody;
use ferry_shared::types::{FileId, NodeId};
use ferry_store::nodes::{self, NodeError, NodeInput, Overview};
use ferry_store::{files, replicas};
use serde_json::{json, Value};

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
        .route("/admin/api/nodes/{id}", get(show_node).patch(edit_node))
        .route("/admin/api/files/{id}", get(show_file))
        .route_layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
}

fn node_json(state: &SharedState, o: &Overview) -> Value {
    let (n, id) = (&o.node, o.node.id);
    let beat = state.heartbeats.latest(id);
    json!({
        "id": id,
        "name": n.name,
        "ssh_host": n.ssh.host,
        "ssh_port": n.ssh.port,
        "ssh_user": n.ssh.user,
        "root_path": n.ssh.root,
        "public_url": n.public_url,
        "region": n.region,
        "lat": n.lat,
        "lon": n.lon,
        "state": n.state.as_str(),
        // `up` is what this API replica acts on: a fresh heartbeat saying up.
        "up": state.heartbeats.healthy(id).is_some(),
        "free_bytes": beat.as_ref().map(|(b, _)| b.free_bytes).or(o.probe.free),
        "total_bytes": beat.as_ref().map(|(b, _)| b.total_bytes).or(o.probe.total),
        "rtt_ms": beat.as_ref().and_then(|(b, _)| b.rtt_ms),
        "heartbeat_age_ms": beat.as_ref().map(|(_, age)| age.as_millis() as u64),
        "last_heartbeat": o.probe.checked_at,
        "last_error": o.probe.error,
        "replicas": o.replicas,
    })
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
