//! The jobs page: job records filtered by upload, state and kind (an upload's jobs are
//! its timeline, oldest first), with replay and discard for dead letters and revoke for
//! a copy or check that waits. Records and actions are `ferry_store::jobs`, the same the
//! `ferry jobs` and `ferry dlq` commands use.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_store::jobs::{self, Filter, JobRecord};
use ferry_store::JobState;
use uuid::Uuid;

use crate::admin_ui::error::UiError;
use crate::admin_ui::form;
use crate::admin_ui::html::{csrf_field, fmt_time, notice, Esc, Page, Section, LIVE_RELOAD, LIVE_RELOAD_SECS};
use crate::admin_ui::listing::Listing;
use crate::admin_ui::session::AdminSession;
use crate::job_ops::{self, Acted, JobAction};
use crate::state::SharedState;

/// The page's query: the listing filters (`upload`, `state`, `kind`, `user`, `name`,
/// `id`, `from`, `to`, `page`) and `done` after an action.
#[derive(Debug, Default, PartialEq)]
struct Query {
    listing: Listing,
    /// The listing as the store's job filter (its state and kind checked).
    filter: Filter,
    done: Option<String>,
}

fn parse_query(raw: Option<&str>) -> Result<Query, UiError> {
    let listing = Listing::parse(raw).map_err(UiError::Invalid)?;
    let filter = job_ops::filter(&listing).map_err(UiError::Invalid)?;
    Ok(Query { listing, filter, done: done_param(raw) })
}

/// The `done` parameter an action's redirect adds (`replayed`, `discarded`), if any:
/// of the jobs list's query and of a job page's.
pub(super) fn done_param(raw: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = raw.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    pairs.into_iter().find(|(k, v)| k == "done" && !v.is_empty()).map(|(_, v)| v)
}

/// `850 ms`, `4.0 s`, or `—` when unknown.
pub(super) fn millis(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
        None => "—".into(),
    }
}

fn filter_form(q: &Query) -> String {
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    let mut kinds = "<label>Kind <select name=\"kind\" id=\"filter-kind\"><option value=\"\">any</option>".to_owned();
    for kind in ferry_queue::Job::NAMES {
        let selected = if q.listing.kind.as_deref() == Some(kind) { " selected" } else { "" };
        let _ = write!(kinds, "<option{selected}>{}</option>", Esc(kind));
    }
    let _ = write!(
        kinds,
        "</select></label><label>Upload <input name=\"upload\" size=\"38\" value=\"{}\"></label>",
        q.listing.upload.map(|u| u.to_string()).unwrap_or_default()
    );
    q.listing.filter_form("/admin/jobs", "File name", &states, &kinds)
}

/// Replay and Discard of a dead letter, Revoke of a copy or check that waits (nothing
/// for any other job).
pub(super) fn job_actions(job: &JobRecord, csrf: &str) -> String {
    let waits = matches!(job.state, JobState::Queued | JobState::Retrying);
    if waits && jobs::REVOCABLE_KINDS.contains(&job.kind.as_str()) {
        return format!(
            "<form method=\"post\" action=\"/admin/jobs/{id}/revoke\" class=\"inline\">{csrf}\
             <button type=\"submit\" class=\"link revoke\">Revoke</button></form>",
            id = job.id,
            csrf = csrf_field(csrf),
        );
    }
    if job.state != JobState::Dead {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"/admin/jobs/{id}/replay\" class=\"inline\">{csrf}\
         <button type=\"submit\" class=\"replay\">Replay</button></form> \
         <form method=\"post\" action=\"/admin/jobs/{id}/discard\" class=\"inline\">{csrf}\
         <button type=\"submit\" class=\"link discard\">Discard</button></form>",
        id = job.id,
        csrf = csrf_field(csrf),
    )
}

