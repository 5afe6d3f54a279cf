//! The uploads and files pages: the 100 most recent of each, every user's, with
//! upload progress and expiry, and each file's checksums and replicas by node.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use ferry_shared::types::FileId;
use ferry_store::search::{Paging, Search};
use ferry_store::{files, replicas, uploads, NodeState, UploadState};

use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{fmt_bytes, fmt_time, Esc, Page, Section};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

const LIMIT: i64 = 100;
const FIRST: Paging = Paging { limit: LIMIT, offset: 0 };

/// `GET /admin/uploads`
pub async fn uploads(State(state): State<SharedState>, session: AdminSession) -> Result<Response, UiError> {
    let (_, rows) = uploads::search(&state.pool.get().await?, &Search::default(), None, FIRST).await?;
    let mut body = format!(
        "<p>The {LIMIT} most recent uploads of every user.</p>\
         <table class=\"grid\" id=\"uploads\"><thead><tr><th>Id</th><th>User</th><th>Filename</th><th>State</th>\
         <th class=\"num\">Offset / total</th><th>Created</th><th>Expires</th></tr></thead><tbody>"
    );
    let now = Utc::now();
    for row in &rows {
        let upload = &row.upload;
        let status = upload.state.as_str();
        let offset = upload.offset;
        let expires = upload.expires_at;
        let progress = match upload.total_size {
            Some(total) if total.bytes() > 0 => format!(
                "{} / {} ({:.0} %)",
                fmt_bytes(offset),
                fmt_bytes(total),
                offset.bytes() as f64 * 100.0 / total.bytes() as f64
            ),
            Some(total) => format!("{} / {}", fmt_bytes(offset), fmt_bytes(total)),
            None => format!("{} / ?", fmt_bytes(offset)),
        };
        let expiry = if upload.state == UploadState::Uploading && expires < now {
            format!("{} (overdue)", fmt_time(expires))
        } else {
            fmt_time(expires)
        };
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{id}</td><td>{user}</td><td>{name}</td>\
             <td><span class=\"badge u-{status}\" title=\"{error}\">{status}</span></td>\
             <td class=\"num\">{progress}</td><td>{created}</td><td>{expiry}</td></tr>",
            id = upload.id,
            user = Esc(&row.username),
            name = Esc(&upload.filename),
            status = Esc(status),
            error = Esc(upload.error.as_deref().unwrap_or_default()),
            created = fmt_time(upload.created_at),
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
    let (_, rows) = files::search(&client, &Search::default(), None, FIRST).await?;
    let ids: Vec<FileId> = rows.iter().map(|r| r.file.id).collect();
    let mut by_file: HashMap<FileId, Vec<String>> = HashMap::new();
    for r in replicas::of_files(&client, &ids).await? {
        let node_note =
            if r.node_state == NodeState::Active { String::new() } else { format!(", node {}", r.node_state) };
        by_file.entry(r.file).or_default().push(format!(
            "<span class=\"replica r-{state}\">{node} ({state}{note})</span>",
            node = Esc(&r.node_name),
            state = Esc(r.state.as_str()),
            note = Esc(&node_note),
        ));
    }
    let mut body = format!(
        "<p>The {LIMIT} most recent files of every user, with where their replicas are.</p>\
         <table class=\"grid\" id=\"files\"><thead><tr><th>Id</th><th>User</th><th>Name</th>\
         <th class=\"num\">Size</th><th>md5</th><th>sha256</th><th>Replicas</th><th>Created</th></tr></thead><tbody>"
    );
    for row in &rows {
        let file = &row.file;
        let id = file.id;
        let sha256 = file.sha256.as_str();
        let version = file.version;
        let mut name = Esc(&file.filename).to_string();
        if version > 1 {
            let _ = write!(name, " <span class=\"sub\">v{version}</span>");
        }
        if let Some(at) = file.deleted_at {
            let _ = write!(name, " <span class=\"badge s-disabled\">deleted {}</span>", fmt_time(at));
        }
        let where_ = by_file.remove(&id).map(|r| r.join(" ")).unwrap_or_else(|| "none".into());
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{id}</td><td>{user}</td><td>{name}</td><td class=\"num\">{size}</td>\
             <td class=\"mono\">{md5}</td><td class=\"mono\" title=\"{sha}\">{sha_short}…</td>\
             <td>{where_}</td><td>{created}</td></tr>",
            user = Esc(&row.username),
            size = fmt_bytes(file.size),
            md5 = Esc(&file.md5),
            sha = Esc(sha256),
            sha_short = Esc(sha256.get(..16).unwrap_or(sha256)),
            created = fmt_time(file.created_at),
        );
    }
    if rows.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"8\">No files yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    Ok(Page { title: "Files", section: Section::Files, session: Some(&session), body, script: None }
        .render(StatusCode::OK))
}
