//! The workers page: the worker inventory (`ferry_store::workers`, what `ferry workers
//! ls` shows): id, host, pid, version, queues, concurrency, heartbeat and the jobs in
//! flight, each linked to its record.

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use ferry_store::workers::{self, WorkerRow};

use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{fmt_age, fmt_time, Esc, Page, Section, LIVE_RELOAD};
use crate::admin_ui::session::AdminSession;
use crate::routes::admin::AllQuery;
use crate::state::SharedState;

fn row(w: &WorkerRow) -> String {
    let in_flight: Vec<String> =
        w.in_flight.iter().map(|id| format!("<a class=\"mono\" href=\"/admin/jobs/{id}\">{id}</a>")).collect();
    let state = w.liveness();
    format!(
        "<tr data-worker=\"{id}\" data-state=\"{state}\"><td class=\"mono\">{id}</td>\
         <td><span class=\"badge w-{state}\">{state}</span></td><td>{host}</td><td class=\"num\">{pid}</td>\
         <td>{version}</td><td>{queues}</td><td class=\"num\">{concurrency}</td><td>{started}</td>\
         <td>{heartbeat}</td><td>{in_flight}</td></tr>",
        id = Esc(&w.id),
        host = Esc(&w.host),
        pid = w.pid,
        version = Esc(&w.version),
        queues = Esc(&w.queues.join(", ")),
        concurrency = w.concurrency,
        started = fmt_time(w.started_at),
        heartbeat = fmt_age(Duration::from_secs_f64(w.heartbeat_age_secs.max(0.0))),
        in_flight = match (in_flight.is_empty(), state) {
            (true, _) => "—".into(),
            (false, "running") => in_flight.join("<br>"),
            // What it last reported: its jobs go to other workers once the broker drops
            // its connection, and may be listed there too.
            (false, _) => format!("<span class=\"sub\">at its last heartbeat:</span><br>{}", in_flight.join("<br>")),
        },
    )
}

/// `GET /admin/workers[?all=true]`: without `all`, workers stopped or silent for over an
/// hour are left out, with a link to them.
pub async fn page(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let all = AllQuery::parse(query.as_deref()).map_err(|detail| UiError::Invalid(detail.into()))?;
    let client = state.pool.get().await?;
    let rows = workers::list(&client, all).await?;
    let older = if all { 0 } else { workers::count_older(&client).await? };
    let mut body = String::from(
        "<p>Every ferry-worker registers here and heartbeats every 5 s; one silent for 30 s is stale.</p>\
         <p class=\"live\">This page reloads every 5 s.</p>\
         <table class=\"grid\" id=\"workers\"><thead><tr><th>Id</th><th>State</th><th>Host</th>\
         <th class=\"num\">Pid</th><th>Version</th><th>Queues</th><th class=\"num\">Concurrency</th>\
         <th>Started</th><th>Heartbeat</th><th>In flight</th></tr></thead><tbody>",
    );
    for w in &rows {
        body.push_str(&row(w));
    }
    if rows.is_empty() {
        let _ = write!(body, "<tr class=\"empty\"><td colspan=\"10\">No worker has registered yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    if older > 0 {
        let _ = write!(
            body,
            "<p id=\"workers-older\">{older} worker(s) stopped or silent for over an hour not shown: \
             <a href=\"/admin/workers?all=true\">show all</a> (kept until pruned after jobs.retention_days).</p>"
        );
    }
    Ok(Page::admin("Workers", Section::Workers, session.signed_in(), body)
        .with_script(LIVE_RELOAD)
        .render(StatusCode::OK))
}
