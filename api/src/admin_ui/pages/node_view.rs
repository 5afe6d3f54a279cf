//! Nodes as the admin page shows them: the database row, this API replica's latest
//! heartbeat (falling back to the monitor's last `node_status`), and display strings
//! computed once here for both the server-rendered table and its live JSON.

use std::fmt::Write as _;
use std::time::Duration;

use ferry_shared::types::ByteSize;
use ferry_store::nodes::Overview;
use serde::Serialize;

use crate::admin_ui::html::{csrf_field, fmt_age, fmt_bytes, Esc};
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct NodeView {
    pub id: i32,
    pub name: String,
    pub state: String,
    /// `up`, `down` or `unknown` (never heard of).
    pub health: &'static str,
    pub free_bytes: Option<ByteSize>,
    pub total_bytes: Option<ByteSize>,
    pub free: String,
    pub total: String,
    /// Age of the last GOOD heartbeat (a probe that found the node up), `never` if none:
    /// a down node's probes keep coming, and their age says nothing about the node.
    pub heartbeat: String,
    /// Why it is down; while it is up, that its sshd did not answer the monitor's last
    /// checks (new copies to it fail). `None` when all is well.
    pub down_reason: Option<String>,
    /// `since 3 min ago` while down.
    pub down_since: Option<String>,
    pub replicas: i64,
    pub ssh: String,
    pub public_url: String,
    pub region: String,
    pub last_error: Option<String>,
}

impl NodeView {
    pub fn new(state: &AppState, o: &Overview) -> NodeView {
        let id = o.node.id;
        let beat = state.heartbeats.latest(id);
        let checked_at = o.probe.checked_at;
        let status_age =
            checked_at.map(|t| (chrono::Utc::now() - t).to_std().unwrap_or(Duration::ZERO)).unwrap_or(Duration::MAX);
        let stale_after = Duration::from_secs(state.config.api.heartbeat_stale_secs);
        let (health, free_bytes, total_bytes, age) = match &beat {
            Some((b, age)) => (
                if state.heartbeats.healthy(id).is_some() { "up" } else { "down" },
                Some(b.free_bytes),
                Some(b.total_bytes),
                Some(*age),
            ),
            None => (
                match o.probe.up {
                    Some(true) if status_age <= stale_after => "up",
                    Some(_) => "down",
                    None => "unknown",
                },
                o.probe.free,
                o.probe.total,
                checked_at.map(|_| status_age),
            ),
        };
        let dash = || "—".to_owned();
        let since = |t: chrono::DateTime<chrono::Utc>| (chrono::Utc::now() - t).to_std().unwrap_or(Duration::ZERO);
        // Up: the heartbeat just seen is a good one. Otherwise the last probe that found
        // it up, as the monitor recorded it.
        let last_good = if health == "up" { age } else { o.probe.last_up_at.map(since) };
        let down = health == "down";
        NodeView {
            id: id.0,
            name: o.node.name.clone(),
            state: o.node.state.as_str().to_owned(),
            health,
            free_bytes,
            total_bytes,
            free: free_bytes.map(fmt_bytes).unwrap_or_else(dash),
            total: total_bytes.map(fmt_bytes).unwrap_or_else(dash),
            heartbeat: last_good.map(fmt_age).unwrap_or_else(|| "never".into()),
            down_reason: if down {
                Some(o.probe.error.clone().unwrap_or_else(|| "no fresh heartbeat".into()))
            } else {
                o.probe.copy_problem()
            },
            down_since: if down {
                o.probe.down_since.map(|t| format!("down since {}", fmt_age(since(t))))
            } else {
                None
            },
            replicas: o.replicas,
            ssh: format!("{}@{}:{}", o.node.ssh.user, o.node.ssh.host, o.node.ssh.port),
            public_url: o.node.public_url.clone(),
            region: o.node.region.clone(),
            last_error: o.probe.error.clone(),
        }
    }
}

pub async fn load(state: &AppState) -> Result<Vec<NodeView>, crate::admin_ui::error::UiError> {
    let nodes = ferry_store::nodes::overview(&state.pool.get().await?, None).await?;
    Ok(nodes.iter().map(|o| NodeView::new(state, o)).collect())
}

