//! The admin page's session: a JWT from [`crate::tokens::Keys::issue`] in the HttpOnly,
//! SameSite=Strict cookie `ferry_admin` (Path=/admin), re-checked against the
//! database on every request so that revoking admin takes effect at once.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use ferry_shared::types::UserId;

use super::csrf;
use super::error::UiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "ferry_admin";
/// Nonce the login form's CSRF token is bound to (there is no session yet).
pub const LOGIN_COOKIE: &str = "ferry_admin_login";
/// Clears the session cookie (no `Secure` needed to clear).
pub const CLEAR_SESSION_COOKIE: &str = "ferry_admin=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict";

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
}

pub fn secret(state: &AppState) -> &[u8] {
    state.config.auth.jwt_secret.expose().as_bytes()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn finds_cookies_across_headers_and_pairs() {
        let h = headers(&["a=1; ferry_admin=tok.en.sig ;b=2", "ferry_admin_login=abc"]);
        assert_eq!(cookie(&h, "ferry_admin"), Some("tok.en.sig"));
        assert_eq!(cookie(&h, "ferry_admin_login"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "ferry"), None);
        assert_eq!(cookie(&headers(&["ferry_admin="]), "ferry_admin"), None);
        assert_eq!(cookie(&headers(&["xferry_admin=1"]), "ferry_admin"), None);
        assert_eq!(cookie(&HeaderMap::new(), "ferry_admin"), None);
    }
}
