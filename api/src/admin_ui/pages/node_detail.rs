//! A node's page (`/admin/nodes/{id}`): its health now (last GOOD heartbeat beside the
//! last probe, why it is down), its up/down history with reasons, its free-space trend,
//! its replicas by state, removal (refused while it is active or holds replicas, with
//! the reason), and the edit form.

use std::fmt::Write as _;

use chrono::Utc;
use ferry_shared::types::ByteSize;
use ferry_store::node_status::{self, SpaceSample};
use ferry_store::nodes::{self, Overview};
use ferry_store::{Client, NodeState};

use crate::admin_ui::error::UiError;
use crate::admin_ui::html::{csrf_field, fmt_age, fmt_bytes, fmt_time, Esc};

/// Transitions shown.
const EVENTS: i64 = 50;
/// The trend's window: a day of samples (one per `SPACE_SAMPLE_SECS`).
const TREND_SECS: f64 = 86_400.0;

fn ago(t: chrono::DateTime<Utc>) -> String {
    format!("{} ({})", fmt_time(t), fmt_age((Utc::now() - t).to_std().unwrap_or_default()))
}

/// The shortest span a rate is given for: over a few minutes, one copy or cleanup
/// moves free space by more than a day's trend, and the projection would say "full in
/// about 0 days" (the operator trial of stop 31).
const MIN_TREND_SECS: i64 = 3600;

/// Free space now, and how it moved over the samples: `-1.2 GiB/day`, with when the
/// node fills at that rate. `current` is the last good probe's reading: newer than the
/// last sample (one is kept every 10 minutes), it is the end of the trend, so the
/// free space and the rate beside it never disagree.
pub fn trend(samples: &[SpaceSample], current: Option<SpaceSample>) -> String {
    let newer = current.filter(|c| samples.last().is_none_or(|last| c.at > last.at));
    let points: Vec<&SpaceSample> = samples.iter().chain(newer.as_ref()).collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return "no samples yet (one is kept every 10 minutes while the node is up)".into();
    };
    let seconds = (last.at - first.at).num_seconds();
    if points.len() < 2 || seconds <= 0 {
        return format!("{} free (one sample so far)", fmt_bytes(last.free_bytes));
    }
    if seconds < MIN_TREND_SECS {
        return format!(
            "{} free; {} samples over {} min, too short a span for a rate (it needs an hour)",
            fmt_bytes(last.free_bytes),
            points.len(),
            seconds / 60
        );
    }
    let hours = seconds as f64 / 3600.0;
    let delta = last.free_bytes.bytes() as f64 - first.free_bytes.bytes() as f64;
    let per_day = delta / hours * 24.0;
    let sign = if per_day < 0.0 { "−" } else { "+" };
    let mut text = format!(
        "{} free; {sign}{}/day over the last {hours:.1} h ({} samples)",
        fmt_bytes(last.free_bytes),
        fmt_bytes(ByteSize(per_day.abs() as u64)),
        points.len()
    );
    if per_day < 0.0 {
        let days = last.free_bytes.bytes() as f64 / -per_day;
        let _ = write!(text, "; full in about {days:.0} days at this rate");
    }
    text
}

