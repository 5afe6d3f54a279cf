//! HTML building blocks: escaping, the page layout with its security headers, and the
//! formatting of sizes, ages and times. Every value that did not come from a literal in
//! this module tree goes through [`Esc`].

use std::fmt::{self, Write as _};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ferry_shared::types::ByteSize;

/// Displays a string HTML-escaped (`&<>"'`), for text and quoted attribute values alike.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// The navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Nodes,
    Users,
    Uploads,
    Files,
    Queues,
    Jobs,
    Workers,
    None,
}

const NAV: [(Section, &str, &str); 7] = [
    (Section::Nodes, "/admin/", "Nodes"),
    (Section::Users, "/admin/users", "Users"),
    (Section::Uploads, "/admin/uploads", "Uploads"),
    (Section::Files, "/admin/files", "Files"),
    (Section::Queues, "/admin/queues", "Queues"),
    (Section::Jobs, "/admin/jobs", "Jobs"),
    (Section::Workers, "/admin/workers", "Workers"),
];

const STYLE: &str = include_str!("style.css");

/// Seconds between reloads of a live listing ([`LIVE_RELOAD`]).
pub const LIVE_RELOAD_SECS: u32 = 5;

/// A live listing's script: reloads the page every [`LIVE_RELOAD_SECS`] (5 s), the
/// filters being in its URL, except while the operator has a field of it focused (then
/// it looks again 5 s later), so typing into a filter is never lost to a reload; and
/// never once a form was submitted or a link followed, so a reload cannot cancel the
/// operator's click on its way out.
pub const LIVE_RELOAD: &str = "(function () { var leaving = false; \
     document.addEventListener('submit', function () { leaving = true; }); \
     document.addEventListener('click', function (e) { if (e.target.closest && e.target.closest('a[href]:not([target])')) { leaving = true; } }); \
     (function wait() { setTimeout(function () { \
     var a = document.activeElement; \
     if (leaving) { return; } \
     if (a && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) { wait(); } else { window.location.reload(); } \
     }, 5000); })(); })();";

/// What a page shows of its session (`super::session::AdminSession::signed_in`).
pub struct SignedIn<'a> {
    pub username: &'a str,
    /// The CSRF token the page's forms carry.
    pub csrf: &'a str,
}

/// One HTML page. The body is already-escaped HTML; the optional script is a constant
/// from this crate, allowed by the page's per-response CSP nonce.
pub struct Page<'a> {
    pub title: &'a str,
    pub section: Section,
    /// The signed-in administrator, for the navigation and the logout form; `None` on
    /// the login and error pages.
    pub session: Option<SignedIn<'a>>,
    pub body: String,
    pub script: Option<&'static str>,
}

impl<'a> Page<'a> {
    /// A page for a signed-in administrator, without a script.
    pub fn admin(title: &'a str, section: Section, session: SignedIn<'a>, body: String) -> Self {
        Page { title, section, session: Some(session), body, script: None }
    }

    /// The page with `script` (a constant of this crate) inlined under its CSP nonce.
    pub fn with_script(self, script: &'static str) -> Self {
        Page { script: Some(script), ..self }
    }

    pub fn render(self, status: StatusCode) -> Response {
        let nonce = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let mut html = String::with_capacity(self.body.len() + STYLE.len() + 2048);
        let _ = write!(
            html,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · Ferry admin</title><style nonce=\"{nonce}\">{STYLE}</style>",
            Esc(self.title)
        );
        if let Some(session) = &self.session {
            let _ = write!(html, "<meta name=\"ferry-csrf\" content=\"{}\">", Esc(session.csrf));
        }
        html.push_str("</head><body><header><span class=\"brand\">Ferry admin</span>");
        if let Some(session) = &self.session {
            html.push_str("<nav>");
            for (section, href, label) in NAV {
                let class = if section == self.section { " class=\"active\"" } else { "" };
                let _ = write!(html, "<a href=\"{href}\"{class}>{label}</a>");
            }
            let _ = write!(
                html,
                "</nav><span class=\"who\">{}</span>\
                 <form method=\"post\" action=\"/admin/logout\" class=\"inline\">{}\
                 <button type=\"submit\" class=\"link\">Log out</button></form>",
                Esc(session.username),
                csrf_field(session.csrf)
            );
        }
        let _ = write!(html, "</header><main><h1>{}</h1>{}</main>", Esc(self.title), self.body);
        if let Some(script) = self.script {
            let _ = write!(html, "<script nonce=\"{nonce}\">{script}</script>");
        }
        html.push_str("</body></html>\n");
        let mut response = (status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        secure_headers(headers);
        if let Ok(csp) = HeaderValue::from_str(&format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        response
    }
}

/// Headers every admin response carries: nothing cached, never framed, no sniffing.
pub fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

/// The hidden CSRF input every POST form carries.
pub fn csrf_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", Esc(token))
}

/// A notice above a page's content (`kind` is `ok` or `error`).
pub fn notice(kind: &'static str, text: &str) -> String {
    format!("<p class=\"notice {kind}\" role=\"status\">{}</p>", Esc(text))
}

/// `1.5 GiB`: [`ByteSize::human`].
pub fn fmt_bytes(size: ByteSize) -> String {
    size.human()
}

/// `0.8 s ago`, `42 s ago`, `5 min ago`, `3 h ago`, `2 d ago`.
pub fn fmt_age(age: Duration) -> String {
    let secs = age.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1} s ago")
    } else if secs < 120.0 {
        format!("{} s ago", secs as u64)
    } else if secs < 7200.0 {
        format!("{} min ago", (secs / 60.0) as u64)
    } else if secs < 172_800.0 {
        format!("{} h ago", (secs / 3600.0) as u64)
    } else {
        format!("{} d ago", (secs / 86_400.0) as u64)
    }
}

pub fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escape(s: &str) -> String {
        Esc(s).to_string()
    }

    #[test]
    fn escapes_every_html_special_character() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain text, ünïcödé"), "plain text, ünïcödé");
        assert_eq!(escape(""), "");
        assert_eq!(escape("<<>>"), "&lt;&lt;&gt;&gt;");
        assert_eq!(
            format!("<td>{}</td>", Esc("</td><script>alert(1)</script>")),
            "<td>&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;</td>"
        );
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_never_contains_markup(s in ".*") {
            let out = escape(&s);
            proptest::prop_assert!(!out.contains(['<', '>', '"', '\'']));
            // Every '&' starts one of the five entities.
            for (i, _) in out.match_indices('&') {
                let rest = &out[i..];
                proptest::prop_assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|e| rest.starts_with(e)));
            }
            let back = out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")
                .replace("&#39;", "'").replace("&amp;", "&");
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn formats_sizes_and_ages() {
        assert_eq!(fmt_bytes(ByteSize(0)), "0 B");
        assert_eq!(fmt_bytes(ByteSize(1023)), "1023 B");
        assert_eq!(fmt_bytes(ByteSize(1536)), "1.5 KiB");
        assert_eq!(fmt_bytes(ByteSize(10 << 30)), "10.0 GiB");
        assert_eq!(fmt_age(Duration::from_millis(800)), "0.8 s ago");
        assert_eq!(fmt_age(Duration::from_secs(42)), "42 s ago");
        assert_eq!(fmt_age(Duration::from_secs(300)), "5 min ago");
        assert_eq!(fmt_age(Duration::from_secs(3 * 3600)), "3 h ago");
    }
}
