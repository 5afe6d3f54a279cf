//! `GET|HEAD /files/<id>?exp=..&sig=..`: a redirected client's download. The URL must
//! carry a valid, unexpired signature from the API; the path is built only from the
//! parsed file id, so nothing outside the storage root can be named.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ferry_shared::signing::{self, SignatureError};
use ferry_shared::types::FileId;
use serde::Deserialize;
use serde_json::json;

use crate::range::{self, RangeOutcome};
use crate::NodeState;

/// Bytes read per step of a body: large enough that a 1 MiB range is one read, small
/// enough to bound memory per connection.
const READ_STEP: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
pub struct Signature {
    exp: Option<i64>,
    sig: Option<String>,
}

fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    (status, Json(json!({"detail": detail, "code": code}))).into_response()
}

pub async fn serve(
    State(state): State<Arc<NodeState>>,
    Path(id): Path<String>,
    Query(signature): Query<Signature>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<FileId>() else {
        return error(StatusCode::NOT_FOUND, "not_found", "No such file.");
    };
    let (Some(exp), Some(sig)) = (signature.exp, signature.sig.as_deref()) else {
        return error(StatusCode::FORBIDDEN, "invalid_signature", "The download link is not signed.");
    };
    match signing::verify(&state.secret, id, exp, sig, chrono::Utc::now().timestamp()) {
        Ok(()) => {}
        Err(SignatureError::Expired) => {
            return error(StatusCode::FORBIDDEN, "link_expired", "The download link has expired.");
        }
        Err(SignatureError::Invalid) => {
            return error(StatusCode::FORBIDDEN, "invalid_signature", "The download link signature is invalid.");
        }
    }
    let path = state.root.join(id.node_relpath());
    let opened = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        Ok::<_, std::io::Error>((file, meta))
    })
    .await;
    let (file, meta) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return error(StatusCode::NOT_FOUND, "not_found", "No such file on this node.");
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, file.id = %id, "cannot open file");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error.");
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error."),
    };
    let len = meta.len();
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    // Files are immutable once in place, so id + size + mtime identify the bytes.
    let etag = format!("\"{}-{len:x}-{mtime:x}\"", id.0.simple());

    let if_range_ok = headers.get(header::IF_RANGE).is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| if_range_ok);
    let (status, start, count) = match range::parse(range_header, len) {
        RangeOutcome::Full => (StatusCode::OK, 0, len),
        RangeOutcome::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeOutcome::Unsatisfiable => {
            let mut response =
                error(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "The range is outside the file.");
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };

    let body = if method == Method::HEAD { Body::empty() } else { stream(file, start, count) };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1)) {
            h.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// The body: `count` bytes from `start`, read with `pread` on the blocking pool in
/// steps of at most [`READ_STEP`], one step ahead of the socket at most.
fn stream(file: std::fs::File, start: u64, count: u64) -> Body {
    let file = Arc::new(file);
    let steps = futures::stream::unfold((file, start, count), |(file, offset, left)| async move {
        if left == 0 {
            return None;
        }
        let want = left.min(READ_STEP) as usize;
        let reader = file.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            let mut filled = 0;
            while filled < want {
                match reader.read_at(&mut buf[filled..], offset + filled as u64)? {
                    0 => {
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while served"))
                    }
                    n => filled += n,
                }
            }
            Ok(Bytes::from(buf))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok(bytes) => {
                ferry_shared::metrics::BYTES_SERVED.with_label_values(&["node"]).inc_by(bytes.len() as u64);
                Some((Ok(bytes), (file, offset + want as u64, left - want as u64)))
            }
            // End the stream after the error: the client sees a truncated body.
            Err(e) => Some((Err(e), (file, offset, 0))),
        }
    });
    Body::from_stream(steps)
}