/// The status, history, trend, replicas and removal sections (escaped HTML).
pub async fn sections(client: &Client, o: &Overview, csrf: &str) -> Result<String, UiError> {
    let (id, p) = (o.node.id, &o.probe);
    let health = match p.up {
        Some(true) => "<span class=\"badge h-up\">up</span>".to_owned(),
        Some(false) => format!(
            "<span class=\"badge h-down\">down</span> <span class=\"error\" id=\"down-reason\">{}</span>{}",
            Esc(p.error.as_deref().unwrap_or("no reason recorded")),
            p.down_since.map(|t| format!(" <span class=\"sub\">since {}</span>", ago(t))).unwrap_or_default()
        ),
        None => "<span class=\"badge\">unknown</span> (never probed)".to_owned(),
    };
    let health = match p.ssh_problem() {
        Some(problem) => format!("{health} <span class=\"error\" id=\"ssh-problem\">{}</span>", Esc(&problem)),
        None => health,
    };
    let health = match p.write_problem() {
        Some(problem) => format!("{health} <span class=\"error\" id=\"write-problem\">{}</span>", Esc(&problem)),
        None => health,
    };
    let counts = nodes::replica_counts(client, id).await?;
    let held: i64 = counts.iter().map(|(_, n)| n).sum();
    let replicas = if counts.is_empty() {
        "none".to_owned()
    } else {
        counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
    };
    let mut html = format!(
        "<dl class=\"facts\" id=\"node-status\"><dt>State</dt><dd><span class=\"badge s-{state}\">{state}</span></dd>\
         <dt>Health</dt><dd>{health}</dd>\
         <dt>Last good heartbeat</dt><dd id=\"last-good\">{good}</dd>\
         <dt>Last probe</dt><dd>{probe}</dd>\
         <dt>Space</dt><dd>{free} free of {total}</dd>\
         <dt>Replicas</dt><dd id=\"replica-counts\">{replicas}</dd></dl>",
        state = o.node.state,
        good = p.last_up_at.map(ago).unwrap_or_else(|| "never".into()),
        probe = p.checked_at.map(ago).unwrap_or_else(|| "never".into()),
        free = p.free.map(fmt_bytes).unwrap_or_else(|| "—".into()),
        total = p.total.map(fmt_bytes).unwrap_or_else(|| "—".into()),
    );
    // Removal: the store decides (and says why); the page says what to expect.
    html.push_str("<section class=\"card\" id=\"remove\"><h2>Remove</h2>");
    let hint = if o.node.state == NodeState::Active {
        "It is active: drain it first; once its replicas are 0 it can be removed.".to_owned()
    } else if held > 0 {
        format!("It still holds {held} replica(s); removal is refused until the drain has moved them all.")
    } else {
        "It holds no replica: removing it loses nothing.".to_owned()
    };
    let _ = write!(
        html,
        "<p>{}</p><form method=\"post\" action=\"/admin/nodes/{id}/remove\" class=\"inline\">{}\
         <button type=\"submit\" class=\"danger\" id=\"remove-node\">Remove node {}</button></form></section>",
        Esc(&hint),
        csrf_field(csrf),
        Esc(&o.node.name)
    );
    html.push_str(
        "<h2>Health history</h2><table class=\"grid\" id=\"events\"><thead><tr><th>When</th><th>Became</th>\
         <th>Reason</th></tr></thead><tbody>",
    );
    let events = node_status::events(client, id, EVENTS).await?;
    for e in &events {
        let became = if e.up { "up" } else { "down" };
        let _ = write!(
            html,
            "<tr data-up=\"{}\"><td>{}</td><td><span class=\"badge h-{became}\">{became}</span></td>\
             <td class=\"error\">{}</td></tr>",
            e.up,
            ago(e.at),
            Esc(e.reason.as_deref().unwrap_or_default())
        );
    }
    if events.is_empty() {
        html.push_str("<tr class=\"empty\"><td colspan=\"3\">No transitions recorded yet.</td></tr>");
    }
    let samples = node_status::space(client, id, TREND_SECS).await?;
    let current = match (p.last_up_at, p.free, p.total) {
        (Some(at), Some(free_bytes), Some(total_bytes)) => Some(SpaceSample { at, free_bytes, total_bytes }),
        _ => None,
    };
    let _ = write!(
        html,
        "</tbody></table><h2>Free space</h2><p id=\"space-trend\">{}</p>\
         <table class=\"grid\" id=\"space\"><thead><tr><th>At</th><th class=\"num\">Free</th>\
         <th class=\"num\">Total</th></tr></thead><tbody>",
        Esc(&trend(&samples, current))
    );
    // The latest dozen samples, newest first.
    for s in samples.iter().rev().take(12) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            fmt_time(s.at),
            fmt_bytes(s.free_bytes),
            fmt_bytes(s.total_bytes)
        );
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(hours_ago: i64, free_gib: u64) -> SpaceSample {
        SpaceSample {
            at: Utc::now() - chrono::Duration::hours(hours_ago),
            free_bytes: ByteSize(free_gib << 30),
            total_bytes: ByteSize(100 << 30),
        }
    }

    #[test]
    fn the_trend_says_the_rate_and_when_the_node_fills() {
        assert!(trend(&[], None).contains("no samples yet"));
        assert!(trend(&[sample(0, 10)], None).contains("one sample so far"));
        let text = trend(&[sample(12, 12), sample(0, 10)], None);
        assert!(text.starts_with("10.0 GiB free; −4.0 GiB/day over the last 12.0 h"), "{text}");
        assert!(text.contains("full in about 2 days"), "{text}");
        assert!(trend(&[sample(24, 10), sample(0, 11)], None).contains("+1.0 GiB/day"));
    }

    /// The operator trial of stop 31: "25.8 GiB free" above "2.7 GiB free; −742.8
    /// GiB/day ... full in about 0 days", from three samples over 20 minutes, the
    /// newest 7 minutes old, while the disk had been freed since.
    #[test]
    fn the_trend_ends_at_the_current_reading_and_needs_an_hour() {
        let minutes = |m: i64, gib: u64| SpaceSample {
            at: Utc::now() - chrono::Duration::minutes(m),
            free_bytes: ByteSize(gib << 30),
            total_bytes: ByteSize(100 << 30),
        };
        let text = trend(&[minutes(27, 10), minutes(17, 6), minutes(7, 3)], Some(minutes(0, 26)));
        assert!(text.starts_with("26.0 GiB free; 4 samples over 27 min, too short"), "{text}");
        assert!(!text.contains("full in"), "{text}");
        // Over an hour and more, the current reading is the trend's end.
        let text = trend(&[sample(12, 20), sample(6, 16)], Some(sample(0, 12)));
        assert!(text.starts_with("12.0 GiB free; −16.0 GiB/day over the last 12.0 h (3 samples)"), "{text}");
        // A reading no newer than the last sample adds nothing.
        assert_eq!(
            trend(&[sample(12, 12), sample(0, 10)], Some(sample(1, 50))),
            trend(&[sample(12, 12), sample(0, 10)], None)
        );
    }
}