/// What happened to a job besides its runs: re-enqueues, replays, discarding.
pub(super) fn notes(job: &JobRecord) -> String {
    let mut notes = Vec::new();
    if job.requeues > 0 {
        notes.push(format!("re-enqueued {}×", job.requeues));
    }
    if let Some(at) = job.replayed_at {
        notes.push(format!("replayed {}× (last {})", job.replays, fmt_time(at)));
    }
    if let Some(at) = job.discarded_at {
        notes.push(format!("discarded {}", fmt_time(at)));
    }
    if job.retry_at.is_some() {
        notes.push(job.attempt_text(chrono::Utc::now()));
    }
    notes.join("; ")
}

fn row(job: &JobRecord, csrf: &str) -> String {
    let actions = job_actions(job, csrf);
    format!(
        "<tr data-job=\"{id}\" data-state=\"{state}\"><td>{queued}</td>\
         <td class=\"mono\"><a href=\"/admin/jobs/{id}\" class=\"job-id\">{id}</a></td><td>{kind}</td>\
         <td><span class=\"badge j-{state}\">{state}</span></td><td class=\"num\">{attempt}</td>\
         <td class=\"mono\"><a href=\"/admin/jobs?upload={file}\">{file}</a> \
         <a href=\"/admin/uploads/{file}\" class=\"sub\">upload</a></td><td class=\"num\">{node}</td>\
         <td class=\"mono\">{worker}</td><td class=\"num\">{wait}</td><td class=\"num\">{duration}</td>\
         <td class=\"error\">{error}</td><td>{notes}</td><td>{actions}</td></tr>",
        id = job.id,
        queued = fmt_time(job.queued_at),
        kind = Esc(&job.kind),
        state = job.state,
        attempt = job.attempt,
        file = job.file,
        node = job.node.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
        worker = Esc(job.worker.as_deref().unwrap_or("—")),
        wait = millis(job.wait_ms()),
        duration = millis(job.duration_ms()),
        error = Esc(&job.shown_error().unwrap_or_default()),
        notes = Esc(&notes(job)),
    )
}

/// `GET /admin/jobs`
pub async fn page(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let q = parse_query(raw.as_deref())?;
    let client = state.pool.get().await?;
    let rows = jobs::list(&client, &q.filter, q.listing.per_page).await?;
    let total = jobs::count(&client, &q.filter).await?;
    let mut body = done_notice(q.done.as_deref());
    let intro = match q.listing.upload {
        Some(upload) => {
            format!("The jobs of upload <a class=\"mono\" href=\"/admin/uploads/{upload}\">{upload}</a>, oldest first.")
        }
        None => "Jobs matching the filters, newest first (user and name are the upload's).".to_owned(),
    };
    let _ = write!(
        body,
        "<p>{intro} Dead letters can be replayed (same job id) or discarded.</p>\
         <p class=\"live\">This page reloads every {LIVE_RELOAD_SECS} s (not while you type in a filter).</p>{}\
         <table class=\"grid\" id=\"jobs\"><thead><tr><th>Queued</th><th>Id</th><th>Kind</th><th>State</th>\
         <th class=\"num\">Attempt</th><th>Upload</th><th class=\"num\">Node</th><th>Worker</th>\
         <th class=\"num\">Wait</th><th class=\"num\">Duration</th><th>Error</th><th>Notes</th><th></th>\
         </tr></thead><tbody>",
        filter_form(&q)
    );
    let pager = q.listing.pager("/admin/jobs", total, rows.len());
    for job in &rows {
        body.push_str(&row(job, &session.csrf));
    }
    if rows.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"13\">No jobs match.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&pager);
    Ok(Page::admin("Jobs", Section::Jobs, session.signed_in(), body).with_script(LIVE_RELOAD).render(StatusCode::OK))
}

