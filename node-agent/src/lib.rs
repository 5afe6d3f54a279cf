//! `ferry-node`: the agent beside sshd on each storage node. Workers put files into
//! its root with rsync over SSH; the agent serves them to clients the API redirected
//! here (signed, expiring URLs; HTTP Range) and reports the root's free space.
//!
//! It knows nothing of the database: everything it serves is named by a signed file
//! id, and everything it reports is read from the root.

pub mod body;
pub mod buffers;
pub mod disposition;
pub mod error;
pub mod files;
pub mod health;
pub mod link;
pub mod range;
pub mod state;
pub mod validator;
pub mod verified;

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use ferry_shared::config::Config;
use ferry_shared::ops;
use ferry_shared::shutdown::DRAIN_DEADLINE;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ServeError;
pub use state::{Layout, NodeState, Options};

/// Why the agent could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create the storage root {path}: {source}")]
    CreateRoot { path: PathBuf, source: std::io::Error },
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// The agent's routes over `state`: downloads, `/health`, and the shared `/healthz`,
/// `/readyz`, `/metrics`. Every error, unknown routes and methods included, has the
/// JSON error body.
pub fn router(state: Arc<NodeState>) -> Router {
    let ready = health::ready_check(state.root().to_path_buf());
    Router::new()
        // `get` also answers HEAD, with the same headers and no body.
        .route("/files/{id}", get(files::serve))
        .route("/health", get(health::health))
        .route_layer(axum::middleware::from_fn(ops::track))
        .with_state(state)
        .merge(ops::routes(ready))
        .fallback(|| async { ServeError::NotFound })
        .method_not_allowed_fallback(|| async { ServeError::MethodNotAllowed })
        // Stored files are served with the type their name suggests: a browser must
        // not sniff another (an upload named .txt holding HTML stays text).
        .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
}

/// [`run_with`] the default [`Options`].
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    run_with(config, Options::default(), listener, shutdown).await
}

/// Serves on `listener` until `shutdown` fires, then lets in-flight downloads finish
/// for at most [`DRAIN_DEADLINE`]: a multi-gigabyte download may outlast any sensible
/// stop timeout, and its client resumes with `Range` anyway. Creates the root if it is
/// missing, so a fresh node starts before the first file arrives.
pub async fn run_with(
    config: Config,
    options: Options,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let root = config.node.root.clone();
    tokio::fs::create_dir_all(&root).await.map_err(|source| RunError::CreateRoot { path: root.clone(), source })?;
    let state = Arc::new(NodeState::with_options(root.clone(), config.signing.secret.expose().as_bytes(), &options));
    let reverify_secs = options.reverify_after.as_secs();
    match listener.local_addr() {
        Ok(addr) => tracing::info!(listen = %addr, root = %root.display(), reverify_secs, "ferry-node serving"),
        Err(error) => tracing::info!(%error, root = %root.display(), reverify_secs, "ferry-node serving"),
    }

    let limits = ferry_shared::serve::Limits {
        stalled_peer_timeout: options.stalled_peer_timeout,
        ..ferry_shared::serve::Limits::from_config(&config.http)
    };
    let serving = ferry_shared::serve::serve(listener, router(state), shutdown.clone(), limits);
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_DEADLINE).await;
    };
    tokio::select! {
        served = serving => served.map_err(RunError::Serve)?,
        () = deadline => tracing::warn!(
            deadline_ms = DRAIN_DEADLINE.as_millis() as u64,
            "downloads still in flight at the drain deadline; closing them"
        ),
    }
    tracing::info!("ferry-node stopped");
    Ok(())
}
