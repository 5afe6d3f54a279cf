//! Admin JSON API (admin users only): storage nodes (add, list, edit, drain,
//! disable; a node added here is used by the next upload, no restart) and a file's
//! replicas.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::extract::Json as JsonBody;
use ferry_shared::types::NodeId;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/admin/api/nodes", get(list_nodes).post(add_node))
        .route("/admin/api/nodes/{id}", get(show_node).patch(edit_node))
        .route("/admin/api/files/{id}", get(show_file))
}

/// A node as submitted. Every field is optional so PATCH can reuse it; POST checks
/// the required ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeInput {
    name: Option<String>,
    ssh_host: Option<String>,
    ssh_port: Option<i32>,
    ssh_user: Option<String>,
    root_path: Option<String>,
    public_url: Option<String>,
    region: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    state: Option<String>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_node", detail)
}

impl NodeInput {
    fn validate(&self) -> ApiResult<()> {
        let simple = |s: &str| !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:[]".contains(&b));
        if let Some(name) = &self.name {
            if !(1..=63).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(invalid("name must be 1-63 letters, digits, '.', '_' or '-'."));
            }
        }
        if self.ssh_host.as_deref().is_some_and(|h| !simple(h)) {
            return Err(invalid("ssh_host must be a host name or IP address."));
        }
        if self.ssh_port.is_some_and(|p| !(1..=65535).contains(&p)) {
            return Err(invalid("ssh_port must be 1-65535."));
        }
        if self.ssh_user.as_deref().is_some_and(|u| {
            u.is_empty() || u.len() > 32 || !u.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) || u.starts_with('-')
        }) {
            return Err(invalid("ssh_user must be a plain user name."));
        }
        if self.root_path.as_deref().is_some_and(|p| {
            !p.starts_with('/') || p.split('/').any(|c| c == ".." || c == ".") || p.bytes().any(|b| b.is_ascii_control() || b == b' ')
        }) {
            return Err(invalid("root_path must be an absolute path without '.' or '..' components or spaces."));
        }
        if self.public_url.as_deref().is_some_and(|u| {
            !(u.starts_with("http://") || u.starts_with("https://")) || u.bytes().any(|b| b.is_ascii_control() || b == b' ')
        }) {
            return Err(invalid("public_url must be an http(s) URL."));
        }
        if self.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v)) || self.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
            return Err(invalid("lat must be within ±90 and lon within ±180."));
        }
        if self.state.as_deref().is_some_and(|s| !["active", "draining", "disabled"].contains(&s)) {
            return Err(invalid("state must be active, draining or disabled."));
        }
        Ok(())
    }
}

const NODE_SELECT: &str = "SELECT n.id, n.name, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path, n.public_url, n.region,
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

async fn show_node(State(state): State<SharedState>, _admin: AdminUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(load_node(&state, parse_node_id(&id)?).await?))
}

fn unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

async fn add_node(
    State(state): State<SharedState>,
    _admin: AdminUser,
    JsonBody(input): JsonBody<NodeInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    input.validate()?;
    let required = |v: &Option<String>, name: &str| v.clone().ok_or_else(|| invalid(format!("{name} is required.")));
    let name = required(&input.name, "name")?;
    let result = state
        .pool
        .get()
        .await?
        .query_one(
            "INSERT INTO nodes (name, ssh_host, ssh_port, ssh_user, root_path, public_url, region, lat, lon, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &[
                &name,
                &required(&input.ssh_host, "ssh_host")?,
                &input.ssh_port.unwrap_or(22),
                &required(&input.ssh_user, "ssh_user")?,
                &required(&input.root_path, "root_path")?,
                &required(&input.public_url, "public_url")?,
                &input.region.clone().unwrap_or_default(),
                &input.lat.unwrap_or(0.0),
                &input.lon.unwrap_or(0.0),
                &input.state.clone().unwrap_or_else(|| "active".into()),
            ],
        )
        .await;
    let id: i32 = match result {
        Ok(row) => row.get(0),
        Err(e) if unique_violation(&e) => {
            return Err(ApiError::Conflict {
                code: "node_exists",
                detail: format!("A node named {name:?} already exists."),
                state: None,
            })
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(node.id = id, node.name = %name, "node added");
    Ok((StatusCode::CREATED, Json(load_node(&state, id).await?)))
}

async fn edit_node(
    State(state): State<SharedState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<NodeInput>,
) -> ApiResult<Json<Value>> {
    let id = parse_node_id(&id)?;
    input.validate()?;
    let result = state
        .pool
        .get()
        .await?
        .execute(
            "UPDATE nodes SET name = COALESCE($2, name), ssh_host = COALESCE($3, ssh_host),
                ssh_port = COALESCE($4, ssh_port), ssh_user = COALESCE($5, ssh_user),
                root_path = COALESCE($6, root_path), public_url = COALESCE($7, public_url),
                region = COALESCE($8, region), lat = COALESCE($9, lat), lon = COALESCE($10, lon),
                state = COALESCE($11, state)
             WHERE id = $1",
            &[
                &id,
                &input.name,
                &input.ssh_host,
                &input.ssh_port,
                &input.ssh_user,
                &input.root_path,
                &input.public_url,
                &input.region,
                &input.lat,
                &input.lon,
                &input.state,
            ],
        )
        .await;
    match result {
        Ok(0) => return Err(ApiError::NotFound { what: "Node" }),
        Ok(_) => {}
        Err(e) if unique_violation(&e) => {
            return Err(ApiError::Conflict { code: "node_exists", detail: "Another node has that name.".into(), state: None })
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(node.id = id, node.state = ?input.state, "node edited");
    Ok(Json(load_node(&state, id).await?))
}

/// A file (any user's) with its checksums and where its replicas are.
async fn show_file(State(state): State<SharedState>, _admin: AdminUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
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
