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
use ferry_shared::types::{FileId, Sha256};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;
use std::path::PathBuf;

use crate::range::{self, RangeOutcome};
use crate::NodeState;

/// Bytes read per step of a body: large enough that a 1 MiB range is one read, small
/// enough to bound memory per connection.
const READ_STEP: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
pub struct Signature {
    exp: Option<i64>,
    /// The file's sha256 as the API knows it (signed too): a whole-file read is checked
    /// against it while it is served.
    sha: Option<String>,
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
    let expected = match signature.sha.as_deref().map(str::parse::<Sha256>) {
        None => None,
        Some(Ok(sha)) => Some(sha),
        Some(Err(_)) => return error(StatusCode::FORBIDDEN, "invalid_signature", "The download link is malformed."),
    };
    match signing::verify(&state.secret, id, exp, expected.as_ref(), sig, chrono::Utc::now().timestamp()) {
        Ok(()) => {}
        Err(SignatureError::Expired) => {
            return error(StatusCode::FORBIDDEN, "link_expired", "The download link has expired.");
        }
        Err(SignatureError::Invalid) => {
            return error(StatusCode::FORBIDDEN, "invalid_signature", "The download link signature is invalid.");
        }
    }
    let path = state.root.join(id.node_relpath());
    let served_path = path.clone();
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

    // A whole-file read with a known checksum is verified on the way out.
    let verify =
        (status == StatusCode::OK).then_some(expected).flatten().map(|sha| (sha, served_path, id, state.clone()));
    let body = if method == Method::HEAD { Body::empty() } else { stream(file, start, count, verify) };
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
/// steps of at most [`READ_STEP`], one step ahead of the socket at most. With
/// `verify`, the bytes are hashed as they go and, if the whole does not match, the
/// copy is moved aside so it is never served again; the monitor's scrub then finds it
/// missing and the file is repaired from a good replica.
fn stream(file: std::fs::File, start: u64, count: u64, verify: Option<Verify>) -> Body {
    let file = Arc::new(file);
    let hasher = verify.map(|v| (sha2::Sha256::new(), v));
    let steps = futures::stream::unfold((file, start, count, hasher), |(file, offset, left, hasher)| async move {
        if left == 0 {
            return None;
        }
        let want = left.min(READ_STEP) as usize;
        let reader = file.clone();
        // Read and hash on the blocking pool; the hasher travels with the step.
        let read = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
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
            if let Some((h, _)) = hasher.as_mut() {
                h.update(&buf);
            }
            // Checked with the last bytes read: the stream may not be polled again
            // once Content-Length bytes are out.
            if want as u64 == left {
                if let Some((h, verify)) = hasher.take() {
                    check_served(h, verify);
                }
            }
            Ok((Bytes::from(buf), hasher))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok((bytes, hasher)) => {
                ferry_shared::metrics::BYTES_SERVED.with_label_values(&["node"]).inc_by(bytes.len() as u64);
                Some((Ok(bytes), (file, offset + want as u64, left - want as u64, hasher)))
            }
            // End the stream after the error: the client sees a truncated body.
            Err(e) => Some((Err(e), (file, offset, 0, None))),
        }
    });
    Body::from_stream(steps)
}

/// What a verified whole-file read checks against: the signed checksum, the file's
/// path and id, and where to report a mismatch.
type Verify = (Sha256, PathBuf, FileId, Arc<NodeState>);

/// Runs on the blocking pool, with the last bytes of the file.
fn check_served(hasher: sha2::Sha256, (expected, path, id, state): Verify) {
    let actual: [u8; 32] = hasher.finalize().into();
    if actual == expected.0 {
        return;
    }
    if let Ok(mut corrupt) = state.corrupt.lock() {
        if corrupt.len() >= crate::CORRUPT_REPORTS {
            corrupt.pop_front();
        }
        corrupt.push_back(id);
    }
    let aside = path.with_extension(format!("corrupt-{}", chrono::Utc::now().timestamp()));
    tracing::error!(file = %path.display(), "served copy does not match its sha256; moving it aside");
    ferry_shared::metrics::CORRUPT_REPLICAS.with_label_values(&["served"]).inc();
    if let Err(error) = std::fs::rename(&path, &aside) {
        tracing::error!(%error, "could not move the corrupt copy aside");
    }
}
