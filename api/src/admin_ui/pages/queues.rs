//! The queues page: each job kind with its consumption (pause and resume, the same
//! `ferry_store::pauses` rows `ferry queues pause|resume` writes, which the workers read
//! with every heartbeat), then depth, consumers, message rates and dead-letter counts of
//! every `ferry.*` queue, from the RabbitMQ management API, and the dead letters
//! recorded in PostgreSQL (the monitor moves every dead letter into its job record; the
//! Jobs page and `ferry dlq` list, replay and discard them). It reloads itself every
//! [`LIVE_RELOAD_SECS`] and says when its figures were read and how old the broker's
//! own figures can be. The broker being unreachable is shown on the page, never a
//! failed page.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_queue::management::{self as rabbit, fmt_rate as rate, QueueStats, STATS_INTERVAL_SECS};
use ferry_queue::JobKind;
use ferry_store::pauses::{self, Paused};

use crate::admin_ui::error::UiError;
use crate::admin_ui::form;
use crate::admin_ui::html::{csrf_field, fmt_time, notice, Esc, Page, Section, LIVE_RELOAD, LIVE_RELOAD_SECS};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

fn count(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "—".into())
}

/// The dead-letter notice: `recorded` dead job records (PostgreSQL), linked to the Jobs
/// page listing them with their reason, replay and discard.
fn dead_notice(recorded: i64) -> String {
    if recorded > 0 {
        format!(
            "<p class=\"notice error\" role=\"status\" id=\"dead-letters\">{recorded} dead letter(s) recorded: \
             <a href=\"/admin/jobs?state=dead\">see them with their reason</a> to replay or discard them \
             (or <code>ferry dlq ls</code>).</p>"
        )
    } else {
        notice("ok", "No dead-lettered jobs.")
    }
}

/// The job kinds with their consumption: consuming, or paused since when by whom,
/// each with its Pause or Resume button.
fn kinds_table(paused: &[Paused], csrf: &str) -> String {
    let mut html = String::from(
        "<table class=\"grid\" id=\"kinds\"><thead><tr><th>Kind</th><th>Queue</th><th>Consumption</th><th></th>\
         </tr></thead><tbody>",
    );
    for kind in JobKind::ALL {
        let key = kind.routing_key();
        let pause = paused.iter().find(|p| p.queue == key);
        let (state, action, label) = match pause {
            Some(p) => (
                format!(
                    "<span class=\"badge k-paused\">paused</span> since {} by {}",
                    fmt_time(p.paused_at),
                    Esc(&p.paused_by)
                ),
                "resume",
                "Resume",
            ),
            None => ("<span class=\"badge k-consuming\">consuming</span>".to_owned(), "pause", "Pause"),
        };
        let _ = write!(
            html,
            "<tr data-kind=\"{key}\" data-paused=\"{paused}\"><td>{key}</td><td class=\"mono\">{queue}</td>\
             <td class=\"c-consumption\">{state}</td><td><form method=\"post\" action=\"/admin/queues/{key}/{action}\" \
             class=\"inline\">{csrf}<button type=\"submit\" data-action=\"{action}\">{label}</button></form></td></tr>",
            paused = pause.is_some(),
            queue = kind.queue(),
            csrf = csrf_field(csrf),
        );
    }
    html.push_str("</tbody></table>");
    html
}

