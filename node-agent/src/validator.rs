//! The file's entity tag and the `If-Range` precondition (RFC 9110 §8.8.3, §13.1.5).
//!
//! Resuming clients send `If-Range` with the ETag they saw, so they never splice bytes
//! of two different files together. No `Last-Modified` is sent: the ETag is a strong
//! validator on its own, and a date-based `If-Range` then simply never matches, which
//! the RFC requires to be answered with the full representation.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use ferry_shared::types::FileId;

/// A strong ETag from id + size + modification time. Files are immutable once renamed
/// into place, so these three name the bytes; a copy replaced by repair gets a new
/// mtime and so a new tag, even with the same id and size.
pub fn etag(id: FileId, len: u64, modified: Option<SystemTime>) -> String {
    let mtime = modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("\"{}-{len:x}-{mtime:x}\"", id.0.simple())
}

/// Whether a `Range` header may be honoured given `If-Range`: yes without `If-Range`,
/// otherwise only if it is exactly our (strong) ETag. A weak tag or a date never
/// matches, so the client gets the whole, current file.
pub fn if_range_allows(if_range: Option<&HeaderValue>, etag: &str) -> bool {
    match if_range {
        None => true,
        Some(value) => value.to_str().is_ok_and(|v| v.trim() == etag),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn etags_are_strong_and_change_with_size_and_mtime() {
        let id = FileId::new();
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let tag = etag(id, 10, Some(t));
        assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"));
        assert!(HeaderValue::from_str(&tag).is_ok());
        assert_eq!(tag, etag(id, 10, Some(t)));
        assert_ne!(tag, etag(id, 11, Some(t)));
        assert_ne!(tag, etag(id, 10, Some(t + Duration::from_nanos(1))));
        assert_ne!(tag, etag(FileId::new(), 10, Some(t)));
        assert!(HeaderValue::from_str(&etag(id, 0, None)).is_ok());
    }

    #[test]
    fn if_range_needs_the_exact_strong_tag() {
        let tag = "\"abc-1-2\"";
        assert!(if_range_allows(None, tag));
        assert!(if_range_allows(Some(&HeaderValue::from_static("\"abc-1-2\"")), tag));
        assert!(if_range_allows(Some(&HeaderValue::from_static(" \"abc-1-2\" ")), tag));
        assert!(!if_range_allows(Some(&HeaderValue::from_static("W/\"abc-1-2\"")), tag));
        assert!(!if_range_allows(Some(&HeaderValue::from_static("\"abc-1-3\"")), tag));
        assert!(!if_range_allows(Some(&HeaderValue::from_static("abc-1-2")), tag));
        assert!(!if_range_allows(Some(&HeaderValue::from_static("Tue, 15 Nov 1994 08:12:31 GMT")), tag));
    }
}
