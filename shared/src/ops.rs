//! The operations routes every process serves, and request metrics. The server loop
//! itself is [`crate::serve`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

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
