//! Signing in and out. The login form's CSRF token is bound to a random nonce in its
//! own HttpOnly cookie, so a cross-site page cannot sign a browser into another
//! account; only administrators get a session.

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::admin_ui::cookies::{cookie, CLEAR_SESSION_COOKIE, LOGIN_COOKIE, SESSION_COOKIE};
use crate::admin_ui::csrf;
use crate::admin_ui::error::UiError;
use crate::admin_ui::form;
use crate::admin_ui::html::{csrf_field, notice, Esc, Page, Section};
use crate::admin_ui::session::{self, secret, AdminSession};
use crate::login_limit;
use crate::state::{AppState, SharedState};
use ferry_shared::types::UserId;

const LOGIN_PATH: &str = "/admin/login";
const NONCE_TTL_SECS: u64 = 3600;

fn valid_nonce(nonce: &str) -> bool {
    nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

fn login_page(state: &AppState, nonce: &str, error: Option<&str>, username: &str, status: StatusCode) -> Response {
    let token = csrf::token(secret(state), &format!("login:{nonce}"));
    let body = format!(
        "{}<form method=\"post\" action=\"{LOGIN_PATH}\" class=\"card login\">{}\
         <label>Username <input name=\"username\" autocomplete=\"username\" required value=\"{}\"></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Log in</button></form>",
        error.map(|e| notice("error", e)).unwrap_or_default(),
        csrf_field(&token),
        Esc(username),
    );
    let mut response =
        Page { title: "Log in", section: Section::None, session: None, body, script: None }.render(status);
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(state, LOGIN_COOKIE, LOGIN_PATH, Some((nonce, NONCE_TTL_SECS))),
    );
    response
}

/// `GET /admin/login`: the form, or straight to the admin page when already signed in.
pub async fn show(
    State(state): State<SharedState>,
    session: Result<AdminSession, UiError>,
    headers: HeaderMap,
) -> Response {
    if session.is_ok() {
        return Redirect::to("/admin/").into_response();
    }
    let nonce = cookie(&headers, LOGIN_COOKIE)
        .filter(|n| valid_nonce(n))
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()));
    login_page(&state, &nonce, None, "", StatusCode::OK)
}

/// `POST /admin/login`: checks the CSRF token, the password, then `is_admin`.
pub async fn submit(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, UiError> {
    let form = form::read(&state, body).await?;
    let nonce = cookie(&headers, LOGIN_COOKIE).filter(|n| valid_nonce(n)).ok_or(UiError::Csrf)?;
    if !csrf::verify(secret(&state), &format!("login:{nonce}"), form.get("csrf").map(String::as_str)) {
        return Err(UiError::Csrf);
    }
    let username = form.get("username").map(|u| u.trim()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        let msg = "Both username and password are required.";
        return Ok(login_page(&state, nonce, Some(msg), username, StatusCode::BAD_REQUEST));
    }
    // Before the user is looked up or a password hashed: a flood costs nothing.
    if let Err(wait) = state.login_limit.check(peer.ip(), username) {
        let retry_after = login_limit::retry_after_secs(wait);
        let msg = format!("Too many login attempts; try again in {retry_after} s.");
        let mut page = login_page(&state, nonce, Some(&msg), username, StatusCode::TOO_MANY_REQUESTS);
        page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return Ok(page);
    }
    let found = ferry_store::users::credentials(&state.pool.get().await?, username).await?;
    let hash = found.as_ref().map(|c| c.password_hash.clone());
    let known_id = found.as_ref().map(|c| c.id.0);
    // Same work whether or not the user exists: no user enumeration by timing.
    let ok = state.keys.check_password(password, hash).await?;
    // The submitted name is never logged on failure (it may be a password typed into
    // the wrong field, or carry control characters into the log): only the id of the
    // account it names, if any.
    let Some(found) = found.filter(|c| ok && !c.disabled) else {
        tracing::info!(user.id = ?known_id, "admin login failed");
        let msg = "Unable to log in with provided credentials.";
        return Ok(login_page(&state, nonce, Some(msg), username, StatusCode::BAD_REQUEST));
    };
    if !found.is_admin {
        tracing::info!(user.id = found.id.0, "admin login refused: not an administrator");
        return Err(UiError::NotAdmin { username: username.to_owned() });
    }
    let token = state.keys.issue(found.id, username, found.token_generation)?;
    // Debug formatting escapes control characters: a name cannot forge log lines.
    tracing::info!(user.id = found.id.0, user.name = ?username, "admin logged in");
    let mut response = Redirect::to("/admin/").into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session::session_cookie(&state, Some(&token)));
    headers.append(header::SET_COOKIE, session::set_cookie(&state, LOGIN_COOKIE, LOGIN_PATH, None));
    Ok(response)
}

/// `POST /admin/logout`: clears the session cookie and ends the session for good: the
/// administrator's token generation moves on, so a copy of the cookie (and every other
/// token of theirs) stops working too. Its form carries the session's CSRF token, so
/// another site cannot sign an administrator out.
pub async fn logout(State(state): State<SharedState>, headers: HeaderMap, body: Body) -> Result<Response, UiError> {
    let form = form::read(&state, body).await?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if !csrf::verify(secret(&state), token, form.get("csrf").map(String::as_str)) {
            return Err(UiError::Csrf);
        }
        if let Ok(claims) = state.keys.verify(token) {
            ferry_store::users::revoke_tokens(&state.pool.get().await?, UserId(claims.user_id)).await?;
        }
    }
    let mut response = Redirect::to(LOGIN_PATH).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(CLEAR_SESSION_COOKIE));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_32_hex_digits() {
        assert!(valid_nonce(&hex::encode([7u8; 16])));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce(&"g".repeat(32)));
    }
}