fn table(queues: &[QueueStats]) -> String {
    let ferry: Vec<&QueueStats> = queues.iter().filter(|q| q.name.starts_with("ferry.")).collect();
    let dead: i64 = ferry
        .iter()
        .filter(|q| q.name.ends_with(".dead"))
        .map(|q| q.messages_ready.unwrap_or(0) + q.messages_unacknowledged.unwrap_or(0))
        .sum();
    let mut html = if dead > 0 {
        notice("error", &format!("{dead} dead letter(s) not yet recorded by the monitor: see the *.dead queues below."))
    } else {
        String::new()
    };
    html.push_str(
        "<table class=\"grid\" id=\"queues\"><thead><tr><th>Queue</th><th class=\"num\">Ready</th>\
         <th class=\"num\">Unacked</th><th class=\"num\">Consumers</th><th class=\"num\">In /s</th>\
         <th class=\"num\">Delivered /s</th><th class=\"num\">Acked /s</th></tr></thead><tbody>",
    );
    for q in &ferry {
        let is_dead = q.name.ends_with(".dead");
        let has_dead = is_dead && q.messages_ready.unwrap_or(0) + q.messages_unacknowledged.unwrap_or(0) > 0;
        let class = match (is_dead, has_dead) {
            (_, true) => " class=\"dead alert\"",
            (true, false) => " class=\"dead\"",
            _ => "",
        };
        let (published, delivered, acked) = q.rates();
        let _ = write!(
            html,
            "<tr{class} data-queue=\"{name}\"><td class=\"mono\">{name}</td><td class=\"num\">{ready}</td>\
             <td class=\"num\">{unacked}</td><td class=\"num\">{consumers}</td><td class=\"num c-in\">{published}</td>\
             <td class=\"num c-out\">{delivered}</td><td class=\"num c-acked\">{acked}</td></tr>",
            published = rate(published),
            delivered = rate(delivered),
            acked = rate(acked),
            name = Esc(&q.name),
            ready = count(q.messages_ready),
            unacked = count(q.messages_unacknowledged),
            consumers = count(q.consumers),
        );
    }
    if ferry.is_empty() {
        html.push_str("<tr class=\"empty\"><td colspan=\"7\">No ferry.* queues (not declared yet).</td></tr>");
    }
    html.push_str("</tbody></table>");
    html
}

/// The notice after a pause or resume (`?done=paused&kind=replicate`).
fn done_notice(raw: Option<&str>) -> String {
    let pairs: Vec<(String, String)> = raw.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let Some(kind) = get("kind").and_then(|k| k.parse::<JobKind>().ok()) else {
        return String::new();
    };
    match get("done") {
        Some("paused") => notice(
            "ok",
            &format!("{} paused: workers stop taking its jobs within 5 s; its messages wait.", kind.queue()),
        ),
        Some("resumed") => notice("ok", &format!("{} resumed: workers take its jobs again.", kind.queue())),
        _ => String::new(),
    }
}

/// `GET /admin/queues`
pub async fn page(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let link = rabbit::ui_url(&state.config.broker.management_url)
        .map(|url| {
            format!(
                " <a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\" id=\"rabbit-ui\">\
                 RabbitMQ management UI</a>",
                Esc(&url)
            )
        })
        .unwrap_or_default();
    let client = state.pool.get().await?;
    let paused = pauses::list(&client).await?;
    let recorded = ferry_store::jobs::count_in_state(&client, ferry_store::JobState::Dead).await?;
    drop(client);
    let mut body = done_notice(raw.as_deref());
    body.push_str(&dead_notice(recorded));
    let _ = write!(
        body,
        "<h2>Job kinds</h2><p>A paused kind keeps its messages; workers stop taking new ones within 5 s \
         (their heartbeat) and finish those they hold. The same as <code>ferry queues pause|resume</code>.</p>{}\
         <h2>Queues</h2><p>Work queues, their retry tiers and dead-letter queues.{link}</p>\
         <p class=\"live\" id=\"queues-age\">Read from the RabbitMQ management API at {read} UTC; this page reloads \
         every {LIVE_RELOAD_SECS} s. The broker's own counts and rates are sampled every {STATS_INTERVAL_SECS} s \
         (its <code>collect_statistics_interval</code>), so they can be up to that much older; rates are per second \
         over the last sample.</p>",
        kinds_table(&paused, &session.csrf),
        read = chrono::Utc::now().format("%H:%M:%S"),
    );
    match rabbit::queues(&state.config.broker).await {
        Ok(queues) => body.push_str(&table(&queues)),
        Err(error) => {
            tracing::warn!(%error, "RabbitMQ management API unreachable");
            body.push_str(&notice("error", &format!("RabbitMQ management API unreachable: {error}")));
        }
    }
    Ok(Page::admin("Queues", Section::Queues, session.signed_in(), body)
        .with_script(LIVE_RELOAD)
        .render(StatusCode::OK))
}

