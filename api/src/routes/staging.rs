//! `GET|HEAD /staging/files/<id>?exp=..[&sha=..][&name=..]&sig=..`: a complete file
//! served from its staging copy, so a file is downloadable the moment its completing
//! POST answers `200`, before any node holds a copy (read-after-write with
//! `storage.write_quorum` = 0, the default; see docs/ARCHITECTURE.md).
//!
//! The staging copy is the one the md5 was verified on: every chunk was fdatasync'd
//! before it was acknowledged, and the copy stays until the file is present on
//! `storage.replication_factor` nodes. The download redirect sends a client here only
//! while no healthy node holds a verified copy. A link that arrives after the staging
//! copy was released (the file reached its nodes meanwhile) is redirected to the
//! nearest healthy node copy, signed with the same expiry, checksum and name, so a
//! staging link stays good for its whole lifetime.
//!
//! The bytes are served by the node agent's own handler ([`ferry_node_agent::files`])
//! over the staging layout: the same signed links (one secret), HTTP Range and
//! conditional requests (RFC 9110 §14, §13), the sha256 check of whole reads, per-client
//! and per-link download shares, and pooled read buffers, bounded here by
//! [`STAGING_READ_BUFFERS`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::{ExtensionRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferry_node_agent::link::{self, LinkQuery};
use ferry_node_agent::{Layout, NodeState, Options, ServeError};
use ferry_shared::config::Config;
use ferry_shared::signing;
use ferry_shared::types::{FileId, Sha256};

use crate::locate::node_copies;
use crate::nearest;
use crate::state::SharedState;

/// Path prefix of staging downloads on the API; the rest is the node agent's signed
/// path ([`signing::signed_path`]).
pub const PREFIX: &str = "/staging";

/// 1 MiB read buffers that staging downloads may hold at once in one API process
/// (64 MiB): a fallback for the seconds before a file's first node copy, not a second
/// download tier, so it gets a small share; further downloads wait for a buffer.
pub const STAGING_READ_BUFFERS: usize = 64;

pub fn router() -> Router<SharedState> {
    Router::new().route("/staging/files/{id}", get(serve))
}

/// The server of staging copies for `config`: the staging volume in the staging layout,
/// the shared signing secret, and the node agent's per-client and per-link download
/// shares (`node.max_downloads_per_client`, `node.max_downloads_per_link`).
pub fn copies(config: &Config) -> Arc<NodeState> {
    let options = Options {
        max_downloads_per_client: config.node.max_downloads_per_client,
        max_downloads_per_link: config.node.max_downloads_per_link,
        max_buffers: STAGING_READ_BUFFERS,
        layout: Layout::Staging,
        ..Options::default()
    };
    Arc::new(NodeState::with_options(
        config.storage.staging_dir.clone(),
        config.signing.secret.expose().as_bytes(),
        &options,
    ))
}

/// Whether the staging copy of `id` is still there (a regular file).
pub async fn holds(copies: &NodeState, id: FileId) -> bool {
    tokio::fs::metadata(copies.path_of(id)).await.is_ok_and(|meta| meta.is_file())
}

/// Path and query of a signed staging download (to be prefixed with the API's base URL).
pub fn signed_path(config: &Config, id: FileId, expires: i64, sha256: Option<&Sha256>, name: Option<&str>) -> String {
    let path = signing::signed_path(config.signing.secret.expose().as_bytes(), id, expires, sha256, name);
    format!("{PREFIX}{path}")
}

/// Serves the staging copy as a node agent serves its copy (same answers and errors,
/// with the node agent's JSON body `{"detail", "code"}`: 403 for a bad or expired
/// link, 404, 412, 416, 429); when the copy is gone but the link is valid, 302 to the
/// nearest healthy node copy.
async fn serve(
    State(state): State<SharedState>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<LinkQuery>, QueryRejection>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let named = id.as_ref().ok().and_then(|Path(raw)| raw.parse::<FileId>().ok());
    let link = query.as_ref().ok().map(|Query(link)| link.clone());
    let client = peer.as_ref().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
    let served =
        ferry_node_agent::files::serve(State(state.staging_copies.clone()), peer, id, query, method, headers).await;
    match (served, named, link) {
        (Err(ServeError::NotFound), Some(id), Some(link)) => match moved(&state, id, &link, client).await {
            Some(location) => {
                (StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, "no-store".to_owned())])
                    .into_response()
            }
            None => ServeError::NotFound.into_response(),
        },
        (served, _, _) => served.into_response(),
    }
}

/// Where a valid link to a released staging copy goes now: the nearest healthy node
/// copy, signed with the link's own expiry, checksum and name. `None` when the link
/// does not verify or no healthy node holds the file (deleted, or not yet anywhere).
async fn moved(state: &SharedState, id: FileId, link: &LinkQuery, client: IpAddr) -> Option<String> {
    let now = chrono::Utc::now().timestamp();
    let grant = link::authorize(state.config.signing.secret.expose().as_bytes(), id, link, now).ok()?;
    let copies = match node_copies(state, id).await {
        Ok(copies) => copies,
        Err(error) => {
            tracing::warn!(file.id = %id, %error, "could not look up the node copies of a released staging copy");
            return None;
        }
    };
    let node = nearest::choose(&copies, nearest::locate(client, &state.config.api.client_locations))?;
    let (sha256, name) = (grant.sha256.as_ref(), grant.name.as_deref());
    Some(super::download::node_link(&state.config, &node.public_url, id, grant.expires, sha256, name))
}
