//! The page for people at `/`: log in, upload with Uppy (Dashboard + Tus plugin, over
//! `/files/`) with progress, pause and resume, list your files and their versions,
//! download through a short-lived signed link (`POST /storage/files/<id>/link`), delete.
//! A server-rendered shell plus one script of ours; Uppy's bundle and stylesheet come
//! from the `uppy` npm package installed with the docs assets (`api.uppy_dir`) and are
//! served from this process: no CDN, nothing leaves the machine. The token lives in the
//! tab's `sessionStorage` and goes in `Authorization` headers, never in a URL.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/", get(page)).route("/ui/{asset}", get(asset))
}

/// Only this origin, no inline script; Uppy sets inline styles on its elements and shows
/// thumbnails from `blob:` URLs; downloads go to the nodes by navigation, not fetch.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ferry</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/ui/uppy.min.css"><link rel="stylesheet" href="/ui/ferry.css"></head>
<body>
<header><h1>Ferry</h1><span id="who"></span><button id="logout" type="button" hidden>Log out</button></header>
<form id="login" hidden>
  <h2>Log in</h2>
  <label>Username <input name="username" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
  <p id="login-error" role="alert"></p>
</form>
<main id="app" hidden>
  <section><h2>Upload</h2><div id="uploader"></div></section>
  <section><h2>Your files</h2><p id="files-error" role="alert"></p>
    <table id="files"><thead><tr><th>Name</th><th>Size</th><th>Version</th><th>Uploaded</th><th></th></tr></thead>
    <tbody></tbody></table></section>
</main>
<noscript>This page needs JavaScript; the API works without it (see /docs/redoc/).</noscript>
<script src="/ui/uppy.min.js"></script><script src="/ui/ferry.js"></script>
</body></html>"#;

async fn page() -> Response {
    ([(header::CONTENT_SECURITY_POLICY, CSP), (header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

/// `/ui/<asset>`: our script and stylesheet (compiled in), Uppy's bundle and stylesheet
/// (from `api.uppy_dir`); anything else 404.
async fn asset(State(state): State<SharedState>, Path(asset): Path<String>) -> Response {
    let (content_type, file) = match asset.as_str() {
        "ferry.js" => {
            return ([(header::CONTENT_TYPE, "application/javascript")], include_str!("ferry.js")).into_response()
        }
        "ferry.css" => return ([(header::CONTENT_TYPE, "text/css")], include_str!("ferry.css")).into_response(),
        "uppy.min.js" => ("application/javascript", "uppy.min.js"),
        "uppy.min.css" => ("text/css", "uppy.min.css"),
        _ => return crate::error::ApiError::NotFound { what: "Asset" }.into_response(),
    };
    match tokio::fs::read(state.config.api.uppy_dir.join(file)).await {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], bytes).into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "detail": "Uppy's bundle is not installed (api.uppy_dir; deploy/dev up installs it).",
                "code": "asset_missing"
            })),
        )
            .into_response(),
    }
}
