//! The nodes page (`/admin/`): the live table, adding a node, its state (drain,
//! disable, activate), and each node's page (`node_detail.rs` plus the edit form) with
//! its removal. Every write goes through `ferry_store::nodes`, the same validation the
//! admin JSON API and the CLI use.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use ferry_shared::types::NodeId;
use ferry_store::nodes::{self, NodeInput};
use serde_json::json;

use super::node_detail;
use super::node_view::{self, row_html};
use crate::admin_ui::error::UiError;
use crate::admin_ui::form::{self, number, text, Form};
use crate::admin_ui::html::{csrf_field, notice, Esc, Page, Section};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

const SCRIPT: &str = include_str!("../nodes.js");

fn notice_for(query: Option<&str>, views: &[node_view::NodeView]) -> String {
    let params: Vec<(String, String)> = query.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let get = |k: &str| params.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
    let name = get("node")
        .and_then(|id| id.parse::<i32>().ok())
        .and_then(|id| views.iter().find(|v| v.id == id))
        .map(|v| v.name.as_str())
        .unwrap_or("The node");
    let text = match get("done") {
        Some("added") => format!("{name} was added; the monitor probes it within a few seconds."),
        Some("updated") => format!("{name} was updated."),
        Some("draining") => format!(
            "{name} is draining: it gets no new replicas, its files are copied to other nodes, then removed from it."
        ),
        Some("disabled") => format!("{name} is disabled: it neither gets nor serves replicas."),
        Some("active") => format!("{name} is active again."),
        Some("removed") => {
            let removed = get("name").unwrap_or("The node");
            format!("{removed} was removed: it held no replica.")
        }
        _ => return String::new(),
    };
    notice("ok", &text)
}

/// `GET /admin/`
pub async fn page(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let views = node_view::load(&state).await?;
    let mut body = notice_for(query.as_deref(), &views);
    body.push_str(
        "<section><p class=\"live\" id=\"live-status\">Refreshed every 2 s.</p>\
         <table class=\"grid\" id=\"nodes\"><thead><tr><th>Node</th><th>State</th><th>Health</th>\
         <th class=\"num\">Free</th><th class=\"num\">Total</th><th>Last good heartbeat</th>\
         <th class=\"num\">Replicas</th><th>Actions</th></tr></thead><tbody id=\"nodes-body\">",
    );
    for view in &views {
        body.push_str(&row_html(view, &session.csrf));
    }
    if views.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"8\">No nodes yet: add one below.</td></tr>");
    }
    body.push_str("</tbody></table></section><section class=\"card\"><h2>Add a node</h2>");
    body.push_str(&node_form("/admin/nodes", &NodeFields::default(), &session.csrf, "Add node"));
    body.push_str("</section>");
    let page = Page::admin("Nodes", Section::Nodes, session.signed_in(), body).with_script(SCRIPT);
    Ok(page.render(StatusCode::OK))
}

