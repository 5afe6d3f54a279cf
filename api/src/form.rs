//! Small request bodies (login, completing POST): urlencoded form, JSON object or
//! multipart text fields, read whole under a size cap and the body pace floor
//! ([`crate::upload::pace::read_whole`]).

use std::collections::HashMap;

use axum::body::Body;
use serde_json::Value;

use crate::error::ApiError;
use crate::upload::framing;
use crate::upload::pace::{read_whole, BodyPace};

const MAX_FORM_BYTES: usize = 64 * 1024;

/// The fields of a small body of `content_type`, at most 64 KiB, arriving at no less
/// than `pace`.
///
/// # Errors
/// Those of [`read_whole`]; 400 `invalid_json`, `malformed_body` or `invalid_form` for a
/// body its content type does not parse.
pub async fn small_form(
    body: Body,
    content_type: Option<&str>,
    pace: BodyPace,
) -> Result<HashMap<String, String>, ApiError> {
    let boundary = framing::boundary(content_type)?;
    let bytes = read_whole(body, MAX_FORM_BYTES, pace).await?;
    let ct = content_type.unwrap_or_default().to_ascii_lowercase();
    if ct.starts_with("application/json") {
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|_| ApiError::bad_request("invalid_json", "The body is not valid JSON."))?;
        let Value::Object(map) = value else {
            return Err(ApiError::bad_request("invalid_json", "The body must be a JSON object."));
        };
        return Ok(map
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect());
    }
    if let Some(boundary) = boundary {
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut out = HashMap::new();
        let malformed = |_| ApiError::bad_request("malformed_body", "The multipart body is malformed.");
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_owned();
            let text = field.text().await.map_err(malformed)?;
            out.insert(name, text);
        }
        return Ok(out);
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| ApiError::bad_request("invalid_form", "The form body is malformed."))
}
