//! The admin page's session: a JWT from [`crate::tokens::Keys::issue`] in the HttpOnly,
//! SameSite=Strict cookie `ferry_admin` (Path=/admin), re-checked against the
//! database on every request so that revoking admin takes effect at once.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use ferry_shared::types::UserId;

use super::cookies::{cookie, CLEAR_SESSION_COOKIE, SESSION_COOKIE};
use super::csrf;
use super::error::UiError;
use super::html::SignedIn;
use crate::state::AppState;

/// A signed-in administrator. No `Debug`: it holds the session token, which must
/// never reach a log.
#[derive(Clone)]
pub struct AdminSession {
    pub user_id: UserId,
    pub username: String,
    /// The CSRF token this session's forms carry.
    pub csrf: String,
    token: String,
}

impl AdminSession {
    /// Whether a submitted form's `csrf` field belongs to this session.
    pub fn csrf_ok(&self, state: &AppState, given: Option<&str>) -> bool {
        csrf::verify(secret(state), &self.token, given)
    }

    /// What a page's header shows of the session: who, and the CSRF token of its forms.
    pub fn signed_in(&self) -> SignedIn<'_> {
        SignedIn { username: &self.username, csrf: &self.csrf }
    }
}

pub fn secret(state: &AppState) -> &[u8] {
    state.config.auth.jwt_secret.expose().as_bytes()
}

/// A `Set-Cookie` value; `None` clears the cookie.
pub fn set_cookie(state: &AppState, name: &str, path: &str, value: Option<(&str, u64)>) -> HeaderValue {
    let secure = if state.config.api.public_url.starts_with("https://") { "; Secure" } else { "" };
    let (value, max_age) = value.unwrap_or(("", 0));
    // Values are JWTs or hex: no character needs quoting.
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(CLEAR_SESSION_COOKIE))
}

pub fn session_cookie(state: &AppState, token: Option<&str>) -> HeaderValue {
    set_cookie(state, SESSION_COOKIE, "/admin", token.map(|t| (t, state.config.auth.token_ttl_secs)))
}

impl FromRequestParts<Arc<AppState>> for AdminSession {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(UiError::LoginRequired)?;
        let claims = state.keys.verify(token).map_err(|_| UiError::LoginRequired)?;
        if claims.sub != claims.user_id.to_string() {
            return Err(UiError::LoginRequired);
        }
        let account = ferry_store::users::account(&state.pool.get().await?, UserId(claims.user_id))
            .await?
            .filter(|account| crate::auth::still_valid(account, &claims))
            .ok_or(UiError::LoginRequired)?;
        let username = account.username;
        if !account.is_admin {
            return Err(UiError::NotAdmin { username });
        }
        Ok(AdminSession {
            user_id: UserId(claims.user_id),
            username,
            csrf: csrf::token(secret(state), token),
            token: token.to_owned(),
        })
    }
}
