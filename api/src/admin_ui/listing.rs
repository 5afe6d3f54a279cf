//! The query string of the admin listings (page and JSON API alike):
//! `?user=&name=&id=&from=&to=&state=&kind=&page=&per_page=`, blank fields meaning
//! "any", parsed once into `ferry_store::search` terms, and its HTML: the filter form
//! and the pager, whose links carry the filter so it survives paging.

use std::fmt::Write as _;

use chrono::NaiveDate;
use ferry_store::search::{Paging, Search};
use serde::Deserialize;

use super::html::Esc;

/// Rows per page unless `per_page` says otherwise.
pub const PER_PAGE: i64 = 50;
/// Most rows one page may ask for.
pub const MAX_PER_PAGE: i64 = 500;

#[derive(Debug, Default, Deserialize)]
struct Raw {
    user: Option<String>,
    name: Option<String>,
    id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    upload: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// A parsed listing query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub search: Search,
    /// The state to show (checked by the page that uses it).
    pub state: Option<String>,
    /// The job kind to show (jobs only).
    pub kind: Option<String>,
    /// The upload whose jobs to show (jobs only).
    pub upload: Option<uuid::Uuid>,
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
}

fn blank_is_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn date(v: Option<String>, field: &str) -> Result<Option<NaiveDate>, String> {
    blank_is_none(v).map(|d| d.parse().map_err(|_| format!("{field} must be a date like 2026-11-30."))).transpose()
}

fn number(v: Option<String>, field: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, String> {
    match blank_is_none(v) {
        None => Ok(None),
        Some(n) => match n.parse() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(format!("{field} must be a number from {} to {}.", range.start(), range.end())),
        },
    }
}

impl Listing {
    /// Parses the raw query string (`None`: no filter, first page).
    pub fn parse(query: Option<&str>) -> Result<Listing, String> {
        let raw: Raw = match query {
            Some(q) => serde_urlencoded::from_str(q).map_err(|_| "The query string is malformed.".to_owned())?,
            None => Raw::default(),
        };
        let id = blank_is_none(raw.id);
        if id.as_deref().is_some_and(|i| i.len() > 36 || !ferry_store::search::is_id_prefix(i)) {
            return Err("id must be the start of an id: hex digits and '-'.".into());
        }
        let bounded = |v: Option<String>| blank_is_none(v).filter(|s| s.chars().count() <= 200);
        Ok(Listing {
            search: Search {
                user: bounded(raw.user),
                name: bounded(raw.name),
                id_prefix: id,
                from: date(raw.from, "from")?,
                to: date(raw.to, "to")?,
            },
            state: bounded(raw.state),
            kind: bounded(raw.kind),
            upload: blank_is_none(raw.upload)
                .map(|u| u.parse().map_err(|_| "upload must be an upload id (a UUID).".to_owned()))
                .transpose()?,
            page: number(raw.page, "page", 1..=1_000_000)?.unwrap_or(1),
            per_page: number(raw.per_page, "per_page", 1..=MAX_PER_PAGE)?.unwrap_or(PER_PAGE),
        })
    }

    pub fn paging(&self) -> Paging {
        Paging { limit: self.per_page, offset: (self.page - 1) * self.per_page }
    }
}