/// The state changes offered for a node in `state` (value, button label). A disabled
/// node is not offered Drain: its copies already stopped counting and are re-made
/// elsewhere; it can only be activated again (or removed from its page once empty).
pub fn transitions(state: &str) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
    [("draining", "Drain"), ("disabled", "Disable"), ("active", "Activate")]
        .into_iter()
        .filter(move |(s, _)| *s != state && !(state == "disabled" && *s == "draining"))
}

/// One `<tr>` of the nodes table. `nodes.js` builds the same cells from the JSON.
pub fn row_html(n: &NodeView, csrf: &str) -> String {
    let mut actions = format!("<a href=\"/admin/nodes/{}\">Details</a>", n.id);
    for (value, label) in transitions(&n.state) {
        let _ = write!(
            actions,
            "<form method=\"post\" action=\"/admin/nodes/{}/state\" class=\"inline\">{}\
             <input type=\"hidden\" name=\"state\" value=\"{value}\">\
             <button type=\"submit\" data-action=\"{value}\">{label}</button></form>",
            n.id,
            csrf_field(csrf)
        );
    }
    format!(
        "<tr data-id=\"{id}\" data-node=\"{name}\"><td class=\"c-name\"><a href=\"/admin/nodes/{id}\">{name}</a>\
         <div class=\"sub\">{ssh} · {url}</div></td>\
         <td class=\"c-state\"><span class=\"badge s-{state}\">{state}</span></td>\
         <td class=\"c-health\"><span class=\"badge h-{health}\" title=\"{err}\">{health}</span>\
         <div class=\"sub c-reason\">{reason}</div></td>\
         <td class=\"c-free num\">{free}</td><td class=\"c-total num\">{total}</td>\
         <td class=\"c-heartbeat\"><span class=\"c-beat\">{beat}</span><div class=\"sub c-since\">{since}</div></td><td class=\"c-replicas num\">{replicas}</td>\
         <td class=\"c-actions\" data-state=\"{state}\">{actions}</td></tr>",
        id = n.id,
        name = Esc(&n.name),
        ssh = Esc(&n.ssh),
        url = Esc(&n.public_url),
        state = Esc(&n.state),
        health = n.health,
        err = Esc(n.last_error.as_deref().unwrap_or_default()),
        free = Esc(&n.free),
        total = Esc(&n.total),
        beat = Esc(&n.heartbeat),
        reason = Esc(n.down_reason.as_deref().unwrap_or_default()),
        since = Esc(n.down_since.as_deref().unwrap_or_default()),
        replicas = n.replicas,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_escape_node_fields() {
        let n = NodeView {
            id: 3,
            name: "<n>".into(),
            state: "active".into(),
            health: "up",
            free_bytes: Some(ByteSize(2048)),
            total_bytes: None,
            free: "2.0 KiB".into(),
            total: "—".into(),
            heartbeat: "1.0 s ago".into(),
            down_reason: Some("unreachable: <refused>".into()),
            down_since: None,
            replicas: 4,
            ssh: "u@h:22".into(),
            public_url: "http://x/\"><script>".into(),
            region: String::new(),
            last_error: Some("it's <bad>".into()),
        };
        let html = row_html(&n, "tok");
        assert!(html.contains("data-node=\"&lt;n&gt;\""));
        assert!(html.contains("http://x/&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("title=\"it&#39;s &lt;bad&gt;\""));
        assert!(!html.contains("<script>"));
        assert!(html.contains("data-action=\"draining\"") && html.contains("data-action=\"disabled\""));
        assert!(!html.contains("data-action=\"active\""));
        assert!(html.contains("<div class=\"sub c-reason\">unreachable: &lt;refused&gt;</div>"));
        let disabled = NodeView { state: "disabled".into(), ..n };
        let html = row_html(&disabled, "tok");
        assert!(!html.contains("data-action=\"draining\"") && html.contains("data-action=\"active\""));
    }
}
