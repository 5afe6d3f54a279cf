//! The queues page: depth, consumers, message rates and dead-letter counts of every
//! `ferry.*` queue, from the RabbitMQ management API, and the dead letters recorded in
//! PostgreSQL (the monitor moves every dead letter into its job record; `ferry dlq`).
//! It reloads itself every [`RELOAD_SECS`] and says when its figures were read and how
//! old the broker's own figures can be. The broker being unreachable is shown on the
//! page, never a failed page.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{notice, Esc, Page, Section};
use crate::admin_ui::rabbit::{self, QueueStats};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

/// The page reloads itself this often (seconds).
pub const RELOAD_SECS: u32 = 5;

/// Reloads the page every RELOAD_SECS (5 s): a constant script, allowed by the page's nonce.
const RELOAD: &str = "setTimeout(function () { window.location.reload(); }, 5000);";

fn rate(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn count(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "—".into())
}

/// The dead-letter notice: `recorded` dead job records (PostgreSQL).
fn dead_notice(recorded: i64) -> String {
    if recorded > 0 {
        notice("error", &format!("{recorded} dead letter(s) recorded: `ferry dlq ls` lists them with their reason."))
    } else {
        notice("ok", "No dead-lettered jobs.")
    }
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

/// `GET /admin/queues`
pub async fn page(State(state): State<SharedState>, session: AdminSession) -> Result<Response, UiError> {
    let link = rabbit::ui_url(&state.config.broker.management_url)
        .map(|url| {
            format!(
                " <a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\" id=\"rabbit-ui\">\
                 RabbitMQ management UI</a>",
                Esc(&url)
            )
        })
        .unwrap_or_default();
    let mut body = format!(
        "<p>Work queues, their retry tiers and dead-letter queues.{link}</p>\
         <p class=\"live\" id=\"queues-age\">Read from the RabbitMQ management API at {read} UTC; this page reloads \
         every {RELOAD_SECS} s. The broker's own counts and rates are sampled every 5 s (its \
         <code>collect_statistics_interval</code>), so they can be up to that much older; rates are per second \
         over the last sample.</p>",
        read = chrono::Utc::now().format("%H:%M:%S"),
    );
    let recorded = ferry_store::jobs::count_in_state(&state.pool.get().await?, ferry_store::JobState::Dead).await?;
    body.push_str(&dead_notice(recorded));
    match rabbit::queues(&state.config.broker).await {
        Ok(queues) => body.push_str(&table(&queues)),
        Err(error) => {
            tracing::warn!(%error, "RabbitMQ management API unreachable");
            body.push_str(&notice("error", &format!("RabbitMQ management API unreachable: {error}")));
        }
    }
    Ok(Page { title: "Queues", section: Section::Queues, session: Some(&session), body, script: Some(RELOAD) }
        .render(StatusCode::OK))
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