impl Listing {
    /// The query string of this listing at `page` (for the pager's links).
    pub fn query_at(&self, page: i64) -> String {
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string());
        let s = &self.search;
        let mut pairs: Vec<(&str, String)> = [
            ("user", s.user.clone()),
            ("name", s.name.clone()),
            ("id", s.id_prefix.clone()),
            ("from", date(s.from)),
            ("to", date(s.to)),
            ("state", self.state.clone()),
            ("kind", self.kind.clone()),
            ("upload", self.upload.map(|u| u.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        if self.per_page != PER_PAGE {
            pairs.push(("per_page", self.per_page.to_string()));
        }
        pairs.push(("page", page.to_string()));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The filter form of the listing at `path`: user, name, id, from, to, and a `state`
    /// select offering `states` (none: no state filter), plus `extra` (already escaped
    /// HTML) before the button.
    pub fn filter_form(&self, path: &str, name_label: &str, states: &[&str], extra: &str) -> String {
        let s = &self.search;
        let text = |v: &Option<String>| v.as_deref().map(|v| Esc(v).to_string()).unwrap_or_default();
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        let mut html = format!(
            "<form method=\"get\" action=\"{path}\" class=\"filters\" id=\"filters\">\
             <label>User <input name=\"user\" value=\"{user}\" size=\"12\"></label>\
             <label>{name_label} <input name=\"name\" value=\"{name}\" size=\"14\"></label>\
             <label>Id <input name=\"id\" value=\"{id}\" size=\"12\" placeholder=\"start of id\"></label>\
             <label>From <input type=\"date\" name=\"from\" value=\"{from}\"></label>\
             <label>To <input type=\"date\" name=\"to\" value=\"{to}\"></label>",
            path = Esc(path),
            user = text(&s.user),
            name = text(&s.name),
            id = text(&s.id_prefix),
            from = date(s.from),
            to = date(s.to),
        );
        if !states.is_empty() {
            html.push_str("<label>State <select name=\"state\"><option value=\"\">any</option>");
            for state in states {
                let selected = if self.state.as_deref() == Some(*state) { " selected" } else { "" };
                let _ = write!(html, "<option{selected}>{}</option>", Esc(state));
            }
            html.push_str("</select></label>");
        }
        let _ =
            write!(html, "{extra}<button type=\"submit\">Filter</button> <a href=\"{}\">Clear</a></form>", Esc(path));
        html
    }

    /// "51-100 of 250" with links to the previous and next page of the same filter.
    pub fn pager(&self, path: &str, total: i64, shown: usize) -> String {
        let first = (self.page - 1) * self.per_page;
        let range = if shown == 0 {
            format!("none of {total}")
        } else {
            format!("{}-{} of {total}", first + 1, first + shown as i64)
        };
        let mut html = format!("<p class=\"pager\" id=\"pager\"><span class=\"range\">{range}</span>");
        if self.page > 1 {
            let _ = write!(
                html,
                " <a rel=\"prev\" href=\"{}?{}\">← Previous</a>",
                Esc(path),
                Esc(&self.query_at(self.page - 1))
            );
        }
        if first + (shown as i64) < total {
            let _ = write!(
                html,
                " <a rel=\"next\" href=\"{}?{}\">Next →</a>",
                Esc(path),
                Esc(&self.query_at(self.page + 1))
            );
        }
        html.push_str("</p>");
        html
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_fields_are_no_filter_and_pages_round_trip() {
        let l = Listing::parse(Some("user=bob&name=&id=87DE&from=2026-11-01&state=complete&page=3")).expect("valid");
        assert_eq!(l.search.user.as_deref(), Some("bob"));
        assert_eq!(l.search.name, None);
        assert_eq!(l.search.id_prefix.as_deref(), Some("87DE"));
        assert_eq!(l.search.from, NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(l.paging(), Paging { limit: 50, offset: 100 });
        let again = Listing::parse(Some(&l.query_at(3))).expect("round trip");
        assert_eq!(again, l);
        assert_eq!(Listing::parse(None).expect("none").paging(), Paging { limit: 50, offset: 0 });
    }

    #[test]
    fn the_pager_links_keep_the_filter_and_the_form_escapes() {
        let l = Listing::parse(Some("user=b%26b&page=2")).expect("valid");
        let html = l.pager("/admin/uploads", 250, 50);
        assert!(html.contains("51-100 of 250"), "{html}");
        assert!(html.contains("href=\"/admin/uploads?user=b%26b&amp;page=1\""), "{html}");
        assert!(html.contains("href=\"/admin/uploads?user=b%26b&amp;page=3\""), "{html}");
        assert!(!Listing::parse(Some("page=5")).expect("valid").pager("/x", 250, 50).contains("rel=\"next\""));
        let l = Listing::parse(Some("name=%22%3E%3Cb%3E&state=complete")).expect("valid");
        let form = l.filter_form("/admin/uploads", "Name", &["uploading", "complete"], "");
        assert!(form.contains("value=\"&quot;&gt;&lt;b&gt;\"") && !form.contains("<b>"));
        assert!(form.contains("<option selected>complete</option>"));
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        assert!(Listing::parse(Some("from=yesterday")).expect_err("refused").contains("from"));
        assert!(Listing::parse(Some("page=0")).expect_err("refused").contains("page"));
        assert!(Listing::parse(Some("per_page=100000")).expect_err("refused").contains("per_page"));
        assert!(Listing::parse(Some("id=';drop")).expect_err("refused").contains("id"));
    }
}
