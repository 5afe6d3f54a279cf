//! HTTP serving shared by every process: graceful shutdown and the operations routes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A readiness probe: `Ok` when every dependency the process needs answers.
pub type ReadyCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `/healthz` (the process is up), `/readyz` (its dependencies answer) and
/// `/metrics` (Prometheus text).
pub fn routes(ready: ReadyCheck) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/metrics",
            get(|| async { ([("content-type", "text/plain; version=0.0.4")], crate::metrics::render()) }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move { readyz(ready).await }
            }),
        )
}

async fn readyz(ready: ReadyCheck) -> Response {
    match ready().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            Json(serde_json::json!({"detail": reason, "code": "not_ready", "retry_after": 1})),
        )
            .into_response(),
    }
}

/// How long bytes a process sent may stay unacknowledged before the kernel drops the
/// connection (`TCP_USER_TIMEOUT`), including a peer that keeps its receive window shut:
/// a client that stops reading a download would otherwise hold its response buffers
/// (and, many of them, every download's) forever. A slow reader that keeps acknowledging
/// is never cut off.
pub const STALLED_PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// [`serve_with`] with [`STALLED_PEER_TIMEOUT`].
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, STALLED_PEER_TIMEOUT).await
}

/// Serves `router` on `listener` until `shutdown` fires, then lets in-flight requests
/// finish (hyper's graceful shutdown). Every accepted connection gets
/// `stalled_peer_timeout` as its `TCP_USER_TIMEOUT`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    stalled_peer_timeout: Duration,
) -> std::io::Result<()> {
    let millis = u32::try_from(stalled_peer_timeout.as_millis()).unwrap_or(u32::MAX);
    let listener = listener.tap_io(move |tcp| {
        if let Err(error) = nix::sys::socket::setsockopt(&*tcp, nix::sys::socket::sockopt::TcpUserTimeout, &millis) {
            tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT on a connection");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Middleware counting requests by matched route, method and status, with latency.
/// Routes are the templates (`/files/{id}`), never raw paths, so cardinality stays
/// bounded.
pub async fn track(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::metrics::HTTP_REQUESTS.with_label_values(&[&route, &method, response.status().as_str()]).inc();
    crate::metrics::observe(&crate::metrics::HTTP_DURATION, &[&route, &method], started.elapsed());
    response
}