/// The notice after a dead letter's Replay or Discard (`done=replayed|discarded`);
/// empty for anything else.
pub(super) fn done_notice(done: Option<&str>) -> String {
    match done {
        Some("replayed") => notice("ok", "Replayed: the job is back in its queue under its own id."),
        Some("discarded") => notice("ok", "Discarded: the dead letter is cancelled and will not run."),
        Some("revoked") => notice(
            "ok",
            "Revoked: the job is cancelled and will not run; a revoked copy's replica is failed, and the monitor's \
             repair places the copy again where it can.",
        ),
        _ => String::new(),
    }
}

/// A job id from the path; anything else is a 404 (no such job).
pub(super) fn parse_id(raw: &str) -> Result<Uuid, UiError> {
    raw.parse().map_err(|_| UiError::NotFound("Job"))
}

/// `POST /admin/jobs/{id}/replay` (a dead letter back in its queue: outbox, same id),
/// `POST /admin/jobs/{id}/discard` (a dead letter cancelled for good) and
/// `POST /admin/jobs/{id}/revoke` (a copy or check that waits, cancelled before it runs
/// again); each redirects to the job's page, which shows what became of it.
pub async fn act(
    State(state): State<SharedState>,
    session: AdminSession,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> Result<Response, UiError> {
    let id = parse_id(&id)?;
    form::read_checked(&state, &session, body).await?;
    let action = JobAction::parse(&action).ok_or(UiError::NotFound("Action"))?;
    let by = format!("{}, from the admin page", session.username);
    match action.apply(&state, id, &by).await? {
        Acted::Done => {}
        Acted::NotDeadLetter => return Err(UiError::Conflict("That job is not a dead letter (any more).".into())),
        Acted::FileDeleted => return Err(UiError::Conflict(job_ops::FILE_DELETED.into())),
        Acted::Unknown => return Err(UiError::NotFound("Job")),
        Acted::NotRevoked(detail) => return Err(UiError::Conflict(detail)),
    }
    tracing::info!(job.id = %id, ?action, admin = %session.username, "job steered from the admin page");
    Ok(Redirect::to(&format!("/admin/jobs/{id}?done={}", action.done())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_parsed_and_checked() {
        let id = Uuid::new_v4();
        let q = parse_query(Some(&format!("upload={id}&state=dead&kind=replicate&done=replayed"))).expect("query");
        assert_eq!(q.listing.upload, Some(id));
        assert_eq!(q.filter.state, Some(JobState::Dead));
        assert_eq!(q.listing.kind.as_deref(), Some("replicate"));
        assert_eq!(q.done.as_deref(), Some("replayed"));
        assert_eq!(parse_query(Some("upload=&state=&kind=")).expect("blank"), parse_query(None).expect("none"));
        assert!(matches!(parse_query(Some("upload=x")), Err(UiError::Invalid(_))));
        assert!(matches!(parse_query(Some("state=running")), Err(UiError::Invalid(_))));
        assert!(matches!(parse_query(Some("kind=<b>")), Err(UiError::Invalid(_))));
    }

    #[test]
    fn dead_rows_get_actions_and_everything_is_escaped() {
        let job = JobRecord {
            id: Uuid::new_v4(),
            kind: "replicate".into(),
            queue: "replicate".into(),
            payload: serde_json::json!({}),
            file: Uuid::new_v4(),
            node: Some(2),
            state: JobState::Dead,
            attempt: 3,
            worker: Some("h:1".into()),
            queued_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            state_at: chrono::Utc::now(),
            error: Some("<script>".into()),
            requeues: 0,
            replays: 0,
            replayed_at: None,
            discarded_at: None,
            retry_at: None,
            max_attempts: None,
        };
        let html = row(&job, "tok");
        assert!(html.contains(&format!("action=\"/admin/jobs/{}/replay\"", job.id)));
        assert!(html.contains(&format!("<a href=\"/admin/jobs/{0}\" class=\"job-id\">{0}</a>", job.id)));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        let done = JobRecord { state: JobState::Done, ..job };
        assert!(!row(&done, "tok").contains("replay"));
    }
}
