//! The uploads and files pages: every user's, filtered (user, name, id, dates, state)
//! and paged like `ferry uploads ls` / `ferry files ls` (`ferry_store::search`), each id
//! a link to its detail page (`detail.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use ferry_shared::types::FileId;
use ferry_store::{files, replicas, uploads, NodeState, UploadState};

use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{fmt_bytes, fmt_time, Esc, Page, Section};
use crate::admin_ui::listing::Listing;
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

/// `12.0 KiB / 1.0 MiB (1 %)`: an upload's progress.
pub fn progress(upload: &uploads::Upload) -> String {
    let offset = upload.offset;
    match upload.total_size {
        Some(total) if total.bytes() > 0 => format!(
            "{} / {} ({:.0} %)",
            fmt_bytes(offset),
            fmt_bytes(total),
            offset.bytes() as f64 * 100.0 / total.bytes() as f64
        ),
        Some(total) => format!("{} / {}", fmt_bytes(offset), fmt_bytes(total)),
        None => format!("{} / ?", fmt_bytes(offset)),
    }
}

/// When an open upload expires (marked when overdue); `—` once it is not open: a
/// completed upload's file is kept, a failed or expired one is over.
pub fn expiry(row: &uploads::Recent) -> String {
    match row.expires_at() {
        Some(at) if at < Utc::now() => format!("{} (overdue)", fmt_time(at)),
        Some(at) => fmt_time(at),
        None => "—".into(),
    }
}

/// `GET /admin/uploads?user=&name=&id=&from=&to=&state=&page=`
pub async fn uploads(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let l = Listing::parse(query.as_deref()).map_err(UiError::Invalid)?;
    let upload_state = l
        .state
        .as_deref()
        .map(|s| s.parse::<UploadState>().map_err(|_| UiError::Invalid(format!("Unknown upload state {s:?}."))))
        .transpose()?;
    let (total, rows) = uploads::search(&state.pool.get().await?, &l.search, upload_state, l.paging()).await?;
    let states: Vec<&str> = UploadState::ALL.iter().map(|s| s.as_str()).collect();
    let mut body = l.filter_form("/admin/uploads", "File name", &states, "");
    body.push_str(
        "<table class=\"grid\" id=\"uploads\"><thead><tr><th>Id</th><th>User</th><th>Filename</th><th>State</th>\
         <th class=\"num\">Offset / total</th><th>Created</th><th>Expires</th></tr></thead><tbody>",
    );
    for row in &rows {
        let upload = &row.upload;
        let status = upload.state.as_str();
        let _ = write!(
            body,
            "<tr data-upload=\"{id}\" data-state=\"{status}\" data-user=\"{user}\">\
             <td class=\"mono\"><a href=\"/admin/uploads/{id}\">{id}</a></td><td>{user}</td><td>{name}</td>\
             <td><span class=\"badge u-{status}\">{status}</span>{error}</td>\
             <td class=\"num\">{progress}</td><td>{created}</td><td class=\"c-expires\">{expiry}</td></tr>",
            id = upload.id,
            user = Esc(&row.username),
            name = Esc(&upload.filename),
            error = upload.error.as_deref().map(|e| format!("<div class=\"sub\">{}</div>", Esc(e))).unwrap_or_default(),
            progress = progress(upload),
            created = fmt_time(upload.created_at),
            expiry = expiry(row),
        );
    }
    if rows.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"7\">No uploads match.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&l.pager("/admin/uploads", total, rows.len()));
    Ok(Page::admin("Uploads", Section::Uploads, session.signed_in(), body).render(StatusCode::OK))
}

/// `<span class="replica">node1 (present)</span> ...` per file.
pub async fn replica_badges(
    client: &ferry_store::Client,
    ids: &[FileId],
) -> Result<HashMap<FileId, Vec<String>>, UiError> {
    let mut by_file: HashMap<FileId, Vec<String>> = HashMap::new();
    for r in replicas::of_files(client, ids).await? {
        let node_note =
            if r.node_state == NodeState::Active { String::new() } else { format!(", node {}", r.node_state) };
        by_file.entry(r.file).or_default().push(format!(
            "<span class=\"replica r-{state}\"><a href=\"/admin/nodes/{id}\">{node}</a> ({state}{note})</span>",
            id = r.node,
            node = Esc(&r.node_name),
            state = Esc(r.state.as_str()),
            note = Esc(&node_note),
        ));
    }
    Ok(by_file)
}

/// `GET /admin/files?user=&name=&id=&from=&to=&state=live|deleted&page=`
pub async fn files(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let l = Listing::parse(query.as_deref()).map_err(UiError::Invalid)?;
    let deleted = match l.state.as_deref() {
        None => None,
        Some("live") => Some(false),
        Some("deleted") => Some(true),
        Some(s) => return Err(UiError::Invalid(format!("Unknown file state {s:?} (live or deleted)."))),
    };
    let client = state.pool.get().await?;
    let (total, rows) = files::search(&client, &l.search, deleted, l.paging()).await?;
    let ids: Vec<FileId> = rows.iter().map(|r| r.file.id).collect();
    let mut by_file = replica_badges(&client, &ids).await?;
    let mut body = l.filter_form("/admin/files", "Name", &["live", "deleted"], "");
    body.push_str(
        "<table class=\"grid\" id=\"files\"><thead><tr><th>Id</th><th>User</th><th>Name</th>\
         <th class=\"num\">Size</th><th>md5</th><th>Replicas</th><th>Created</th></tr></thead><tbody>",
    );
    for row in &rows {
        let file = &row.file;
        let id = file.id;
        let mut name = Esc(&file.filename).to_string();
        if file.version > 1 {
            let _ = write!(name, " <span class=\"sub\">v{}</span>", file.version);
        }
        if let Some(at) = file.deleted_at {
            let _ = write!(name, " <span class=\"badge s-disabled\">deleted {}</span>", fmt_time(at));
        }
        let where_ = by_file.remove(&id).map(|r| r.join(" ")).unwrap_or_else(|| "none".into());
        let _ = write!(
            body,
            "<tr data-file=\"{id}\"><td class=\"mono\"><a href=\"/admin/files/{id}\">{id}</a></td><td>{user}</td>\
             <td>{name}</td><td class=\"num\">{size}</td><td class=\"mono\">{md5}</td><td>{where_}</td>\
             <td>{created}</td></tr>",
            user = Esc(&row.username),
            size = fmt_bytes(file.size),
            md5 = Esc(&file.md5),
            created = fmt_time(file.created_at),
        );
    }
    if rows.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"7\">No files match.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&l.pager("/admin/files", total, rows.len()));
    Ok(Page::admin("Files", Section::Files, session.signed_in(), body).render(StatusCode::OK))
}
