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
        if !account.is_some_and(|a| still_valid(&a, &claims)) {
            return Err(ApiError::Unauthorized("Invalid or expired token."));
        }
        Ok(AuthUser { id, username: claims.username })
    }
}

/// Whether a token with `claims` still speaks for `account`: not disabled, and issued
/// under its current token generation.
pub fn still_valid(account: &ferry_store::users::Account, claims: &Claims) -> bool {
    !account.disabled && account.token_generation == claims.generation
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
