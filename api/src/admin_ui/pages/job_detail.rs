//! A job's page (`/admin/jobs/{id}`, behind every job id): its whole record as `ferry
//! jobs show` prints it (kind, queue, state, attempt, upload, node, worker, times, wait
//! and duration, the error or dead-letter reason, re-enqueues, replays, discarding),
//! its attempts that did not succeed (each with its worker, times and error), its
//! message body, and Replay and Discard while it is a dead letter (both come back here).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::fmt::Write;

use ferry_store::jobs::{self, Attempt, JobDetail};
use ferry_store::JobState;

use super::detail::facts;
use super::jobs::{done_notice, done_param, job_actions, millis, notes, parse_id};
use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{fmt_time, Esc, Page, Section};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

fn body(detail: &JobDetail, csrf: &str) -> String {
    let job = &detail.record;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(fmt_time).unwrap_or_else(|| "—".into());
    let rows = [
        ("Kind", Esc(&job.kind).to_string()),
        ("Queue", format!("<span class=\"mono\">ferry.{}</span>", Esc(&job.queue))),
        (
            "State",
            format!(
                "<span class=\"badge j-{0}\" id=\"job-state\">{0}</span> since {1}",
                job.state,
                fmt_time(job.state_at)
            ),
        ),
        ("Attempt", format!("<span id=\"job-attempt\">{}</span>", Esc(&job.attempt_text(chrono::Utc::now())))),
        (
            "Upload",
            format!(
                "<a class=\"mono\" href=\"/admin/uploads/{0}\">{0}</a> \
                 <a href=\"/admin/jobs?upload={0}\" class=\"sub\">its jobs</a>",
                job.file
            ),
        ),
        ("Node", job.node.map(|n| format!("<a href=\"/admin/nodes/{n}\">{n}</a>")).unwrap_or_else(|| "—".into())),
        ("Worker", format!("<span class=\"mono\">{}</span>", Esc(job.worker.as_deref().unwrap_or("—")))),
        ("Queued", fmt_time(job.queued_at)),
        ("Started", time(job.started_at)),
        ("Finished", time(job.finished_at)),
        ("Wait (queued to started)", millis(job.wait_ms())),
        ("Duration", millis(job.duration_ms())),
        (
            "Error",
            match (job.state, job.shown_error()) {
                // A done job's earlier error is history, not a failure.
                (JobState::Done, Some(e)) => format!("<span id=\"job-error\">{}</span>", Esc(&e)),
                (_, Some(e)) => format!("<span class=\"error\" id=\"job-error\">{}</span>", Esc(&e)),
                (_, None) => "—".into(),
            },
        ),
        ("Notes", Esc(&notes(job)).to_string()),
    ];
    let payload = serde_json::to_string_pretty(&job.payload).unwrap_or_default();
    let actions = job_actions(job, csrf);
    let actions = match (actions.is_empty(), job.state) {
        (true, _) => String::new(),
        (false, JobState::Dead) => format!(
            "<div id=\"job-actions\" class=\"notice error\">A dead letter: fix its cause, then replay it (same job \
             id) or discard it. {actions}</div>"
        ),
        (false, _) => format!(
            "<div id=\"job-actions\" class=\"notice\">This job waits for a worker. Revoked, it never runs (a \
             copy's replica is failed and the repair places the copy again where it can). {actions}</div>"
        ),
    };
    format!(
        "{actions}{}{}<h2>Message</h2><pre class=\"mono\" id=\"job-payload\">{}</pre>",
        facts(&rows),
        attempts(&detail.attempts),
        Esc(&payload)
    )
}

/// The attempts that did not succeed, oldest first (`job_attempts`).
fn attempts(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "<h2>Attempts that did not succeed</h2><p class=\"sub\" id=\"job-attempts\">None.</p>".into();
    }
    let mut html = String::from(
        "<h2>Attempts that did not succeed</h2><table class=\"grid\" id=\"job-attempts\"><thead><tr>\
         <th class=\"num\">Run</th><th class=\"num\">Attempt</th><th>Outcome</th><th>Worker</th><th>Started</th>\
         <th>Ended</th><th>Error</th></tr></thead><tbody>",
    );
    for a in attempts {
        let _ = write!(
            html,
            "<tr data-outcome=\"{outcome}\"><td class=\"num\">{run}</td><td class=\"num\">{attempt}</td>\
             <td><span class=\"badge j-{badge}\">{outcome}</span></td><td class=\"mono\">{worker}</td>\
             <td>{started}</td><td>{ended}</td><td class=\"error\">{error}</td></tr>",
            outcome = a.outcome,
            badge = if a.outcome == ferry_store::AttemptOutcome::Failed { "retrying" } else { "dead" },
            run = if a.replay == 0 { "first".to_owned() } else { format!("replay {}", a.replay) },
            attempt = a.attempt,
            worker = Esc(a.worker.as_deref().unwrap_or("—")),
            started = a.started_at.map(fmt_time).unwrap_or_else(|| "—".into()),
            ended = fmt_time(a.ended_at),
            error = Esc(a.error.as_deref().unwrap_or("—")),
        );
    }
    html.push_str("</tbody></table>");
    html
}

