//! The tus 1.0 headers (<https://tus.io/protocols/resumable-upload>), parsed once at
//! the edge: `Upload-Length`/`Upload-Defer-Length`, `Upload-Offset`, `Upload-Metadata`
//! and `Upload-Checksum`, and `Upload-Expires` written in RFC 9110's date form.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use axum::http::HeaderMap;
use base64::Engine;
use chrono::{DateTime, Utc};
use md5::Digest;

use crate::error::ApiError;
use ferry_shared::types::FileId;

/// The one protocol version served, for `Tus-Resumable` and `Tus-Version`.
pub const VERSION: &str = "1.0.0";
/// The extensions implemented, for `Tus-Extension`.
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum,concatenation";
/// The `Upload-Checksum` algorithms accepted, for `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &str = "md5,sha1,sha256";
/// The content type of a PATCH body (and of a creation-with-upload POST's).
pub const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// Most bytes of an `Upload-Metadata` header stored with an upload.
pub const MAX_METADATA_BYTES: usize = 4096;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_request("invalid_header", format!("{name} is not ASCII."))))
        .transpose()
}

/// A non-negative integer header (`Upload-Offset`, `Upload-Length`), digits only.
pub fn size_header(headers: &HeaderMap, name: &str, code: &'static str) -> Result<Option<u64>, ApiError> {
    let Some(raw) = header(headers, name)? else { return Ok(None) };
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(code, format!("{name} must be a non-negative integer.")));
    }
    raw.parse().map(Some).map_err(|_| ApiError::bad_request(code, format!("{name} is too large.")))
}

/// What a creation request says about the upload's length: `Upload-Length: N`, or
/// `Upload-Defer-Length: 1` (None), exactly one of the two.
pub fn creation_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let length = size_header(headers, "upload-length", "invalid_upload_length")?;
    let deferred = header(headers, "upload-defer-length")?;
    match (length, deferred) {
        (Some(length), None) => Ok(Some(length)),
        (None, Some("1")) => Ok(None),
        (None, Some(_)) => {
            Err(ApiError::bad_request("invalid_upload_length", "Upload-Defer-Length must be 1 when present."))
        }
        _ => Err(ApiError::bad_request(
            "invalid_upload_length",
            "Send exactly one of Upload-Length and Upload-Defer-Length: 1.",
        )),
    }
}

/// `Upload-Metadata`: comma-separated `key value` pairs, the value base64 and
/// optional; keys unique, without spaces or commas. Kept raw (to echo) and decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub raw: Option<String>,
    pub pairs: BTreeMap<String, Vec<u8>>,
}

impl Metadata {
    pub fn from_headers(headers: &HeaderMap) -> Result<Metadata, ApiError> {
        match header(headers, "upload-metadata")? {
            None => Ok(Metadata::default()),
            Some(raw) => Metadata::parse(raw),
        }
    }

    pub fn parse(raw: &str) -> Result<Metadata, ApiError> {
        let bad = |why: &str| ApiError::bad_request("invalid_metadata", format!("Upload-Metadata {why}."));
        if raw.len() > MAX_METADATA_BYTES {
            return Err(bad(&format!("is limited to {MAX_METADATA_BYTES} bytes")));
        }
        let mut pairs = BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad("has a key that is empty or not printable ASCII"));
            }
            let value = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|_| bad(&format!("has a value for '{key}' that is not base64")))?;
            if pairs.insert(key.to_owned(), value).is_some() {
                return Err(bad(&format!("repeats the key '{key}'")));
            }
        }
        Ok(Metadata { raw: (!pairs.is_empty()).then(|| raw.trim().to_owned()), pairs })
    }

    /// The value of `key` as UTF-8 text, if present.
    pub fn text(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.pairs
            .get(key)
            .map(|v| {
                String::from_utf8(v.clone()).map_err(|_| {
                    ApiError::bad_request("invalid_metadata", format!("Upload-Metadata '{key}' is not UTF-8."))
                })
            })
            .transpose()
    }
}

/// A checksum algorithm of the `checksum` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    /// The one algorithm tus 1.0 requires a server to accept (tuspy's only one).
    Sha1,
    Sha256,
}

/// `Upload-Checksum: <algorithm> <base64 digest>`: the digest of this request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

