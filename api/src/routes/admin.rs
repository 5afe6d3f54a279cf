//! Admin JSON API (admin users only): storage nodes (add, list, edit, drain,
//! disable; a node added here is used by the next upload, no restart) and a file's
//! replicas.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::extract::Json as JsonBody;
use ferry_shared::types::NodeId;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult};
use crate::nodes::{self, NodeError, NodeInput};
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/admin/api/nodes", get(list_nodes).post(add_node))
        .route("/admin/api/nodes/{id}", get(show_node).patch(edit_node))
        .route("/admin/api/files/{id}", get(show_file))
}

const NODE_SELECT: &str =
    "SELECT n.id, n.name, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path, n.public_url, n.region,
        n.lat, n.lon, n.state, s.up, s.free_bytes, s.total_bytes, s.checked_at, s.error,
        (SELECT count(*) FROM replicas r WHERE r.node_id = n.id AND r.state = 'present')
     FROM nodes n LEFT JOIN node_status s ON s.node_id = n.id";

fn node_json(state: &SharedState, row: &tokio_postgres::Row) -> Value {
    let id = NodeId(row.get(0));
    let beat = state.heartbeats.latest(id);
    json!({
        "id": id,
        "name": row.get::<_, String>(1),
        "ssh_host": row.get::<_, String>(2),
        "ssh_port": row.get::<_, i32>(3),
        "ssh_user": row.get::<_, String>(4),
        "root_path": row.get::<_, String>(5),
        "public_url": row.get::<_, String>(6),
        "region": row.get::<_, String>(7),
        "lat": row.get::<_, f64>(8),
        "lon": row.get::<_, f64>(9),
        "state": row.get::<_, String>(10),
        // `up` is what this API replica acts on: a fresh heartbeat saying up.
        "up": state.heartbeats.healthy(id).is_some(),
        "free_bytes": beat.as_ref().map(|(b, _)| b.free_bytes).or(row.get::<_, Option<i64>>(12)),
        "total_bytes": beat.as_ref().map(|(b, _)| b.total_bytes).or(row.get::<_, Option<i64>>(13)),
        "rtt_ms": beat.as_ref().and_then(|(b, _)| b.rtt_ms),
        "heartbeat_age_ms": beat.as_ref().map(|(_, age)| age.as_millis() as u64),
        "last_heartbeat": row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(14),
        "last_error": row.get::<_, Option<String>>(15),
        "replicas": row.get::<_, i64>(16),
    })
}

async fn list_nodes(State(state): State<SharedState>, _admin: AdminUser) -> ApiResult<Json<Value>> {
    let rows = state.pool.get().await?.query(&format!("{NODE_SELECT} ORDER BY n.id"), &[]).await?;
    Ok(Json(Value::Array(rows.iter().map(|r| node_json(&state, r)).collect())))
}

async fn load_node(state: &SharedState, id: i32) -> ApiResult<Value> {
    let row = state
        .pool
        .get()
        .await?
        .query_opt(&format!("{NODE_SELECT} WHERE n.id = $1"), &[&id])
        .await?
        .ok_or(ApiError::NotFound { what: "Node" })?;
    Ok(node_json(state, &row))
}

fn parse_node_id(raw: &str) -> ApiResult<i32> {
    raw.parse().map_err(|_| ApiError::NotFound { what: "Node" })
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
            NodeError::Db(e) => e.into(),
        }
    }
}

async fn add_node(
    State(state): State<SharedState>,
    _admin: AdminUser,
    JsonBody(input): JsonBody<NodeInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = nodes::insert(&state.pool.get().await?, &input).await?;
    tracing::info!(node.id = id, node.name = ?input.name, "node added");
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
    tracing::info!(node.id = id, node.state = ?input.state, "node edited");
    Ok(Json(load_node(&state, id).await?))
}

/// A file (any user's) with its checksums and where its replicas are.
async fn show_file(
    State(state): State<SharedState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound { what: "File" })?;
    let client = state.pool.get().await?;
    let file = client
        .query_opt(
            "SELECT id, user_id, filename, size, md5, sha256, created_at, deleted_at FROM files WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or(ApiError::NotFound { what: "File" })?;
    let replicas = client
        .query(
            "SELECT r.node_id, n.name, r.state, r.attempts, r.last_error, r.updated_at
             FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE r.file_id = $1 ORDER BY r.node_id",
            &[&id],
        )
        .await?;
    Ok(Json(json!({
        "id": file.get::<_, Uuid>(0),
        "user": file.get::<_, i64>(1),
        "filename": file.get::<_, String>(2),
        "size": file.get::<_, i64>(3),
        "md5": file.get::<_, String>(4),
        "sha256": file.get::<_, String>(5),
        "created_at": file.get::<_, chrono::DateTime<chrono::Utc>>(6),
        "deleted_at": file.get::<_, Option<chrono::DateTime<chrono::Utc>>>(7),
        "replicas": replicas.iter().map(|r| json!({
            "node": r.get::<_, i32>(0),
            "node_name": r.get::<_, String>(1),
            "state": r.get::<_, String>(2),
            "attempts": r.get::<_, i32>(3),
            "last_error": r.get::<_, Option<String>>(4),
            "updated_at": r.get::<_, chrono::DateTime<chrono::Utc>>(5),
        })).collect::<Vec<_>>(),
    })))
}
