//! Detail pages behind every id of the uploads and files lists: an upload with its
//! chunks, digests, job timeline and replicas (`/admin/uploads/{id}`), a file with its
//! versions and replicas (`/admin/files/{id}`).

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use ferry_shared::types::FileId;
use ferry_store::jobs::{self, Filter};
use ferry_store::{files, replicas, uploads, Client};

use super::storage::{expiry, progress};
use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{fmt_bytes, fmt_time, Esc, Page, Section};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

/// Chunks listed on an upload's page (a 64 GiB upload in 8 MiB chunks has 8192).
const MAX_CHUNKS: i64 = 500;
/// Jobs listed on an upload's page (its whole timeline, normally a handful).
const MAX_JOBS: i64 = 200;

fn parse_id(raw: &str, what: &'static str) -> Result<FileId, UiError> {
    raw.parse().map_err(|_| UiError::NotFound(what))
}

/// A `<dl>` of (term, already-escaped HTML) pairs.
pub(super) fn facts(rows: &[(&str, String)]) -> String {
    let mut html = "<dl class=\"facts\">".to_owned();
    for (term, value) in rows {
        let _ = write!(html, "<dt>{term}</dt><dd>{value}</dd>");
    }
    html.push_str("</dl>");
    html
}

async fn replicas_table(client: &Client, id: FileId) -> Result<String, UiError> {
    let rows = replicas::of_files(client, &[id]).await?;
    let mut html = "<table class=\"grid\" id=\"replicas\"><thead><tr><th>Node</th><th>State</th>\
                    <th class=\"num\">Attempts</th><th>Last error</th><th>Updated</th></tr></thead><tbody>"
        .to_owned();
    for r in &rows {
        let _ = write!(
            html,
            "<tr data-node=\"{name}\"><td><a href=\"/admin/nodes/{node}\">{name}</a> <span class=\"sub\">{node_state}</span></td>\
             <td><span class=\"badge r-{state}\">{state}</span></td><td class=\"num\">{attempts}</td>\
             <td class=\"error\">{error}</td><td>{updated}</td></tr>",
            node = r.node,
            name = Esc(&r.node_name),
            node_state = r.node_state,
            state = r.state.as_str(),
            attempts = r.attempts,
            error = Esc(r.last_error.as_deref().unwrap_or_default()),
            updated = fmt_time(r.updated_at),
        );
    }
    if rows.is_empty() {
        html.push_str("<tr class=\"empty\"><td colspan=\"5\">No replicas.</td></tr>");
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

async fn job_timeline(client: &Client, id: FileId) -> Result<String, UiError> {
    let filter = Filter { file: Some(id), include_discarded: true, ..Filter::default() };
    let rows = jobs::list(client, &filter, MAX_JOBS).await?;
    let ms = |v: Option<i64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "—".into());
    let mut html = format!(
        "<p><a href=\"/admin/jobs?upload={}\">On the jobs page</a> (replay and discard of dead letters, revoke of a waiting copy or check).</p>\
         <table class=\"grid\" id=\"timeline\"><thead><tr><th>Queued</th><th>Kind</th><th>State</th>\
         <th class=\"num\">Attempt</th><th class=\"num\">Node</th><th>Worker</th><th class=\"num\">Wait</th>\
         <th class=\"num\">Duration</th><th>Error</th></tr></thead><tbody>",
        id
    );
    for j in &rows {
        let _ = write!(
            html,
            "<tr data-job=\"{jid}\" data-state=\"{state}\"><td><a href=\"/admin/jobs/{jid}\">{queued}</a></td><td>{kind}</td>\
             <td><span class=\"badge j-{state}\">{state}</span></td><td class=\"num\">{attempt}</td>\
             <td class=\"num\">{node}</td><td class=\"mono\">{worker}</td><td class=\"num\">{wait}</td>\
             <td class=\"num\">{duration}</td><td class=\"error\">{error}</td></tr>",
            jid = j.id,
            queued = fmt_time(j.queued_at),
            kind = Esc(&j.kind),
            state = j.state,
            attempt = j.attempt,
            node = j.node.map(|n| format!("<a href=\"/admin/nodes/{n}\">{n}</a>")).unwrap_or_else(|| "—".into()),
            worker = Esc(j.worker.as_deref().unwrap_or("—")),
            wait = ms(j.wait_ms()),
            duration = ms(j.duration_ms()),
            error = Esc(j.error.as_deref().unwrap_or_default()),
        );
    }
    if rows.is_empty() {
        html.push_str("<tr class=\"empty\"><td colspan=\"9\">No job records (none yet, or pruned).</td></tr>");
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

/// `GET /admin/uploads/{id}`
pub async fn upload(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = parse_id(&id, "Upload")?;
    let client = state.pool.get().await?;
    let row = uploads::get_any(&client, id).await?.ok_or(UiError::NotFound("Upload"))?;
    let u = &row.upload;
    let file = files::get_any(&client, id).await?;
    let mut rows = vec![
        ("User", format!("<a href=\"/admin/uploads?user={0}\">{0}</a>", Esc(&row.username))),
        ("Filename", Esc(&u.filename).to_string()),
        ("State", format!("<span class=\"badge u-{0}\" id=\"upload-state\">{0}</span>", u.state.as_str())),
        ("Received", progress(u)),
        ("Created", fmt_time(u.created_at)),
        ("Completed", u.completed_at.map(fmt_time).unwrap_or_else(|| "—".into())),
        ("Expires", expiry(&row)),
        (
            "md5 sent by the client",
            row.md5
                .as_deref()
                .map(|m| format!("<span class=\"mono\">{}</span>", Esc(m)))
                .unwrap_or_else(|| "— (not completed yet)".into()),
        ),
    ];
    if let Some(error) = &u.error {
        rows.push(("Error", format!("<span class=\"error\">{}</span>", Esc(error))));
    }
    if let Some(parent) = u.parent {
        rows.push(("New version of", format!("<a class=\"mono\" href=\"/admin/files/{parent}\">{parent}</a>")));
    }
    match &file {
        Some(f) => {
            rows.push((
                "File",
                format!("<a class=\"mono\" href=\"/admin/files/{id}\">{id}</a> (version {})", f.file.version),
            ));
            rows.push(("Verified md5", format!("<span class=\"mono\">{}</span>", Esc(&f.file.md5))));
            rows.push(("sha256", format!("<span class=\"mono\">{}</span>", Esc(&f.file.sha256))));
        }
        None => rows.push(("File", "— (not verified yet)".into())),
    }
    let mut body = facts(&rows);
    let (count, chunks) = uploads::chunks(&client, id, MAX_CHUNKS).await?;
    let _ = write!(
        body,
        "<h2>Chunks</h2><p class=\"sub\">{count} accepted chunk(s){}.</p><table class=\"grid\" id=\"chunks\">\
         <thead><tr><th class=\"num\">Offset</th><th class=\"num\">Size</th><th>Received</th></tr></thead><tbody>",
        if count > MAX_CHUNKS { format!(", the first {MAX_CHUNKS} shown") } else { String::new() }
    );
    for c in &chunks {
        let _ = write!(
            body,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            c.offset.bytes(),
            fmt_bytes(c.size),
            fmt_time(c.received_at)
        );
    }
    body.push_str("</tbody></table><h2>Job timeline</h2>");
    body.push_str(&job_timeline(&client, id).await?);
    body.push_str("<h2>Replicas</h2>");
    body.push_str(&replicas_table(&client, id).await?);
    let title = format!("Upload {id}");
    Ok(Page::admin(&title, Section::Uploads, session.signed_in(), body).render(StatusCode::OK))
}

/// `GET /admin/files/{id}`
pub async fn file(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = parse_id(&id, "File")?;
    let client = state.pool.get().await?;
    let owned = files::get_any(&client, id).await?.ok_or(UiError::NotFound("File"))?;
    let f = &owned.file;
    let rows = [
        ("User", format!("<a href=\"/admin/files?user={0}\">{0}</a>", Esc(&owned.username))),
        ("Name", Esc(&f.filename).to_string()),
        ("Size", format!("{} ({} bytes)", fmt_bytes(f.size), f.size.bytes())),
        ("md5", format!("<span class=\"mono\">{}</span>", Esc(&f.md5))),
        ("sha256", format!("<span class=\"mono\">{}</span>", Esc(&f.sha256))),
        ("Created", fmt_time(f.created_at)),
        ("Deleted", f.deleted_at.map(fmt_time).unwrap_or_else(|| "no".into())),
        ("Upload", format!("<a class=\"mono\" href=\"/admin/uploads/{id}\">{id}</a> (chunks, job timeline)")),
    ];
    let mut body = facts(&rows);
    body.push_str(
        "<h2>Versions</h2><table class=\"grid\" id=\"versions\"><thead><tr><th class=\"num\">Version</th><th>Id</th>\
         <th>Name</th><th class=\"num\">Size</th><th>Created</th><th>Deleted</th></tr></thead><tbody>",
    );
    for v in files::chain_any(&client, f.parent.unwrap_or(id)).await? {
        let this = if v.file.id == id { " class=\"current\"" } else { "" };
        let _ = write!(
            body,
            "<tr{this}><td class=\"num\">{version}</td><td class=\"mono\"><a href=\"/admin/files/{vid}\">{vid}</a></td>\
             <td>{name}</td><td class=\"num\">{size}</td><td>{created}</td><td>{deleted}</td></tr>",
            version = v.file.version,
            vid = v.file.id,
            name = Esc(&v.file.filename),
            size = fmt_bytes(v.file.size),
            created = fmt_time(v.file.created_at),
            deleted = v.file.deleted_at.map(fmt_time).unwrap_or_else(|| "—".into()),
        );
    }
    body.push_str("</tbody></table><h2>Replicas</h2>");
    body.push_str(&replicas_table(&client, id).await?);
    let title = format!("File {}", f.filename);
    Ok(Page::admin(&title, Section::Files, session.signed_in(), body).render(StatusCode::OK))
}
