//! tus 1.0 (<https://tus.io/protocols/resumable-upload>) at `/files/`, on the same
//! pipeline as the chunked protocol of `routes::upload`: a tus upload is a row of the
//! `uploads` table, its bytes go to the same staging file under the same writer lease
//! with the same running digests, intake slots, body-rate floor and size limits, and
//! its last byte starts the same assembly, so it becomes an ordinary Ferry file
//! (listed, versioned, downloadable through the redirect, deletable).
//!
//! Extensions: creation, creation-with-upload, creation-defer-length, termination,
//! expiration, checksum (md5, sha1, sha256), concatenation (of finished parts). Auth
//! is the API's JWT (`Authorization: Bearer`
//! or `JWT`). Metadata keys read: `filename` (else `name`, as Uppy sends both),
//! `parent` (a file id: the upload becomes its next version) and `md5` (hex, the
//! whole file's: checked before the last chunk is recorded).

mod concat;
mod error;
pub mod protocol;
mod upload;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::TusError;
use protocol::{CHECKSUM_ALGORITHMS, EXTENSIONS, VERSION};

use crate::state::SharedState;

/// The tus routes, with CORS for `cors_origins` (`api.cors_origins`) when any.
pub fn router(cors_origins: &[String]) -> Router<SharedState> {
    let router = Router::new()
        .route("/files", post(upload::create).options(options))
        .route("/files/", post(upload::create).options(options))
        .route(
            "/files/{id}",
            head(upload::show)
                .patch(upload::append)
                .delete(upload::terminate)
                .post(upload::overridden)
                .options(options),
        )
        .layer(axum::middleware::from_fn(resumable));
    match cors(cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Every request but OPTIONS must say `Tus-Resumable: 1.0.0` (else 412 with
/// `Tus-Version`), and every response says it.
async fn resumable(request: Request, next: Next) -> Response {
    let speaks_ours = request.headers().get("tus-resumable").is_some_and(|v| v.as_bytes() == VERSION.as_bytes());
    let mut response = if request.method() == Method::OPTIONS || speaks_ours {
        next.run(request).await
    } else {
        TusError::Version.into_response()
    };
    response.headers_mut().insert("tus-resumable", HeaderValue::from_static(VERSION));
    response
}

/// `OPTIONS /files/[<id>]`: what this server supports (no auth, as tus clients and
/// CORS preflights send none).
async fn options(State(state): State<SharedState>) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            ("tus-version", HeaderValue::from_static(VERSION)),
            ("tus-extension", HeaderValue::from_static(EXTENSIONS)),
            ("tus-checksum-algorithm", HeaderValue::from_static(CHECKSUM_ALGORITHMS)),
            ("tus-max-size", HeaderValue::from(state.config.storage.max_file_bytes)),
        ],
    )
        .into_response()
}

/// Request headers a tus browser client sends.
const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "tus-resumable",
    "upload-length",
    "upload-defer-length",
    "upload-offset",
    "upload-metadata",
    "upload-checksum",
    "upload-concat",
    "x-http-method-override",
    "x-requested-with",
];

/// Response headers a tus browser client must be able to read.
const EXPOSED_HEADERS: &[&str] = &[
    "location",
    "upload-offset",
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-expires",
    "upload-concat",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
];

/// CORS for the configured origins only; None (no CORS headers at all) when there are
/// none. An origin that is not a valid header value is skipped with a warning.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| {
            let value = HeaderValue::from_str(o.trim_end_matches('/')).ok();
            if value.is_none() {
                tracing::warn!(origin = %o, "api.cors_origins: not a valid origin; ignored");
            }
            value
        })
        .collect();
    if origins.is_empty() {
        return None;
    }
    let names = |list: &[&'static str]| list.iter().map(|h| HeaderName::from_static(h)).collect::<Vec<_>>();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST, Method::HEAD, Method::PATCH, Method::DELETE, Method::OPTIONS])
            .allow_headers(names(ALLOWED_HEADERS))
            .expose_headers(names(EXPOSED_HEADERS))
            .max_age(Duration::from_secs(86_400)),
    )
}
