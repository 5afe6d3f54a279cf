//! Small request bodies (login, completing POST): urlencoded form, JSON object or
//! multipart text fields, read with a hard size cap.

use std::collections::HashMap;

use axum::body::Body;
use serde_json::Value;

use crate::error::ApiError;

const MAX_FORM_BYTES: usize = 64 * 1024;

pub async fn small_form(body: Body, content_type: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        ApiError::bad_request("body_too_large", format!("This request body is limited to {MAX_FORM_BYTES} bytes."))
    })?;
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
    if let Some(boundary) = content_type.and_then(|ct| multer::parse_boundary(ct).ok()) {
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
