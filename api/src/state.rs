//! Shared state of one API process.

use std::sync::Arc;

use axum::http::HeaderMap;
use ferry_queue::outbox::RelayWaker;
use ferry_queue::Publisher;
use ferry_shared::config::Config;
use ferry_shared::slots::KeyedSlots;
use ferry_shared::types::UserId;
use ferry_store::Pool;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::heartbeats::HeartbeatTable;
use crate::login_limit::LoginLimiter;
use crate::replica_cache::ReplicaCache;
use crate::tokens::Keys;

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
    pub keys: Keys,
    pub publisher: Arc<Publisher>,
    pub relay: RelayWaker,
    pub heartbeats: HeartbeatTable,
    pub replicas: ReplicaCache,
    /// Serves complete files from the staging volume until their first node copy
    /// (`crate::routes::staging`).
    pub staging_copies: Arc<ferry_node_agent::NodeState>,
    /// Upload ids whose assembly finished (from PostgreSQL `NOTIFY`).
    pub completions: broadcast::Sender<Uuid>,
    /// Bounds chunk bodies streamed at once by this process, and per user.
    pub intake: KeyedSlots<UserId>,
    /// Login attempts per client address and per username.
    pub login_limit: LoginLimiter,
    /// Fires on SIGTERM: long waits (the completing POST) answer at once instead of
    /// holding the shutdown up.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// Base URL for links in responses: the configured public URL, else the request's
    /// Host (the original answered with absolute URLs built the same way).
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if !self.config.api.public_url.is_empty() {
            return self.config.api.public_url.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)))
            .map(str::to_owned)
            .unwrap_or_else(|| self.config.api.listen.to_string());
        format!("http://{host}")
    }
}

pub type SharedState = Arc<AppState>;
