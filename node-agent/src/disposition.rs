//! The headers that tell a user agent what a download is: `Content-Disposition` with the
//! file's stored name (RFC 6266, with `filename*` in RFC 8187's encoding for names that
//! are not plain ASCII) and `Content-Type` guessed from the name's extension
//! (`mime_guess`, the shared-mime-info table; `application/octet-stream` when unknown).
//!
//! The name comes from the signed link, never from the request, so it is what the
//! owner uploaded; it is still escaped here as untrusted text.

use axum::http::HeaderValue;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// RFC 8187 §3.2.1 `attr-char` is ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" /
/// "." / "^" / "_" / "`" / "|" / "~"; everything else is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="<name>"; filename*=UTF-8''<RFC 8187>` for `name`.
///
/// `filename*` carries the exact name and is what RFC 6266 §4.3 user agents (browsers,
/// wget, aria2c) use. `filename` repeats it as a quoted-string: `"` and `\` escaped as
/// RFC 9110 §5.6.4 quoted-pairs, control characters replaced by `_`, and non-ASCII
/// letters kept as their UTF-8 bytes (obs-text), because the clients that read only
/// `filename` (curl -J) then save the name the user uploaded rather than a lossy
/// ASCII stand-in.
pub fn content_disposition(name: &str) -> HeaderValue {
    let mut fallback = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                fallback.push('\\');
                fallback.push(c);
            }
            c if c.is_control() => fallback.push('_'),
            c => fallback.push(c),
        }
    }
    let encoded = percent_encoding::utf8_percent_encode(name, ATTR_CHAR);
    let value = format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}");
    // No control byte went in, so this cannot fail; fall back to no name at all.
    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The media type for `name`'s extension; `application/octet-stream` when unknown.
pub fn content_type(name: &str) -> HeaderValue {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    HeaderValue::try_from(mime.essence_str()).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_ascii_name_is_sent_exactly_in_both_parameters() {
        let value = content_disposition("résumé 2024 (final).pdf");
        assert_eq!(
            value.as_bytes(),
            "attachment; filename=\"résumé 2024 (final).pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024%20%28final%29.pdf"
                .as_bytes()
        );
        assert_eq!(content_type("résumé 2024 (final).pdf"), "application/pdf");
    }

    #[test]
    fn quotes_backslashes_and_controls_cannot_break_out_of_the_header() {
        let value = content_disposition("a\"b\\c\r\nSet-Cookie: x=1;.txt");
        let text = value.to_str().expect("ascii");
        assert!(!text.contains('\r') && !text.contains('\n'), "{text}");
        assert!(
            text.starts_with("attachment; filename=\"a\\\"b\\\\c__Set-Cookie: x=1;.txt\"; filename*=UTF-8''"),
            "{text}"
        );
        assert!(text.ends_with("a%22b%5Cc%0D%0ASet-Cookie%3A%20x%3D1%3B.txt"), "{text}");
    }

    #[test]
    fn types_come_from_the_extension() {
        assert_eq!(content_type("photo.PNG"), "image/png");
        assert_eq!(content_type("notes.txt"), "text/plain");
        assert_eq!(content_type("archive.tar.gz"), "application/gzip");
        assert_eq!(content_type("no-extension"), "application/octet-stream");
        assert_eq!(content_type("weird.zzzz"), "application/octet-stream");
    }
}
