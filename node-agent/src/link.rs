//! The signed part of a download URL, `?exp=<unix>[&sha=<hex>][&name=<pct>]&sig=<hex>`.
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
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LinkQuery {
    exp: Option<String>,
    /// The file's sha256 as the API knows it (signed too): a whole-file read is checked
    /// against it while it is served.
    sha: Option<String>,
    /// The file's stored name (signed too), sent back in `Content-Disposition`.
    name: Option<String>,
    sig: Option<String>,
}

impl LinkQuery {
    /// The link's signature as sent (empty when unsigned): it names one signed link.
    pub fn signature(&self) -> &str {
        self.sig.as_deref().unwrap_or_default()
    }
}

/// What a valid link grants beyond the file itself.
#[derive(Debug, PartialEq, Eq)]
pub struct Grant {
    /// When the link expires, Unix seconds.
    pub expires: i64,
    /// The checksum a whole-file read is verified against.
    pub sha256: Option<Sha256>,
    /// The name to offer the client's user agent (RFC 6266).
    pub name: Option<String>,
}

/// Checks the link for `id` at `now_unix`; on success returns the signed checksum and
/// name, if the link carried them. The signature is checked before the expiry, so
/// "expired" is only ever said of a link the API really issued.
pub fn authorize(secret: &[u8], id: FileId, query: &LinkQuery, now_unix: i64) -> Result<Grant, ServeError> {
    let (Some(exp), Some(sig)) = (query.exp.as_deref(), query.sig.as_deref()) else {
        return Err(ServeError::Unsigned);
    };
    let exp: i64 = exp.parse().map_err(|_| ServeError::MalformedLink)?;
    let sha = match query.sha.as_deref() {
        None => None,
        Some(sha) => Some(sha.parse::<Sha256>().map_err(|_| ServeError::MalformedLink)?),
    };
    let name = query.name.as_deref();
    signing::verify(secret, id, exp, sha.as_ref(), name, sig, now_unix).map_err(|e| match e {
        SignatureError::Expired => ServeError::Expired,
        SignatureError::Invalid => ServeError::InvalidSignature,
    })?;
    Ok(Grant { expires: exp, sha256: sha, name: name.map(str::to_owned) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-secret";

    fn query(exp: Option<&str>, sha: Option<&str>, sig: Option<&str>) -> LinkQuery {
        LinkQuery { exp: exp.map(Into::into), sha: sha.map(Into::into), name: None, sig: sig.map(Into::into) }
    }

    #[test]
    fn a_valid_link_passes_and_yields_its_checksum() {
        let id = FileId::new();
        let sig = signing::sign(KEY, id, 100, None, None);
        assert!(matches!(
            authorize(KEY, id, &query(Some("100"), None, Some(&sig)), 50),
            Ok(Grant { expires: 100, sha256: None, name: None })
        ));

        let sha = Sha256([9; 32]);
        let sig = signing::sign(KEY, id, 100, Some(&sha), None);
        let q = query(Some("100"), Some(&sha.to_string()), Some(&sig));
        assert_eq!(authorize(KEY, id, &q, 50).ok(), Some(Grant { expires: 100, sha256: Some(sha), name: None }));
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
        let sig = signing::sign(KEY, id, 100, None, None);
        let q = query(Some("soon"), None, Some(&sig));
        assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::MalformedLink)));
        let q = query(Some("100"), Some("not-hex"), Some(&sig));
        assert!(matches!(authorize(KEY, id, &q, 50), Err(ServeError::MalformedLink)));
    }

    #[test]
    fn forged_tampered_and_expired_links_are_refused() {
        let id = FileId::new();
        let sig = signing::sign(KEY, id, 100, None, None);
        let forged = signing::sign(b"other", id, 100, None, None);
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
