//! The admin page's cookies: their names, the value that clears the session, and
//! reading one from a request. A leaf module, so the error pages (which clear the
//! session of a signed-in non-administrator) need not know the session extractor.

use axum::http::{header, HeaderMap};

pub const SESSION_COOKIE: &str = "ferry_admin";
/// Nonce the login form's CSRF token is bound to (there is no session yet).
pub const LOGIN_COOKIE: &str = "ferry_admin_login";
/// Clears the session cookie (no `Secure` needed to clear).
pub const CLEAR_SESSION_COOKIE: &str = "ferry_admin=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict";

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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
