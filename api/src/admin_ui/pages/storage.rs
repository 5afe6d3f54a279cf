//! The uploads and files pages: the 100 most recent of each, every user's, with
//! upload progress and expiry, and each file's checksums and replicas by node.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{fmt_bytes, fmt_time, Esc, Page, Section};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

const LIMIT: i64 = 100;

/// `GET /admin/uploads`
pub async fn uploads(State(state): State<SharedState>, session: AdminSession) -> Result<Response, UiError> {
    let rows = state
        .pool
        .get()
        .await?
        .query(
            "SELECT u.id, us.username, u.filename, u.status, u.\"offset\", u.total_size, u.created_at,
                u.expires_at, u.error
             FROM uploads u JOIN users us ON us.id = u.user_id ORDER BY u.created_at DESC LIMIT $1",
            &[&LIMIT],
        )
        .await?;
    let mut body = format!(
        "<p>The {LIMIT} most recent uploads of every user.</p>\
         <table class=\"grid\" id=\"uploads\"><thead><tr><th>Id</th><th>User</th><th>Filename</th><th>State</th>\
         <th class=\"num\">Offset / total</th><th>Created</th><th>Expires</th></tr></thead><tbody>"
    );
    let now = Utc::now();
    for row in &rows {
        let status: &str = row.get(3);
        let offset: i64 = row.get(4);
        let total: Option<i64> = row.get(5);
        let expires: DateTime<Utc> = row.get(7);
        let progress = match total {
            Some(total) if total > 0 => {
                format!("{} / {} ({:.0} %)", fmt_bytes(offset), fmt_bytes(total), offset as f64 * 100.0 / total as f64)
            }
            Some(total) => format!("{} / {}", fmt_bytes(offset), fmt_bytes(total)),
            None => format!("{} / ?", fmt_bytes(offset)),
        };
        let expiry = if status == "uploading" && expires < now {
            format!("{} (overdue)", fmt_time(expires))
        } else {
            fmt_time(expires)
        };
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{id}</td><td>{user}</td><td>{name}</td>\
             <td><span class=\"badge u-{status}\" title=\"{error}\">{status}</span></td>\
             <td class=\"num\">{progress}</td><td>{created}</td><td>{expiry}</td></tr>",
            id = row.get::<_, Uuid>(0),
            user = Esc(row.get::<_, &str>(1)),
            name = Esc(row.get::<_, &str>(2)),
            status = Esc(status),
            error = Esc(row.get::<_, Option<&str>>(8).unwrap_or_default()),
            created = fmt_time(row.get(6)),
        );
    }
    if rows.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"7\">No uploads yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    Ok(Page { title: "Uploads", section: Section::Uploads, session: Some(&session), body, script: None }
        .render(StatusCode::OK))
}

/// `GET /admin/files`
pub async fn files(State(state): State<SharedState>, session: AdminSession) -> Result<Response, UiError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT f.id, us.username, f.filename, f.size, f.md5, f.sha256, f.version, f.created_at, f.deleted_at
             FROM files f JOIN users us ON us.id = f.user_id ORDER BY f.created_at DESC LIMIT $1",
            &[&LIMIT],
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let replica_rows = client
        .query(
            "SELECT r.file_id, n.name, r.state, n.state FROM replicas r JOIN nodes n ON n.id = r.node_id
             WHERE r.file_id = ANY($1) ORDER BY n.name",
            &[&ids],
        )
        .await?;
    let mut replicas: HashMap<Uuid, Vec<String>> = HashMap::new();
    for r in &replica_rows {
        let node_state: &str = r.get(3);
        let node_note = if node_state == "active" { String::new() } else { format!(", node {node_state}") };
        let replica_state: &str = r.get(2);
        replicas.entry(r.get(0)).or_default().push(format!(
            "<span class=\"replica r-{state}\">{node} ({state}{note})</span>",
            node = Esc(r.get::<_, &str>(1)),
            state = Esc(replica_state),
            note = Esc(&node_note),
        ));
    }
    let mut body = format!(
        "<p>The {LIMIT} most recent files of every user, with where their replicas are.</p>\
         <table class=\"grid\" id=\"files\"><thead><tr><th>Id</th><th>User</th><th>Name</th>\
         <th class=\"num\">Size</th><th>md5</th><th>sha256</th><th>Replicas</th><th>Created</th></tr></thead><tbody>"
    );
    for row in &rows {
        let id: Uuid = row.get(0);
        let sha256: &str = row.get(5);
        let version: i32 = row.get(6);
        let deleted: Option<DateTime<Utc>> = row.get(8);
        let mut name = Esc(row.get::<_, &str>(2)).to_string();
        if version > 1 {
            let _ = write!(name, " <span class=\"sub\">v{version}</span>");
        }
        if let Some(at) = deleted {
            let _ = write!(name, " <span class=\"badge s-disabled\">deleted {}</span>", fmt_time(at));
        }
        let where_ = replicas.remove(&id).map(|r| r.join(" ")).unwrap_or_else(|| "none".into());
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{id}</td><td>{user}</td><td>{name}</td><td class=\"num\">{size}</td>\
             <td class=\"mono\">{md5}</td><td class=\"mono\" title=\"{sha}\">{sha_short}…</td>\
             <td>{where_}</td><td>{created}</td></tr>",
            user = Esc(row.get::<_, &str>(1)),
            size = fmt_bytes(row.get(3)),
            md5 = Esc(row.get::<_, &str>(4)),
            sha = Esc(sha256),
            sha_short = Esc(sha256.get(..16).unwrap_or(sha256)),
            created = fmt_time(row.get(7)),
        );
    }
    if rows.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"8\">No files yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    Ok(Page { title: "Files", section: Section::Files, session: Some(&session), body, script: None }
        .render(StatusCode::OK))
}
