//! The query string of the admin listings (page and JSON API alike):
//! `?user=&name=&id=&from=&to=&state=&kind=&page=&per_page=`, blank fields meaning
//! "any", parsed once into `ferry_store::search` terms and written back into the links
//! of the pager so a filter survives paging.

use chrono::NaiveDate;
use ferry_store::search::{Paging, Search};
use serde::Deserialize;

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
        if id.as_deref().is_some_and(|i| i.len() > 36 || !i.chars().all(|c| c.is_ascii_hexdigit() || c == '-')) {
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
            page: number(raw.page, "page", 1..=1_000_000)?.unwrap_or(1),
            per_page: number(raw.per_page, "per_page", 1..=MAX_PER_PAGE)?.unwrap_or(PER_PAGE),
        })
    }

    pub fn paging(&self) -> Paging {
        Paging { limit: self.per_page, offset: (self.page - 1) * self.per_page }
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
        assert_eq!(Listing::parse(None).expect("none").paging(), Paging { limit: 50, offset: 0 });
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        assert!(Listing::parse(Some("from=yesterday")).expect_err("refused").contains("from"));
        assert!(Listing::parse(Some("page=0")).expect_err("refused").contains("page"));
        assert!(Listing::parse(Some("per_page=100000")).expect_err("refused").contains("per_page"));
        assert!(Listing::parse(Some("id=';drop")).expect_err("refused").contains("id"));
    }
}