impl Checksum {
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
        header(headers, "upload-checksum")?.map(Checksum::parse).transpose()
    }

    /// 400 `unsupported_checksum_algorithm` for an algorithm not in
    /// [`CHECKSUM_ALGORITHMS`] (tus 1.0, checksum extension), 400 `invalid_checksum`
    /// for a malformed value.
    pub fn parse(raw: &str) -> Result<Checksum, ApiError> {
        let invalid = || ApiError::bad_request("invalid_checksum", "Upload-Checksum must be '<algorithm> <base64>'.");
        let (name, value) = raw.trim().split_once(' ').ok_or_else(invalid)?;
        let (algorithm, len) = match name.to_ascii_lowercase().as_str() {
            "md5" => (Algorithm::Md5, 16),
            "sha1" => (Algorithm::Sha1, 20),
            "sha256" => (Algorithm::Sha256, 32),
            _ => {
                return Err(ApiError::bad_request(
                    "unsupported_checksum_algorithm",
                    format!("Upload-Checksum algorithm '{name}' is not supported; use one of {CHECKSUM_ALGORITHMS}."),
                ))
            }
        };
        let digest = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| invalid())?;
        if digest.len() != len {
            return Err(invalid());
        }
        Ok(Checksum { algorithm, digest })
    }

    /// Whether the `len` bytes at `offset` of `path` (just written and fsynced, so in
    /// the page cache) have this digest. Blocking: run it off the runtime.
    pub fn matches_file(&self, path: &Path, offset: u64, len: u64) -> std::io::Result<bool> {
        let file = File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut md5 = md5::Md5::new();
        let mut sha1 = sha1::Sha1::new();
        let mut sha256 = sha2::Sha256::new();
        let mut at = offset;
        let end = offset + len;
        while at < end {
            let want = usize::try_from((end - at).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = file.read_at(&mut buf[..want], at)?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "chunk shorter than received"));
            }
            match self.algorithm {
                Algorithm::Md5 => md5.update(&buf[..n]),
                Algorithm::Sha1 => sha1.update(&buf[..n]),
                Algorithm::Sha256 => sha256.update(&buf[..n]),
            }
            at += n as u64;
        }
        let digest: Vec<u8> = match self.algorithm {
            Algorithm::Md5 => md5.finalize().to_vec(),
            Algorithm::Sha1 => sha1.finalize().to_vec(),
            Algorithm::Sha256 => sha256.finalize().to_vec(),
        };
        Ok(digest == self.digest)
    }
}

/// Most partial uploads one final upload may concatenate.
pub const MAX_PARTS: usize = 256;

/// `Upload-Concat` on creation: `partial`, or `final;<url> <url> ...` naming the
/// caller's finished partial uploads in order (their ids are the URLs' last segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    Partial,
    Final(Vec<FileId>),
}

impl Concat {
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Concat>, ApiError> {
        header(headers, "upload-concat")?.map(Concat::parse).transpose()
    }

    pub fn parse(raw: &str) -> Result<Concat, ApiError> {
        let invalid = |why: String| ApiError::bad_request("invalid_concat", format!("Upload-Concat {why}."));
        let raw = raw.trim();
        if raw == "partial" {
            return Ok(Concat::Partial);
        }
        let Some(urls) = raw.strip_prefix("final;") else {
            return Err(invalid("must be 'partial' or 'final;<url> <url> ...'".into()));
        };
        let parts = urls
            .split_ascii_whitespace()
            .map(|url| {
                let segment = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
                segment.parse().map_err(|_| invalid(format!("names '{url}', which is not an upload URL")))
            })
            .collect::<Result<Vec<FileId>, _>>()?;
        if parts.is_empty() || parts.len() > MAX_PARTS {
            return Err(invalid(format!("must name between 1 and {MAX_PARTS} partial uploads")));
        }
        Ok(Concat::Final(parts))
    }

    /// The header as recorded with a final upload (and echoed by HEAD).
    pub fn final_header(parts: &[FileId]) -> String {
        let urls: Vec<String> = parts.iter().map(|p| format!("/files/{p}")).collect();
        format!("final;{}", urls.join(" "))
    }
}

