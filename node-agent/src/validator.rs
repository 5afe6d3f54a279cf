//! Validators and preconditions: the file's entity tag and `Last-Modified` date, the
//! conditional requests `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` (RFC 9110 §13.1, evaluated in the order of §13.2.2) and the
//! `If-Range` precondition of a range request (§13.1.5).
//!
//! Resuming clients send `If-Range` with the ETag they saw, so they never splice bytes
//! of two different files together. A date in `If-Range` never matches (the RFC lets a
//! server send the whole representation whenever it cannot be sure), so only the strong
//! ETag can keep a range.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue};
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

/// `Last-Modified` for a copy modified at `modified` (an IMF-fixdate, RFC 9110 §5.6.7).
pub fn last_modified(modified: SystemTime) -> HeaderValue {
    HeaderValue::try_from(httpdate::fmt_http_date(modified)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What the preconditions of a GET or HEAD say (RFC 9110 §13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the representation (maybe a range of it).
    Proceed,
    /// `304 Not Modified`: the client's copy is current.
    NotModified,
    /// `412 Precondition Failed`.
    Failed,
}

/// The conditional headers of a request, as sent.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    if_match: Option<HeaderValue>,
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
    if_unmodified_since: Option<HeaderValue>,
}

impl Conditions {
    pub fn from_headers(headers: &HeaderMap) -> Conditions {
        Conditions {
            if_match: headers.get(header::IF_MATCH).cloned(),
            if_none_match: headers.get(header::IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(header::IF_MODIFIED_SINCE).cloned(),
            if_unmodified_since: headers.get(header::IF_UNMODIFIED_SINCE).cloned(),
        }
    }

    /// Evaluates the preconditions of a GET/HEAD against the current representation's
    /// strong `etag` and modification time, in RFC 9110 §13.2.2's order:
    /// 1. `If-Match` (strong comparison; `*` matches any current file), else
    /// 2. `If-Unmodified-Since` (ignored when not a valid date): false -> 412;
    /// 3. `If-None-Match` (weak comparison): a match -> 304, else
    /// 4. `If-Modified-Since` (ignored when not a valid date, or with `If-None-Match`):
    ///    not modified since -> 304.
    ///
    /// Dates compare at one-second resolution, as `Last-Modified` is sent.
    pub fn evaluate(&self, etag: &str, modified: Option<SystemTime>) -> Precondition {
        let modified_secs = modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs());
        let date = |v: &HeaderValue| {
            let t = httpdate::parse_http_date(v.to_str().ok()?.trim()).ok()?;
            Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
        };
        if let Some(value) = &self.if_match {
            if !list_matches(value, etag, Comparison::Strong) {
                return Precondition::Failed;
            }
        } else if let (Some(since), Some(modified)) = (self.if_unmodified_since.as_ref().and_then(date), modified_secs)
        {
            if modified > since {
                return Precondition::Failed;
            }
        }
        if let Some(value) = &self.if_none_match {
            if list_matches(value, etag, Comparison::Weak) {
                return Precondition::NotModified;
            }
        } else if let (Some(since), Some(modified)) = (self.if_modified_since.as_ref().and_then(date), modified_secs) {
            if modified <= since {
                return Precondition::NotModified;
            }
        }
        Precondition::Proceed
    }
}

#[derive(Clone, Copy)]
enum Comparison {
    /// RFC 9110 §8.8.3.2: both tags strong and identical.
    Strong,
    /// Identical opaque tags, either or both weak.
    Weak,
}

/// Whether an `If-Match`/`If-None-Match` field value (`*` or a list of entity tags)
/// matches `etag`, our strong tag. An unparsable value matches nothing.
fn list_matches(value: &HeaderValue, etag: &str, comparison: Comparison) -> bool {
    let Ok(text) = value.to_str() else { return false };
    if text.trim() == "*" {
        return true;
    }
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let weak = rest.starts_with("W/");
        let tag_start = if weak { &rest[2..] } else { rest };
        // entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc never includes a DQUOTE.
        let Some(body) = tag_start.strip_prefix('"') else { return false };
        let Some(end) = body.find('"') else { return false };
        let tag = &tag_start[..end + 2];
        let matched = match comparison {
            Comparison::Strong => !weak && tag == etag,
            Comparison::Weak => tag == etag,
        };
        if matched {
            return true;
        }
        rest = &body[end + 1..];
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

    fn cond(pairs: &[(header::HeaderName, &str)]) -> Conditions {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).expect("header"));
        }
        Conditions::from_headers(&headers)
    }

    #[test]
    fn preconditions_follow_rfc_9110_in_order() {
        use Precondition::*;
        let tag = "\"abc-1-2\"";
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(600);
        let at = httpdate::fmt_http_date(t);
        let before = httpdate::fmt_http_date(t - Duration::from_secs(10));
        let after = httpdate::fmt_http_date(t + Duration::from_secs(10));
        let m = Some(t);
        let cases: Vec<(Vec<(header::HeaderName, &str)>, Precondition)> = vec![
            (vec![], Proceed),
            // If-None-Match: weak comparison; a match is 304 for GET/HEAD.
            (vec![(header::IF_NONE_MATCH, tag)], NotModified),
            (vec![(header::IF_NONE_MATCH, "W/\"abc-1-2\"")], NotModified),
            (vec![(header::IF_NONE_MATCH, "\"x\", \"abc-1-2\"")], NotModified),
            (vec![(header::IF_NONE_MATCH, "*")], NotModified),
            (vec![(header::IF_NONE_MATCH, "\"other\"")], Proceed),
            // If-Match: strong comparison; no match is 412.
            (vec![(header::IF_MATCH, tag)], Proceed),
            (vec![(header::IF_MATCH, "*")], Proceed),
            (vec![(header::IF_MATCH, "W/\"abc-1-2\"")], Failed),
            (vec![(header::IF_MATCH, "\"other\"")], Failed),
            // Dates, at second resolution.
            (vec![(header::IF_MODIFIED_SINCE, &at)], NotModified),
            (vec![(header::IF_MODIFIED_SINCE, &after)], NotModified),
            (vec![(header::IF_MODIFIED_SINCE, &before)], Proceed),
            (vec![(header::IF_MODIFIED_SINCE, "not a date")], Proceed),
            (vec![(header::IF_UNMODIFIED_SINCE, &before)], Failed),
            (vec![(header::IF_UNMODIFIED_SINCE, &at)], Proceed),
            (vec![(header::IF_UNMODIFIED_SINCE, "garbage")], Proceed),
            // If-None-Match wins over If-Modified-Since; If-Match over If-Unmodified-Since.
            (vec![(header::IF_NONE_MATCH, "\"other\""), (header::IF_MODIFIED_SINCE, &after)], Proceed),
            (vec![(header::IF_MATCH, tag), (header::IF_UNMODIFIED_SINCE, &before)], Proceed),
            // A failed If-Match is 412 even when If-None-Match would say 304.
            (vec![(header::IF_MATCH, "\"other\""), (header::IF_NONE_MATCH, tag)], Failed),
        ];
        for (headers, expected) in cases {
            assert_eq!(cond(&headers).evaluate(tag, m), expected, "{headers:?}");
        }
        assert_eq!(last_modified(t), at.as_str());
    }
}
