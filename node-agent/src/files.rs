//! `GET|HEAD /files/{id}?exp=..&sig=..`: a download the API redirected here.
//!
//! Order of checks: the id must parse (else 404, before anything else, so a traversal
//! attempt never gets further), the link must be signed and fresh (403), the file must
//! be here (404). Only then are the conditional headers (RFC 9110 §13: 412 or 304)
//! and then `If-Range` and `Range` looked at.

use std::fs::{File, Metadata};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::rejection::{ExtensionRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use ferry_shared::types::FileId;

use crate::body::{self, Verify};
use crate::buffers::Buffer;
use crate::disposition;
use crate::error::ServeError;
use crate::link::{self, LinkQuery};
use crate::range::{self, RangeOutcome};
use crate::state::NodeState;
use crate::validator::{self, Conditions, Precondition};
use crate::verified::CopyKey;

pub async fn serve(
    State(state): State<Arc<NodeState>>,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<LinkQuery>, QueryRejection>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ServeError> {
    // The path segment arrives percent-decoded; anything but a UUID (`..%2f..`, NUL,
    // an absolute path) fails here, and only the parsed id ever becomes a path.
    let id: FileId = id.ok().and_then(|Path(raw)| raw.parse().ok()).ok_or(ServeError::NotFound)?;
    // A query that does not even decode (e.g. a repeated `sig`) is a broken link.
    let Query(query) = query.map_err(|_| ServeError::MalformedLink)?;
    let grant = link::authorize(state.secret(), id, &query, chrono::Utc::now().timestamp())?;
    let expected = grant.sha256;

    // A body holds read buffers until it is sent: one client, or one link, may have only
    // its share of them in flight (429 beyond), held until the body is dropped.
    let slots = if method == Method::HEAD {
        None
    } else {
        let client = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        Some(state.download_slots(client, query.signature())?)
    };
    // HEAD gets the same headers but no body, so the file is not read at all.
    let buffer = if method == Method::HEAD { None } else { Some(state.buffers().take().await) };
    let path = state.path_of(id);
    let opened = {
        let path = path.clone();
        let range = headers.get(header::RANGE).cloned();
        let if_range = headers.get(header::IF_RANGE).cloned();
        let conditions = Conditions::from_headers(&headers);
        tokio::task::spawn_blocking(move || open(&path, id, &conditions, range.as_ref(), if_range.as_ref(), buffer))
            .await
            .map_err(|e| ServeError::Internal { context: "opening a file", source: std::io::Error::other(e) })??
    };
    let Opened { file, meta, etag, precondition, outcome, first } = opened;
    let last_modified = meta.modified().ok().map(validator::last_modified);
    if precondition == Precondition::NotModified {
        // 304: the validators and caching headers a 200 would carry, no body.
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let h = response.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
        if let Ok(value) = HeaderValue::try_from(etag) {
            h.insert(header::ETAG, value);
        }
        if let Some(value) = last_modified {
            h.insert(header::LAST_MODIFIED, value);
        }
        return Ok(response);
    }
    let len = meta.len();
    let (status, start) = match outcome {
        RangeOutcome::Full => (StatusCode::OK, 0),
        RangeOutcome::Partial { start, .. } => (StatusCode::PARTIAL_CONTENT, start),
        RangeOutcome::Unsatisfiable => return Err(ServeError::RangeNotSatisfiable { len }),
    };
    let count = outcome.byte_count(len);

    // Only a whole-file read can be checked against the whole file's checksum, and a
    // copy verified recently (unchanged since) is not hashed again; see `verified`.
    let key = CopyKey::of(&meta);
    let verify = expected
        .filter(|_| status == StatusCode::OK)
        .filter(|sha| !state.verified().is_fresh(id, key, sha))
        .map(|expected| Verify { expected, id, path, key, state: state.clone() });
    let verifying = verify.is_some();
    let body = if method == Method::HEAD {
        axum::body::Body::empty()
    } else {
        body::stream(state.clone(), file, start, count, first, verify, slots)
    };

    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    match grant.name.as_deref() {
        Some(name) => {
            h.insert(header::CONTENT_TYPE, disposition::content_type(name));
            h.insert(header::CONTENT_DISPOSITION, disposition::content_disposition(name));
        }
        None => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        }
    }
    if let Some(value) = last_modified {
        h.insert(header::LAST_MODIFIED, value);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    // Links are per-user and expire; shared caches must not keep the bytes.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    if let Ok(value) = HeaderValue::try_from(etag) {
        h.insert(header::ETAG, value);
    }
    if let RangeOutcome::Partial { start, end } = outcome {
        if let Ok(value) = HeaderValue::try_from(format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, value);
        }
    }
    tracing::debug!(
        file.id = %id,
        status = status.as_u16(),
        offset_bytes = start,
        size_bytes = count,
        verifying,
        "serving"
    );
    Ok(response)
}

/// What [`open`] found: the open file, its metadata and tag, which bytes to send, and
/// the first step of them if a buffer was given.
struct Opened {
    file: File,
    meta: Metadata,
    etag: String,
    precondition: Precondition,
    outcome: RangeOutcome,
    first: Option<Bytes>,
}

/// Opens the copy of `id`, decides the range, and reads the first step into `buffer`:
/// all in one trip to the blocking pool, so a range of up to one step (the common
/// 1 MiB resume) needs no other. Without a buffer (HEAD) nothing is read.
fn open(
    path: &FsPath,
    id: FileId,
    conditions: &Conditions,
    range: Option<&HeaderValue>,
    if_range: Option<&HeaderValue>,
    buffer: Option<Buffer>,
) -> Result<Opened, ServeError> {
    let opened = File::open(path).and_then(|file| file.metadata().map(|meta| (file, meta)));
    let (file, meta) = match opened {
        // Something other than a regular file at that name (a directory left by a
        // broken copy) is as good as absent.
        Ok((file, meta)) if meta.is_file() => (file, meta),
        Ok(_) => return Err(ServeError::NotFound),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ServeError::NotFound),
        Err(source) => return Err(ServeError::Internal { context: "opening a file", source }),
    };
    let len = meta.len();
    let etag = validator::etag(id, len, meta.modified().ok());
    let precondition = conditions.evaluate(&etag, meta.modified().ok());
    match precondition {
        Precondition::Failed => return Err(ServeError::PreconditionFailed),
        Precondition::NotModified => {
            return Ok(Opened { file, meta, etag, precondition, outcome: RangeOutcome::Full, first: None })
        }
        Precondition::Proceed => {}
    }
    let range = range.filter(|_| validator::if_range_allows(if_range, &etag)).and_then(|v| v.to_str().ok());
    let outcome = range::parse(range, len);
    let start = match outcome {
        RangeOutcome::Partial { start, .. } => start,
        RangeOutcome::Full | RangeOutcome::Unsatisfiable => 0,
    };
    let count = outcome.byte_count(len);
    let first = match buffer {
        Some(buffer) if count > 0 => {
            let want = count.min(buffer.as_ref().len() as u64) as usize;
            Some(
                body::fill(&file, buffer, start, want)
                    .map_err(|source| ServeError::Internal { context: "reading a file", source })?,
            )
        }
        _ => None,
    };
    Ok(Opened { file, meta, etag, precondition, outcome, first })
}