/// `Upload-Expires` (and any tus date): RFC 9110's IMF-fixdate.
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Whether the request body is a tus chunk (`Content-Type:
/// application/offset+octet-stream`, parameters ignored).
pub fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_STREAM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn metadata_as_tus_clients_send_it() {
        // tus-js-client / Uppy: "filename", "filetype", and an empty value.
        let m = Metadata::parse("filename cmVwb3J0LnBkZg==,filetype YXBwbGljYXRpb24vcGRm,is_confidential").expect("ok");
        assert_eq!(m.text("filename").expect("utf8").as_deref(), Some("report.pdf"));
        assert_eq!(m.text("filetype").expect("utf8").as_deref(), Some("application/pdf"));
        assert_eq!(m.pairs.get("is_confidential"), Some(&Vec::new()));
        assert_eq!(m.raw.as_deref(), Some("filename cmVwb3J0LnBkZg==,filetype YXBwbGljYXRpb24vcGRm,is_confidential"));
    }

    #[test]
    fn metadata_refuses_repeats_bad_base64_and_oversize() {
        assert_eq!(
            Metadata::parse("a YQ==,a Yg==").expect_err("repeat").to_string(),
            "Upload-Metadata repeats the key 'a'."
        );
        assert!(Metadata::parse("a !!!").is_err());
        assert!(Metadata::parse(&format!("a {}", "A".repeat(MAX_METADATA_BYTES))).is_err());
        assert_eq!(Metadata::parse("").expect("empty"), Metadata::default());
    }

    #[test]
    fn creation_needs_exactly_one_length() {
        assert_eq!(creation_length(&headers(&[("upload-length", "10")])).expect("ok"), Some(10));
        assert_eq!(creation_length(&headers(&[("upload-defer-length", "1")])).expect("ok"), None);
        assert!(creation_length(&headers(&[])).is_err());
        assert!(creation_length(&headers(&[("upload-length", "10"), ("upload-defer-length", "1")])).is_err());
        assert!(creation_length(&headers(&[("upload-defer-length", "0")])).is_err());
        assert!(creation_length(&headers(&[("upload-length", "-1")])).is_err());
        assert!(creation_length(&headers(&[("upload-length", "+1")])).is_err());
    }

    #[test]
    fn checksums_name_a_known_algorithm_and_a_digest_of_its_size() {
        let md5 = Checksum::parse("md5 1B2M2Y8AsgTpgAmY7PhCfg==").expect("md5 of nothing");
        assert_eq!(md5.algorithm, Algorithm::Md5);
        assert_eq!(Checksum::parse("SHA1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=").expect("sha1").algorithm, Algorithm::Sha1);
        let crc = Checksum::parse("crc32 AAAAAA==").expect_err("crc32 is not offered");
        assert!(crc.to_string().contains("crc32"), "{crc}");
        assert!(Checksum::parse("md5 AAAA").is_err());
        assert!(Checksum::parse("md5").is_err());
    }

    #[test]
    fn checksums_are_checked_against_the_bytes_on_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("data");
        std::fs::write(&path, b"xxhelloyy").expect("write");
        // md5("hello") and sha256("hello"), base64.
        let md5 = Checksum::parse("md5 XUFAKrxLKna5cZ2REBfFkg==").expect("md5");
        let sha = Checksum::parse("sha256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=").expect("sha");
        let sha1 = Checksum::parse("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=").expect("sha1");
        assert!(sha1.matches_file(&path, 2, 5).expect("read"));
        assert!(md5.matches_file(&path, 2, 5).expect("read"));
        assert!(sha.matches_file(&path, 2, 5).expect("read"));
        assert!(!md5.matches_file(&path, 1, 5).expect("read"));
        assert!(md5.matches_file(&path, 6, 5).is_err(), "a range past the end is an error, not a match");
    }

    #[test]
    fn concat_is_partial_or_a_final_list_of_upload_urls() {
        assert_eq!(Concat::parse("partial").expect("partial"), Concat::Partial);
        let a: FileId = "0b8a4a4e-8f0e-4e59-9a52-2a0d1c1f3f11".parse().expect("id");
        let b: FileId = "6f1f5c0e-9a8b-4c3d-8e7f-1a2b3c4d5e6f".parse().expect("id");
        let raw = format!("final;/files/{a} http://h:8000/files/{b}");
        assert_eq!(Concat::parse(&raw).expect("final"), Concat::Final(vec![a, b]));
        assert_eq!(Concat::final_header(&[a, b]), format!("final;/files/{a} /files/{b}"));
        assert!(Concat::parse("final;").is_err());
        assert!(Concat::parse("final;/files/not-an-id").is_err());
        assert!(Concat::parse("whole").is_err());
    }

    #[test]
    fn expiry_dates_are_imf_fixdate() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T12:05:09Z").expect("date").with_timezone(&Utc);
        assert_eq!(http_date(at), "Mon, 30 Nov 2026 12:05:09 GMT");
    }

    proptest! {
        #[test]
        fn any_header_value_parses_or_is_refused_without_panic(raw in "\\PC{0,200}") {
            let _ = Metadata::parse(&raw);
            let _ = Checksum::parse(&raw);
            let _ = Concat::parse(&raw);
        }

        #[test]
        fn metadata_round_trips(pairs in proptest::collection::btree_map("[a-z_]{1,8}", proptest::collection::vec(any::<u8>(), 0..32), 0..6)) {
            let raw = pairs
                .iter()
                .map(|(k, v)| format!("{k} {}", base64::engine::general_purpose::STANDARD.encode(v)))
                .collect::<Vec<_>>()
                .join(",");
            prop_assert_eq!(Metadata::parse(&raw).expect("valid").pairs, pairs);
        }
    }
}
