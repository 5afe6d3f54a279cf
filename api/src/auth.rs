//! Authentication: argon2 password hashes, HS256 JWTs, and the `AuthUser` extractor.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use ferry_shared::types::UserId;

use crate::error::ApiError;
use crate::state::AppState;

/// JWT claims. `user_id`/`username` keep the original's djangorestframework-jwt shape.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub user_id: i64,
    pub username: String,
    pub exp: i64,
    pub iat: i64,
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

    pub fn issue(&self, user_id: UserId, username: &str) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            user_id: user_id.0,
            username: username.to_owned(),
            exp: now + self.ttl_secs,
            iat: now,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(ApiError::internal)
    }

    /// Only HS256 is accepted: `alg: none` and every other algorithm fail here.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
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

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| ferry_store::users::hash_password("ferry-dummy-password").unwrap_or_default())
}

/// The authenticated caller, from `Authorization: JWT <token>` or `Bearer <token>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub username: String,
}

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized("Authentication credentials were not provided."))?;
        let (scheme, token) = header
            .split_once(' ')
            .ok_or(ApiError::Unauthorized("Invalid Authorization header. Expected 'JWT <token>'."))?;
        if !scheme.eq_ignore_ascii_case("jwt") && !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized("Invalid Authorization header. Expected 'JWT <token>'."));
        }
        let claims = state.keys.verify(token.trim())?;
        if claims.sub != claims.user_id.to_string() {
            return Err(ApiError::Unauthorized("Invalid or expired token."));
        }
        Ok(AuthUser { id: UserId(claims.user_id), username: claims.username })
    }
}

/// An authenticated caller whose account is an admin (checked in the database on
/// every call, so revoking admin takes effect at once).
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<Arc<AppState>> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let client = state.pool.get().await?;
        match ferry_store::users::account(&client, user.id).await? {
            Some(account) if account.is_admin => Ok(AdminUser(user)),
            _ => Err(ApiError::Forbidden),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let keys = Keys::new(b"secret", 60);
        let token = keys.issue(UserId(7), "alice").expect("issue");
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
}
