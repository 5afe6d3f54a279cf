//! Reads an upload request's body: either `multipart/form-data` (the original's
//! clients: fields `file`, `filename`, `parent`, `md5`, in any order) or a raw body
//! (the fast path). The file bytes are streamed to a staging temp file as they
//! arrive, with limits enforced before each frame hits the disk; the small text
//! fields are kept in memory with a cap.

use std::path::Path;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::framing::{Framed, FramingError};
use super::pace::{BodyPace, Paced, PacedError};
use super::staging::{ChunkWriter, DigestStart, Written};
use crate::error::ApiError;

/// Cap on a text field (filename, parent, md5).
const MAX_FIELD_BYTES: usize = 4096;
/// Cap on the number of multipart fields, so a body of empty parts cannot spin.
const MAX_FIELDS: usize = 16;

/// Text fields that came with the body.
#[derive(Debug, Default)]
pub struct Fields {
    pub filename: Option<String>,
    pub parent: Option<String>,
    pub md5: Option<String>,
}

/// The received chunk: written at its offset and fsynced, not yet recorded, with the
/// upload's digests advanced over it (None: the body had no file part).
pub struct Received {
    pub written: Option<Written>,
    pub size: u64,
    pub fields: Fields,
}

/// Limits for one body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Where in the data file the chunk starts.
    pub offset: u64,
    /// Exact size the chunk must have (from Content-Range), if known.
    pub expected: Option<u64>,
    /// Most bytes accepted, whatever `expected` says (chunk size, file size, quota).
    pub max: u64,
    /// 413 when `max` is exceeded, else 400 size mismatch.
    pub max_is_limit: bool,
}

/// Streams `body` (multipart when `content_type` says so, else raw) into the upload's
/// data file under `limits`, at no less than `pace`: a body that falls behind fails
/// with 408 `body_too_slow`, whatever the parser made of the cut-off stream.
pub async fn receive(
    body: Body,
    content_type: Option<&str>,
    dir: &Path,
    limits: Limits,
    pace: BodyPace,
    start: DigestStart,
) -> Result<Received, ApiError> {
    let boundary = super::framing::boundary(content_type)?;
    let stream = Paced::new(body.into_data_stream(), pace);
    let too_slow = stream.tripped();
    let received = match boundary {
        Some(boundary) => {
            let framed = Framed::new(stream, &boundary);
            receive_multipart(multer::Multipart::new(framed, boundary), dir, limits, start).await
        }
        None => write_stream(stream, dir, limits, start).await.map(|(written, size)| Received {
            written: Some(written),
            size,
            fields: Fields::default(),
        }),
    };
    if received.is_err() && too_slow.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(pace.too_slow());
    }
    received
}

async fn receive_multipart(
    mut multipart: multer::Multipart<'static>,
    dir: &Path,
    limits: Limits,
    start: DigestStart,
) -> Result<Received, ApiError> {
    let mut start = Some(start);
    let mut received = Received { written: None, size: 0, fields: Fields::default() };
    for _ in 0..MAX_FIELDS {
        let Some(field) = multipart.next_field().await.map_err(malformed)? else {
            return Ok(received);
        };
        match field.name().unwrap_or_default() {
            "file" => {
                let Some(start) = start.take() else {
                    return Err(ApiError::bad_request("duplicate_file", "Send exactly one 'file' field."));
                };
                let (written, size) =
                    write_stream(field.map(|frame| frame.map_err(malformed)), dir, limits, start).await?;
                received.written = Some(written);
                received.size = size;
            }
            name => {
                let slot = match name {
                    "filename" => &mut received.fields.filename,
                    "parent" => &mut received.fields.parent,
                    "md5" => &mut received.fields.md5,
                    // Unknown fields are read and dropped (bounded), like the original.
                    _ => &mut None,
                };
                *slot = Some(read_text(field).await?);
            }
        }
    }
    Err(ApiError::bad_request("too_many_fields", format!("At most {MAX_FIELDS} form fields are accepted.")))
}

async fn read_text(mut field: multer::Field<'static>) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    while let Some(frame) = field.chunk().await.map_err(malformed)? {
        if buf.len() + frame.len() > MAX_FIELD_BYTES {
            return Err(ApiError::bad_request(
                "field_too_long",
                format!("Form fields are limited to {MAX_FIELD_BYTES} bytes."),
            ));
        }
        buf.extend_from_slice(&frame);
    }
    String::from_utf8(buf).map_err(|_| ApiError::bad_request("invalid_field", "Form fields must be UTF-8."))
}

async fn write_stream<S, E>(
    mut stream: S,
    dir: &Path,
    limits: Limits,
    start: DigestStart,
) -> Result<(Written, u64), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<ApiError>,
{
    let mut writer = ChunkWriter::open(dir, start).await.map_err(ApiError::internal)?;
    let mut size: u64 = 0;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(Into::into)?;
        size += frame.len() as u64;
        if size > limits.max {
            return Err(if limits.max_is_limit {
                ApiError::TooLarge {
                    detail: format!("The upload exceeds the limit of {} bytes.", limits.max),
                    limit: limits.max,
                }
            } else {
                size_mismatch(limits.expected.unwrap_or(limits.max))
            });
        }
        if limits.expected.is_some_and(|expected| size > expected) {
            return Err(size_mismatch(limits.expected.unwrap_or_default()));
        }
        ferry_shared::metrics::BYTES_RECEIVED.with_label_values(&["upload"]).inc_by(frame.len() as u64);
        writer.write(&frame).await.map_err(ApiError::internal)?;
    }
    if let Some(expected) = limits.expected {
        if size != expected {
            // An empty body is a missing chunk, not a short one (drf-chunked-upload's
            // "No chunk file was submitted").
            return Err(if size == 0 { file_required() } else { size_mismatch(expected) });
        }
    }
    let written = writer.finish().await.map_err(ApiError::internal)?;
    Ok((written, size))
}

/// `400 file_required`: the request carried no chunk (no multipart `file` field, or an
/// empty raw body); drf-chunked-upload words it "No chunk file was submitted".
pub fn file_required() -> ApiError {
    ApiError::bad_request(
        "file_required",
        "No chunk file was submitted (a multipart 'file' field, or a raw application/octet-stream body).",
    )
}

fn size_mismatch(expected: u64) -> ApiError {
    ApiError::bad_request(
        "size_mismatch",
        format!("File size doesn't match headers: the chunk must be exactly {expected} bytes as Content-Range says."),
    )
}

/// A multipart body multer could not parse: over one of [`super::framing`]'s limits
/// (`400 multipart_limit`), unreadable, or malformed.
fn malformed(e: multer::Error) -> ApiError {
    if let multer::Error::StreamReadFailed(cause) = &e {
        if let Some(limit) = cause.downcast_ref::<FramingError>() {
            return ApiError::bad_request("multipart_limit", format!("The multipart body is refused: {limit}."));
        }
        return incomplete(cause);
    }
    if matches!(e, multer::Error::IncompleteFieldData { .. } | multer::Error::IncompleteStream) {
        return incomplete(e);
    }
    ApiError::bad_request("malformed_body", format!("The multipart body is malformed: {e}"))
}

fn incomplete(cause: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("incomplete_body", format!("The request body could not be read: {cause}"))
}

impl From<PacedError> for ApiError {
    fn from(e: PacedError) -> Self {
        incomplete(e)
    }
}
