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
/// `/metrics` (Prometheus text). Any other method on them is 405 with the JSON error
/// every Ferry route answers (`{"detail", "code": "method_not_allowed"}`) and the
/// `Allow` header (RFC 9110 §15.5.6).
pub fn routes(ready: ReadyCheck) -> Router {
    let routes = Router::new()
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
        );
    routes.method_not_allowed_fallback(|| async {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [("allow", "GET,HEAD")],
            Json(serde_json::json!({"detail": "Method not allowed.", "code": "method_not_allowed"})),
        )
    })
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
/// Routes are the templates (`/files/{id}`), never raw paths, and a method outside
/// RFC 9110's eight (plus PATCH) is counted as `other`, so no request can add a label
/// set of its own (made-up methods used to grow `/metrics` by one each, unauthenticated).
pub async fn track(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method()).to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::metrics::HTTP_REQUESTS.with_label_values(&[&route, &method, response.status().as_str()]).inc();
    crate::metrics::observe(&crate::metrics::HTTP_DURATION, &[&route, &method], started.elapsed());
    response
}

/// The `method` label of a request: its method if standard, else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN.iter().find(|(known, _)| known == method).map_or("other", |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"FOO123").expect("a token");
        assert_eq!(method_label(&made_up), "other");
    }
}
