//! Signed, expiring download URLs.
//!
//! The API redirects a download to a node agent on another host or port; curl and
//! browsers drop `Authorization` on such a redirect, so the node cannot see the
//! client's JWT. Instead the API signs `(file id, expiry)` with a secret it shares with
//! every node agent, and the node checks the signature and the expiry. The file's
//! sha256 (so the node can verify what it serves) and its stored name (which the node
//! sends in `Content-Disposition`, RFC 6266) are signed too when the link carries them,
//! so nobody can make a node serve a file under a name of their choosing.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256 as Sha256Hasher;
use subtle::ConstantTimeEq;

use crate::types::{FileId, Sha256};

type HmacSha256 = Hmac<Sha256Hasher>;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the download link has expired")]
    Expired,
    #[error("the download link signature is invalid")]
    Invalid,
}

fn mac(secret: &[u8], file: FileId, expires_unix: i64, sha256: Option<&Sha256>, name: Option<&str>) -> HmacSha256 {
    // new_from_slice accepts any key length for HMAC; the error case cannot happen.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"ferry-download-v1\n");
    mac.update(file.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(expires_unix.to_string().as_bytes());
    if let Some(sha256) = sha256 {
        mac.update(b"\n");
        mac.update(sha256.to_string().as_bytes());
    }
    if let Some(name) = name {
        // A sha256 is 64 hex digits, so "name=" cannot be mistaken for one.
        mac.update(b"\nname=");
        mac.update(name.as_bytes());
    }
    mac
}

/// Hex signature for a download of `file` valid until `expires_unix`; with `sha256`,
/// the file's checksum is signed too, so the node can verify the bytes it serves; with
/// `name`, the file name the node will send.
pub fn sign(secret: &[u8], file: FileId, expires_unix: i64, sha256: Option<&Sha256>, name: Option<&str>) -> String {
    hex::encode(mac(secret, file, expires_unix, sha256, name).finalize().into_bytes())
}

/// Checks `sig` in constant time, then the expiry against `now_unix`.
pub fn verify(
    secret: &[u8],
    file: FileId,
    expires_unix: i64,
    sha256: Option<&Sha256>,
    name: Option<&str>,
    sig: &str,
    now_unix: i64,
) -> Result<(), SignatureError> {
    let expected = mac(secret, file, expires_unix, sha256, name).finalize().into_bytes();
    let given = hex::decode(sig).map_err(|_| SignatureError::Invalid)?;
    if given.len() != expected.len() || !bool::from(given.ct_eq(&expected)) {
        return Err(SignatureError::Invalid);
    }
    if now_unix > expires_unix {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// Path and query of a signed download on a node agent:
/// `/files/<id>?exp=..[&sha=..][&name=..]&sig=..` (the name percent-encoded).
pub fn signed_path(
    secret: &[u8],
    file: FileId,
    expires_unix: i64,
    sha256: Option<&Sha256>,
    name: Option<&str>,
) -> String {
    let sig = sign(secret, file, expires_unix, sha256, name);
    let mut path = format!("/files/{file}?exp={expires_unix}");
    if let Some(sha) = sha256 {
        path.push_str(&format!("&sha={sha}"));
    }
    if let Some(name) = name {
        path.push_str("&name=");
        path.extend(percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC));
    }
    path.push_str(&format!("&sig={sig}"));
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_forgery_and_expiry() {
        let file = FileId::new();
        let sig = sign(b"k", file, 100, None, None);
        assert_eq!(verify(b"k", file, 100, None, None, &sig, 50), Ok(()));
        assert_eq!(verify(b"k", file, 100, None, None, &sig, 101), Err(SignatureError::Expired));
        assert_eq!(verify(b"other", file, 100, None, None, &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 101, None, None, &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", FileId::new(), 100, None, None, &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 100, None, None, "zz", 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 100, None, None, "", 50), Err(SignatureError::Invalid));
    }

    #[test]
    fn the_checksum_is_part_of_what_is_signed() {
        let file = FileId::new();
        let sha = Sha256([7; 32]);
        let sig = sign(b"k", file, 100, Some(&sha), None);
        assert_eq!(verify(b"k", file, 100, Some(&sha), None, &sig, 50), Ok(()));
        assert_eq!(verify(b"k", file, 100, Some(&Sha256([8; 32])), None, &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 100, None, None, &sig, 50), Err(SignatureError::Invalid));
    }

    #[test]
    fn the_name_is_part_of_what_is_signed_and_travels_encoded() {
        let file = FileId::new();
        let name = "résumé 2024 (final).pdf";
        let sig = sign(b"k", file, 100, None, Some(name));
        assert_eq!(verify(b"k", file, 100, None, Some(name), &sig, 50), Ok(()));
        assert_eq!(verify(b"k", file, 100, None, Some("other.pdf"), &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 100, None, None, &sig, 50), Err(SignatureError::Invalid));
        let path = signed_path(b"k", file, 100, None, Some(name));
        assert!(path.contains("&name=r%C3%A9sum%C3%A9%202024%20%28final%29%2Epdf&sig="), "{path}");
    }
}