/// `GET /admin/nodes.json`: what the page's script refreshes the table from.
pub async fn json(State(state): State<SharedState>, _session: AdminSession) -> Result<Response, UiError> {
    let views = node_view::load(&state).await?;
    let mut response = Json(json!({ "nodes": views })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn node_input(f: &Form) -> Result<NodeInput, UiError> {
    Ok(NodeInput {
        name: text(f, "name"),
        ssh_host: text(f, "ssh_host"),
        ssh_port: number(f, "ssh_port")?,
        ssh_user: text(f, "ssh_user"),
        root_path: text(f, "root_path"),
        public_url: text(f, "public_url"),
        // A submitted blank region clears it; every other blank field means "not given".
        region: f.get("region").map(|r| r.trim().to_owned()),
        lat: number(f, "lat")?,
        lon: number(f, "lon")?,
        state: None,
    })
}

fn done(kind: &str, id: NodeId) -> Response {
    Redirect::to(&format!("/admin/?done={kind}&node={id}")).into_response()
}

/// `POST /admin/nodes`
pub async fn add(State(state): State<SharedState>, session: AdminSession, body: Body) -> Result<Response, UiError> {
    let f = form::read_checked(&state, &session, body).await?;
    let input = node_input(&f)?;
    let id = nodes::insert(&state.pool.get().await?, &input).await?;
    tracing::info!(node.id = %id, node.name = ?input.name, admin = %session.username, "node added from the admin page");
    Ok(done("added", id))
}

fn parse_id(raw: &str) -> Result<NodeId, UiError> {
    raw.parse().map(NodeId).map_err(|_| UiError::NotFound("Node"))
}

/// `POST /admin/nodes/{id}`: the edit form's fields.
pub async fn edit(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, UiError> {
    let id = parse_id(&id)?;
    let f = form::read_checked(&state, &session, body).await?;
    nodes::update(&state.pool.get().await?, id, &node_input(&f)?).await?;
    tracing::info!(node.id = %id, admin = %session.username, "node edited from the admin page");
    Ok(done("updated", id))
}

/// `POST /admin/nodes/{id}/state`: drain, disable or activate.
pub async fn set_state(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, UiError> {
    let id = parse_id(&id)?;
    let f = form::read_checked(&state, &session, body).await?;
    let new_state = text(&f, "state").ok_or_else(|| UiError::Invalid("state is required.".into()))?;
    let input = NodeInput { state: Some(new_state.clone()), ..NodeInput::default() };
    nodes::update(&state.pool.get().await?, id, &input).await?;
    tracing::info!(node.id = %id, node.state = %new_state, admin = %session.username, "node state changed from the admin page");
    // `update` accepted it, so it is one of the three fixed states.
    Ok(done(&new_state, id))
}

/// `POST /admin/nodes/{id}/remove`: refused (409, with the reason) while the node is
/// active or holds replicas.
pub async fn remove(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, UiError> {
    let id = parse_id(&id)?;
    form::read_checked(&state, &session, body).await?;
    let name = nodes::remove(&state.pool.get().await?, id).await?;
    tracing::info!(node.id = %id, node.name = %name, admin = %session.username, "node removed from the admin page");
    let query = serde_urlencoded::to_string([("done", "removed"), ("name", name.as_str())]).unwrap_or_default();
    Ok(Redirect::to(&format!("/admin/?{query}")).into_response())
}

/// `GET /admin/nodes/{id}`: the node's health, history, trend and removal, then the
/// edit form.
pub async fn edit_page(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = parse_id(&id)?;
    let client = state.pool.get().await?;
    let overview = nodes::overview(&client, Some(id)).await?.pop().ok_or(UiError::NotFound("Node"))?;
    let sections = node_detail::sections(&client, &overview, &session.csrf).await?;
    let node = overview.node;
    let fields = NodeFields {
        name: node.name,
        ssh_host: node.ssh.host,
        ssh_port: node.ssh.port.to_string(),
        ssh_user: node.ssh.user,
        root_path: node.ssh.root,
        public_url: node.public_url,
        region: node.region,
        lat: node.lat.to_string(),
        lon: node.lon.to_string(),
    };
    let mut body = format!(
        "<p>{} · {} · change its state with the buttons on the <a href=\"/admin/\">nodes table</a>.</p>{sections}\
         <section class=\"card\"><h2>Edit</h2>",
        Esc(&fields.ssh_host),
        Esc(&fields.public_url)
    );
    body.push_str(&node_form(&format!("/admin/nodes/{id}"), &fields, &session.csrf, "Save"));
    body.push_str("</section>");
    let title = format!("Node {}", fields.name);
    Ok(Page::admin(&title, Section::Nodes, session.signed_in(), body).render(StatusCode::OK))
}

/// Values shown in the node form.
struct NodeFields {
    name: String,
    ssh_host: String,
    ssh_port: String,
    ssh_user: String,
    root_path: String,
    public_url: String,
    region: String,
    lat: String,
    lon: String,
}

impl Default for NodeFields {
    fn default() -> Self {
        NodeFields {
            name: String::new(),
            ssh_host: String::new(),
            ssh_port: "22".into(),
            ssh_user: String::new(),
            root_path: String::new(),
            public_url: String::new(),
            region: String::new(),
            lat: String::new(),
            lon: String::new(),
        }
    }
}

fn node_form(action: &str, v: &NodeFields, csrf: &str, submit: &str) -> String {
    let mut html = format!("<form method=\"post\" action=\"{}\" class=\"fields\">{}", Esc(action), csrf_field(csrf));
    let fields: [(&str, &str, &str, &str); 9] = [
        ("name", "Name", &v.name, "node4"),
        ("ssh_host", "SSH host", &v.ssh_host, "10.0.0.4"),
        ("ssh_port", "SSH port", &v.ssh_port, "22"),
        ("ssh_user", "SSH user", &v.ssh_user, "ferry"),
        ("root_path", "Root path", &v.root_path, "/srv/ferry"),
        ("public_url", "Public URL", &v.public_url, "http://10.0.0.4:9001"),
        ("region", "Region", &v.region, "optional"),
        ("lat", "Latitude", &v.lat, "50.11 (required)"),
        ("lon", "Longitude", &v.lon, "8.68 (required)"),
    ];
    for (name, label, value, placeholder) in fields {
        let _ = write!(
            html,
            "<label>{label} <input name=\"{name}\" value=\"{}\" placeholder=\"{placeholder}\"></label>",
            Esc(value)
        );
    }
    let _ = write!(html, "<button type=\"submit\">{}</button></form>", Esc(submit));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn form_fields_become_node_input() {
        let input =
            node_input(&form(&[("name", " n1 "), ("ssh_port", "2201"), ("lat", ""), ("region", "")])).expect("valid");
        assert_eq!(input.name.as_deref(), Some("n1"));
        assert_eq!(input.ssh_port, Some(2201));
        assert_eq!((input.lat, input.ssh_host.as_deref(), input.region.as_deref()), (None, None, Some("")));
        assert!(node_input(&form(&[("ssh_port", "22x")])).is_err());
        assert!(node_input(&form(&[])).expect("empty").region.is_none());
    }

    #[test]
    fn the_form_escapes_values() {
        let fields = NodeFields { name: "\"><b>".into(), ..NodeFields::default() };
        let html = node_form("/admin/nodes/1", &fields, "t\"", "Save");
        assert!(html.contains("value=\"&quot;&gt;&lt;b&gt;\""));
        assert!(html.contains("value=\"t&quot;\""));
        assert!(!html.contains("<b>"));
    }
}
