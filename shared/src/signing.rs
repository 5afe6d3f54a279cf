//! Signed, expiring download URLs.
//!
//! The API redirects a download to a node agent on another host or port; curl and
//! browsers drop `Authorization` on such a redirect, so the node cannot see the
//! client's JWT. Instead the API signs `(file id, expiry)` with a secret it shares with
//! every node agent, and the node checks the signature and the expiry.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::types::FileId;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the download link has expired")]
    Expired,
    #[error("the download link signature is invalid")]
    Invalid,
}

fn mac(secret: &[u8], file: FileId, expires_unix: i64) -> HmacSha256 {
    // new_from_slice accepts any key length for HMAC; the error case cannot happen.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"ferry-download-v1\n");
    mac.update(file.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(expires_unix.to_string().as_bytes());
    mac
}

/// Hex signature for a download of `file` valid until `expires_unix`.
pub fn sign(secret: &[u8], file: FileId, expires_unix: i64) -> String {
    hex::encode(mac(secret, file, expires_unix).finalize().into_bytes())
}

/// Checks `sig` in constant time, then the expiry against `now_unix`.
pub fn verify(secret: &[u8], file: FileId, expires_unix: i64, sig: &str, now_unix: i64) -> Result<(), SignatureError> {
    let expected = mac(secret, file, expires_unix).finalize().into_bytes();
    let given = hex::decode(sig).map_err(|_| SignatureError::Invalid)?;
    if given.len() != expected.len() || !bool::from(given.ct_eq(&expected)) {
        return Err(SignatureError::Invalid);
    }
    if now_unix > expires_unix {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// Path and query of a signed download on a node agent: `/files/<id>?exp=..&sig=..`.
pub fn signed_path(secret: &[u8], file: FileId, expires_unix: i64) -> String {
    format!("/files/{file}?exp={expires_unix}&sig={}", sign(secret, file, expires_unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_forgery_and_expiry() {
        let file = FileId::new();
        let sig = sign(b"k", file, 100);
        assert_eq!(verify(b"k", file, 100, &sig, 50), Ok(()));
        assert_eq!(verify(b"k", file, 100, &sig, 101), Err(SignatureError::Expired));
        assert_eq!(verify(b"other", file, 100, &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 101, &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", FileId::new(), 100, &sig, 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 100, "zz", 50), Err(SignatureError::Invalid));
        assert_eq!(verify(b"k", file, 100, "", 50), Err(SignatureError::Invalid));
    }
}