/// `GET /admin/jobs/{id}` (`?done=replayed|discarded` after those actions: a notice
/// above the record).
pub async fn page(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let id = parse_id(&id)?;
    let job = jobs::detail(&state.pool.get().await?, id).await?.ok_or(UiError::NotFound("Job"))?;
    let title = format!("Job {id}");
    let body = done_notice(done_param(raw.as_deref()).as_deref()) + &body(&job, &session.csrf);
    Ok(Page::admin(&title, Section::Jobs, session.signed_in(), body).render(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::jobs::JobRecord;
    use ferry_store::JobState;
    use uuid::Uuid;

    fn job(state: JobState) -> JobRecord {
        JobRecord {
            id: Uuid::new_v4(),
            kind: "replicate".into(),
            queue: "replicate".into(),
            payload: serde_json::json!({"job": "replicate", "file": "f", "node": 2, "x": "</pre><b>"}),
            file: Uuid::new_v4(),
            node: Some(2),
            state,
            attempt: 0,
            worker: Some("vm:42".into()),
            queued_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            state_at: chrono::Utc::now(),
            error: Some("node 2 is <disabled>".into()),
            requeues: 0,
            replays: 1,
            replayed_at: Some(chrono::Utc::now()),
            discarded_at: None,
            retry_at: None,
            max_attempts: Some(8),
        }
    }

    fn detail(record: JobRecord, attempts: Vec<Attempt>) -> JobDetail {
        JobDetail { record, attempts }
    }

    #[test]
    fn shows_the_record_and_offers_replay_only_for_a_dead_letter() {
        let dead = job(JobState::Dead);
        let failed = Attempt {
            replay: 0,
            attempt: 0,
            worker: Some("vm:<41>".into()),
            started_at: Some(chrono::Utc::now()),
            ended_at: chrono::Utc::now(),
            outcome: ferry_store::AttemptOutcome::Failed,
            error: Some("rsync exited <12>".into()),
        };
        let html = body(&detail(dead.clone(), vec![failed]), "tok");
        assert!(html.contains("<table class=\"grid\" id=\"job-attempts\">"), "{html}");
        assert!(html.contains("<tr data-outcome=\"failed\"><td class=\"num\">first</td><td class=\"num\">0</td>"));
        assert!(html.contains("vm:&lt;41&gt;") && html.contains("rsync exited &lt;12&gt;"), "{html}");
        assert!(html.contains("<span class=\"badge j-dead\" id=\"job-state\">dead</span>"), "{html}");
        assert!(html.contains("<span class=\"error\" id=\"job-error\">node 2 is &lt;disabled&gt;</span>"));
        assert!(html.contains(&format!("action=\"/admin/jobs/{}/replay\"", dead.id)));
        assert!(html.contains("replayed 1×"));
        assert!(html.contains("<a href=\"/admin/nodes/2\">2</a>"));
        assert!(html.contains("&quot;node&quot;: 2") && html.contains("&lt;/pre&gt;&lt;b&gt;"), "{html}");
        let done = body(&detail(job(JobState::Done), Vec::new()), "tok");
        assert!(done.contains("<p class=\"sub\" id=\"job-attempts\">None.</p>"), "{done}");
        assert!(!done.contains("/replay") && !done.contains("job-actions"));
        assert!(html.contains("<span id=\"job-attempt\">0 (from 0; 8 allowed)</span>"), "{html}");
        // Retrying: which attempt comes next, and when.
        let at = chrono::Utc::now() + chrono::Duration::seconds(100);
        let retrying = JobRecord { attempt: 3, retry_at: Some(at), ..job(JobState::Retrying) };
        let html = body(&detail(retrying, Vec::new()), "tok");
        let next = format!("<span id=\"job-attempt\">retry 3 of 7 at {}, in ", at.format("%T UTC"));
        assert!(html.contains(&next), "{html}");
        // A replayed job that then succeeded: its dead letter's reason is history.
        assert!(
            done.contains("<span id=\"job-error\">before it succeeded: node 2 is &lt;disabled&gt;</span>"),
            "{done}"
        );
    }
}
