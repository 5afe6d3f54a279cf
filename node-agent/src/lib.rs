//! `ferry-node`: the agent beside sshd on each storage node. Workers put files into
//! its root with rsync over SSH; the agent serves them to clients the API redirected
//! here (signed, expiring URLs; HTTP Range) and reports the root's free space.

pub mod files;
pub mod health;
pub mod range;

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use ferry_shared::config::Config;
use ferry_shared::ops;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct NodeState {
    pub root: PathBuf,
    pub secret: Vec<u8>,
    /// Files whose served bytes did not match their checksum (moved aside), reported
    /// in `/health` so the monitor marks those replicas failed at once. Bounded.
    pub corrupt: std::sync::Mutex<std::collections::VecDeque<ferry_shared::types::FileId>>,
}

/// How many corrupt-file reports `/health` keeps.
pub const CORRUPT_REPORTS: usize = 100;

pub fn router(state: Arc<NodeState>) -> Router {
    let root = state.root.clone();
    let ready: ops::ReadyCheck = Arc::new(move || {
        let root = root.clone();
        Box::pin(async move {
            match tokio::fs::metadata(&root).await {
                Ok(meta) if meta.is_dir() => Ok(()),
                _ => Err(format!("storage root {} is not a readable directory", root.display())),
            }
        })
    });
    Router::new()
        .route("/files/{id}", get(files::serve))
        .route("/health", get(health::health))
        .route_layer(axum::middleware::from_fn(ops::track))
        .with_state(state)
        .merge(ops::routes(ready))
}

pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    tokio::fs::create_dir_all(&config.node.root).await?;
    let state = Arc::new(NodeState {
        root: config.node.root.clone(),
        secret: config.signing.secret.expose().as_bytes().to_vec(),
        corrupt: Default::default(),
    });
    tracing::info!(listen = %listener.local_addr()?, root = %config.node.root.display(), "ferry-node serving");
    ops::serve(listener, router(state), shutdown).await
}
