//! Tokens: HS256 JWTs (issue, verify, their claims) and argon2 password checks, the
//! [`Keys`] the application state holds. The extractors that use them on requests are
//! in [`crate::auth`]; this module depends on nothing of the application's, so the
//! state and the extractors do not depend on each other in a cycle.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use ferry_shared::types::UserId;

use crate::error::ApiError;

/// JWT claims. `user_id`/`username` keep the original's djangorestframework-jwt shape.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub user_id: i64,
    pub username: String,
    pub exp: i64,
    pub iat: i64,
    /// A random id (RFC 7519 `jti`), so two tokens issued to one user in the same
    /// second differ, and so do the admin sessions and CSRF tokens made from them.
    /// Tokens issued before it existed have none.
    #[serde(default)]
    pub jti: String,
    /// The user's token generation when it was issued (`users.token_generation`): a
    /// password change, a logout or disabling the user moves it on, which ends every
    /// token and admin session issued before.
    #[serde(default)]
    pub generation: i32,
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: i64,
    /// Password hashing is deliberately expensive: bound how many run at once so a
    /// login storm cannot starve the runtime's blocking pool.
    hashing: Semaphore,
}

impl Keys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs: ttl_secs as i64,
            hashing: Semaphore::new(2),
        }
    }

    /// A token for `user_id` under the user's current token `generation`.
    pub fn issue(&self, user_id: UserId, username: &str, generation: i32) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            user_id: user_id.0,
            username: username.to_owned(),
            exp: now + self.ttl_secs,
            iat: now,
            jti: hex::encode(rand::random::<[u8; 16]>()),
            generation,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(ApiError::internal)
    }

    /// Only HS256 is accepted: `alg: none` and every other algorithm fail here; so do a
    /// token not valid yet (`nbf` in the future) and one whose header names critical
    /// extensions (`crit`, RFC 7515 §4.1.11: Ferry understands none).
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let invalid = || ApiError::Unauthorized("Invalid or expired token.");
        if has_crit_header(token) {
            return Err(invalid());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| ApiError::Unauthorized("Invalid or expired token."))
    }

    /// Verifies `password` against `hash`, or against a fixed dummy hash when there is
    /// no user, so an unknown user costs as much as a wrong password.
    pub async fn check_password(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let _permit = self.hashing.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
            let ok = PasswordHash::new(&hash)
                .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
                .unwrap_or(false);
            ok && known
        })
        .await
        .map_err(ApiError::internal)
    }
}

/// Whether the token's header carries `crit` (jsonwebtoken ignores header members it
/// does not know, `crit` included). An undecodable header counts as one.
fn has_crit_header(token: &str) -> bool {
    use base64::Engine;
    let header = token.split('.').next().unwrap_or_default();
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else { return true };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(members)) => members.contains_key("crit"),
        _ => true,
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| ferry_store::users::hash_password("ferry-dummy-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let keys = Keys::new(b"secret", 60);
        let token = keys.issue(UserId(7), "alice", 0).expect("issue");
        let claims = keys.verify(&token).expect("valid");
        assert_eq!((claims.user_id, claims.username.as_str()), (7, "alice"));
        assert!(Keys::new(b"other", 60).verify(&token).is_err());
        // alg: none with the same claims.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = token.split('.').nth(1).expect("payload");
        let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), payload);
        assert!(keys.verify(&none).is_err());
    }

    #[test]
    fn two_tokens_of_one_second_differ() {
        let keys = Keys::new(b"secret", 60);
        let (a, b) = (keys.issue(UserId(7), "alice", 0).expect("a"), keys.issue(UserId(7), "alice", 0).expect("b"));
        assert_ne!(a, b);
    }

    #[test]
    fn not_yet_valid_and_critical_extension_tokens_are_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let keys = Keys::new(b"secret", 60);
        let now = chrono::Utc::now().timestamp();
        let sign = |header: &str, claims: serde_json::Value| {
            let message = format!("{}.{}", b64.encode(header), b64.encode(claims.to_string()));
            let key = EncodingKey::from_secret(b"secret");
            let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
            format!("{message}.{signature}")
        };
        let claims = serde_json::json!({"sub": "7", "user_id": 7, "username": "alice", "exp": now + 60, "iat": now});
        assert!(keys.verify(&sign(r#"{"alg":"HS256","typ":"JWT"}"#, claims.clone())).is_ok());
        let mut later = claims.clone();
        later["nbf"] = serde_json::json!(now + 3600);
        assert!(keys.verify(&sign(r#"{"alg":"HS256","typ":"JWT"}"#, later)).is_err());
        let crit = r#"{"alg":"HS256","typ":"JWT","crit":["exp-unknown"],"exp-unknown":1}"#;
        assert!(keys.verify(&sign(crit, claims)).is_err());
    }
}