/// `POST /admin/queues/{kind}/pause` and `POST /admin/queues/{kind}/resume`: what
/// `ferry queues pause|resume` does (a `paused_queues` row, read by every worker with
/// its heartbeat), recorded as paused by `<admin> (admin page)`.
pub async fn act(
    State(state): State<SharedState>,
    session: AdminSession,
    Path((kind, action)): Path<(String, String)>,
    body: Body,
) -> Result<Response, UiError> {
    let kind: JobKind = kind.parse().map_err(|_| UiError::NotFound("Job kind"))?;
    if !["pause", "resume"].contains(&action.as_str()) {
        return Err(UiError::NotFound("Action"));
    }
    form::read_checked(&state, &session, body).await?;
    let client = state.pool.get().await?;
    let key = kind.routing_key();
    let (acted, done, refusal) = if action == "pause" {
        let by = format!("{} (admin page)", session.username);
        (pauses::pause(&client, key, &by).await?, "paused", "is paused already")
    } else {
        (pauses::resume(&client, key).await?, "resumed", "is not paused")
    };
    if !acted {
        return Err(UiError::Conflict(format!("{} {refusal}.", kind.queue())));
    }
    tracing::info!(queue = %kind.queue(), action, admin = %session.username, "queue consumption changed from the admin page");
    Ok(Redirect::to(&format!("/admin/queues?done={done}&kind={key}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, ready: i64) -> QueueStats {
        QueueStats {
            name: name.into(),
            messages_ready: Some(ready),
            messages_unacknowledged: Some(0),
            consumers: None,
            message_stats: None,
        }
    }

    #[test]
    fn shows_ferry_queues_and_highlights_dead_letters() {
        let html = table(&[
            q("amq.gen-x", 5),
            q("ferry.assemble", 2),
            q("ferry.replicate.dead", 8),
            q("ferry.delete.dead", 0),
        ]);
        assert!(!html.contains("amq.gen-x"));
        assert!(html.contains("8 dead letter(s) not yet recorded"));
        assert!(html.contains("<tr class=\"dead alert\" data-queue=\"ferry.replicate.dead\">"));
        assert!(html.contains("<tr class=\"dead\" data-queue=\"ferry.delete.dead\">"));
        assert!(html.contains("<td class=\"num\">—</td>"));
        assert!(!table(&[q("ferry.assemble.dead", 0)]).contains("dead letter"));
        assert!(dead_notice(0).contains("No dead-lettered jobs."));
        assert!(dead_notice(3).contains("3 dead letter(s) recorded"));
        assert!(dead_notice(3).contains("href=\"/admin/jobs?state=dead\""));
    }

    #[test]
    fn every_kind_is_listed_with_pause_or_resume() {
        let paused =
            [Paused { queue: "replicate".into(), paused_at: chrono::Utc::now(), paused_by: "<b> (admin page)".into() }];
        let html = kinds_table(&paused, "tok");
        for kind in JobKind::ALL {
            assert!(html.contains(&format!("data-kind=\"{}\"", kind.routing_key())), "{html}");
        }
        assert!(html.contains("<tr data-kind=\"replicate\" data-paused=\"true\">"));
        assert!(html.contains("action=\"/admin/queues/replicate/resume\""));
        assert!(html.contains("<tr data-kind=\"assemble\" data-paused=\"false\">"));
        assert!(html.contains("action=\"/admin/queues/assemble/pause\""));
        assert!(html.contains("by &lt;b&gt; (admin page)") && !html.contains("<b>"));
        assert_eq!(html.matches("name=\"csrf\" value=\"tok\"").count(), JobKind::ALL.len());
    }

    #[test]
    fn the_notice_names_the_queue_paused_or_resumed() {
        assert!(done_notice(Some("done=paused&kind=replicate")).contains("ferry.replicate paused"));
        assert!(done_notice(Some("done=resumed&kind=scrub")).contains("ferry.scrub resumed"));
        assert_eq!(done_notice(Some("done=paused&kind=<b>")), "");
        assert_eq!(done_notice(None), "");
    }

    #[test]
    fn rates_are_read_from_the_management_api_and_shown() {
        let stats: QueueStats = serde_json::from_value(serde_json::json!({
            "name": "ferry.replicate", "messages_ready": 3,
            "message_stats": {"publish_details": {"rate": 12.4}, "ack_details": {"rate": 0.5}}
        }))
        .expect("queue");
        assert_eq!(stats.rates(), (12.4, 0.0, 0.5));
        let html = table(&[stats]);
        assert!(html.contains("<td class=\"num c-in\">12</td>") && html.contains("<td class=\"num c-acked\">0.5</td>"));
    }
}
