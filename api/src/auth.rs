//! Authentication of requests: the `AuthUser` and `AdminUser` extractors, over the
//! tokens and password checks of [`crate::tokens`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use ferry_shared::types::UserId;

use crate::error::ApiError;
use crate::state::AppState;
pub use crate::tokens::{Claims, Keys};

/// The authenticated caller, from `Authorization: JWT <token>` or `Bearer <token>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub username: String,
    /// Bytes the caller may still store (quota, or `storage.default_quota_bytes`, less
    /// what is in use), as of this request's authentication, which reads the same
    /// row: what the early quota checks (a new upload's, before its body is read) go
    /// by. The authoritative check locks the row at the upload's commit
    /// (`ferry_store::users::lock_quota_left`).
    pub quota_left: u64,
    /// Whether the account is an admin, as of the same read.
    pub is_admin: bool,
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
        // A correctly signed token is no credential for an account that no longer
        // exists (before, an upload with one failed deep inside as a 503), is disabled,
        // or has moved on to a new token generation (password change, logout).
        let id = UserId(claims.user_id);
        let account = ferry_store::users::account(&state.pool.get().await?, id).await?;
        let Some(account) = account.filter(|a| still_valid(a, &claims)) else {
            return Err(ApiError::Unauthorized("Invalid or expired token."));
        };
        let default = ferry_shared::types::ByteSize(state.config.storage.default_quota_bytes);
        Ok(AuthUser {
            id,
            username: claims.username,
            quota_left: account.quota_left(default).bytes(),
            is_admin: account.is_admin,
        })
    }
}

/// Whether a token with `claims` still speaks for `account`: not disabled, and issued
/// under its current token generation.
pub fn still_valid(account: &ferry_store::users::Account, claims: &Claims) -> bool {
    !account.disabled && account.token_generation == claims.generation
}

/// An authenticated caller whose account is an admin (checked in the database on
/// every call, in the read that authenticates it, so revoking admin takes effect at
/// once).
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<Arc<AppState>> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_admin {
            Ok(AdminUser(user))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}
