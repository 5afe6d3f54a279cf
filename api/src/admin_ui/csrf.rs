//! CSRF tokens for the admin forms: `hex(HMAC-SHA256(secret, "csrf:" + session))`,
//! where `session` is the session cookie's token (or, before login, `login:` + the
//! login nonce cookie). A forged cross-site form cannot know it: it would need the
//! HttpOnly cookie or the server secret. Checked in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], session: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"csrf:");
    mac.update(session.as_bytes());
    mac
}

/// The token forms of `session` must carry.
pub fn token(secret: &[u8], session: &str) -> String {
    hex::encode(mac(secret, session).finalize().into_bytes())
}

/// Whether `given` is `session`'s token (constant time in the token's bytes).
pub fn verify(secret: &[u8], session: &str, given: Option<&str>) -> bool {
    let Some(given) = given.and_then(|g| hex::decode(g.trim()).ok()) else {
        return false;
    };
    let expected = mac(secret, session).finalize().into_bytes();
    given.len() == expected.len() && bool::from(given.ct_eq(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_token_verifies_and_nothing_else_does() {
        let t = token(b"secret", "session-a");
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(verify(b"secret", "session-a", Some(&t)));
        assert!(verify(b"secret", "session-a", Some(&t.to_uppercase())));
        // Another session, another secret, missing, empty, truncated, not hex, altered.
        assert!(!verify(b"secret", "session-b", Some(&t)));
        assert!(!verify(b"other", "session-a", Some(&t)));
        assert!(!verify(b"secret", "session-a", None));
        assert!(!verify(b"secret", "session-a", Some("")));
        assert!(!verify(b"secret", "session-a", Some(&t[..62])));
        assert!(!verify(b"secret", "session-a", Some(&"zz".repeat(32))));
        let mut altered = t.clone().into_bytes();
        altered[10] = if altered[10] == b'0' { b'1' } else { b'0' };
        assert!(!verify(b"secret", "session-a", Some(&String::from_utf8(altered).expect("ascii"))));
    }

    #[test]
    fn tokens_are_bound_to_the_csrf_domain() {
        // Not the plain HMAC of the session: a token is useless as any other MAC.
        let plain = hex::encode(
            HmacSha256::new_from_slice(b"secret").expect("key").chain_update(b"session-a").finalize().into_bytes(),
        );
        assert_ne!(token(b"secret", "session-a"), plain);
        assert_ne!(token(b"secret", "login:n"), token(b"secret", "n"));
    }
}
