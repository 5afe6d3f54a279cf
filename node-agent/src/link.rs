//! The signed part of a download URL, `?exp=<unix>[&sha=<hex>]&sig=<hex>`.
//!
//! The API redirects clients here without their JWT (curl and browsers drop
//! `Authorization` on a cross-origin redirect), so this signature, made with the secret
//! the API shares with every node, is the only authority a download carries.

use ferry_shared::signing::{self, SignatureError};
use ferry_shared::types::{FileId, Sha256};
use serde::Deserialize;

use crate::error::ServeError;

/// The query string as sent. Fields are optional strings so that a missing or
/// malformed one is answered with the house 403 rather than the framework's plain-text
/// rejection.
#[derive(Debug, Default, Deserialize)]
pub struct LinkQuery {
    exp: Option<String>,
    /// The file's sha256 as the API knows it (signed too): a whole-file read is checked
    /// against it while it is served.
    sha: Option<String>,
    sig: Option<String>,
}

/// Checks the link for `id` at `now_unix`; on success returns the signed checksum, if
/// the link carried one. The signature is checked before the expiry, so "expired" is
/// only ever said of a link the API really issued.
pub fn authorize(secret: &[u8], id: FileId, query: &LinkQuery, now_unix: i64) -> Result<Option<Sha256>, ServeError> {
    let (Some(exp), Some(sig)) = (query.exp.as_deref(), query.sig.as_deref()) else {
        return Err(ServeError::Unsigned);
    };
    let exp: i64 = exp.parse().map_err(|_| ServeError::MalformedLink)?;
    let sha = match query.sha.as_deref() {
        None => None,
        Some(sha) => Some(sha.parse::<Sha256>().map_err(|_| ServeError::MalformedLink)?),
    };
    signing::verify(secret, id, exp, sha.as_ref(), sig, now_unix).map_err(|e| match e {
        SignatureError::Expired => ServeError::Expired,
        SignatureError::Invalid => ServeError::InvalidSignature,
    })?;
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-secret";

    fn query(exp: Option<&str>, sha: Option<&str>, sig: Option<&str>) -> LinkQuery {
        LinkQuery { exp: exp.map(Into::into), sha: sha.map(Into::into), sig: sig.map(Into::into) }
    }

    #[test]
    fn a_valid_link_passes_and_yields_its_checksum() {
        let id = FileId::new();
        let sig = signing::sign(KEY, id, 100, None);
        assert!(matches!(authorize(KEY, id, &query(Some("100"), None, Some(&sig)), 50), Ok(None)));

        let sha = Sha256([9; 32]);
        let sig = signing::sign(KEY, id, 100, Some(&sha));
        let q = query(Some("100"), Some(&sha.to_string()), Some(&sig));
        assert_eq!(authorize(KEY, id, &q, 50).ok(), Some(Some(sha)));
    }

    #[test]
    fn missing_parts_are_unsigned() {
        let id = FileId::new();
        for q in [query(None, None, None), query(Some("100"), None, None), query(None, None, Some("ab"))] {
            assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::Unsigned)));
        }
    }

    #[test]
    fn malformed_parts_are_refused() {
        let id = FileId::new();
        let sig = signing::sign(KEY, id, 100, None);
        let q = query(Some("soon"), None, Some(&sig));
        assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::MalformedLink)));
        let q = query(Some("100"), Some("not-hex"), Some(&sig));
        assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::MalformedLink)));
    }

    #[test]
    fn forged_tampered_and_expired_links_are_refused() {
        let id = FileId::new();
        let sig = signing::sign(KEY, id, 100, None);
        let forged = signing::sign(b"other", id, 100, None);
        let q = query(Some("100"), None, Some(&forged));
        assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::InvalidSignature)));
        // Extending the expiry breaks the signature.
        let q = query(Some("1000"), None, Some(&sig));
        assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::InvalidSignature)));
        // Another file's link does not open this one.
        let q = query(Some("100"), None, Some(&sig));
        assert!(matches!(authorize(KEY, FileId::new(), &q, 50), Err(ServeError::InvalidSignature)));
        // Adding a checksum the API did not sign breaks it too.
        let q = query(Some("100"), Some(&Sha256([1; 32]).to_string()), Some(&sig));
        assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::InvalidSignature)));
        assert!(matches!(authorize(KEY, id, &query(Some("100"), None, Some(&sig)), 101), Err(ServeError::Expired)));
    }
}
