//! Page-number pagination as the original's listings (Django REST framework's
//! `PageNumberPagination`): `?page=N` from 1, `{"count", "next", "previous", "results"}`
//! with absolute links; a page past the end is `404`.

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// One requested page: its number (from 1), size and row offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: i64,
    pub size: i64,
    pub offset: i64,
}

impl Page {
    /// Parses `?page=` (absent or empty: 1). Errors: 404 for anything but a positive
    /// integer, or a page whose offset would overflow.
    pub fn parse(raw: Option<&str>, page_size: u32) -> ApiResult<Page> {
        let number: i64 = match raw {
            None | Some("") => 1,
            Some(p) => p.parse().ok().filter(|p| *p >= 1).ok_or_else(not_found)?,
        };
        let size = i64::from(page_size.max(1));
        // Checked: a huge `page` must be "no such page", not an overflow.
        let offset = (number - 1).checked_mul(size).ok_or_else(not_found)?;
        Ok(Page { number, size, offset })
    }

    /// 404 for a page past the last of `count` rows (page 1 always exists).
    pub fn check(&self, count: i64) -> ApiResult<()> {
        if self.number > 1 && self.offset >= count {
            return Err(not_found());
        }
        Ok(())
    }

    /// The listing's body; `link` is the listing's absolute URL without a query.
    pub fn envelope(&self, count: i64, results: Vec<Value>, link: &str) -> Value {
        let at = |p: i64| format!("{link}?page={p}");
        json!({
            "count": count,
            "next": (self.offset + self.size < count).then(|| at(self.number + 1)),
            "previous": (self.number > 1).then(|| at(self.number - 1)),
            "results": results,
        })
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound { what: "Page" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_parse_link_and_end() {
        let page = Page::parse(None, 50).expect("page 1");
        assert_eq!(page, Page { number: 1, size: 50, offset: 0 });
        assert!(page.check(0).is_ok(), "page 1 of nothing exists");
        let two = Page::parse(Some("2"), 50).expect("page 2");
        assert_eq!(two.offset, 50);
        assert!(two.check(50).is_err() && two.check(51).is_ok());
        for bad in ["0", "-1", "x", "99999999999999999999", "9223372036854775807"] {
            assert!(Page::parse(Some(bad), 50).is_err(), "{bad}");
        }
        let body = two.envelope(120, vec![], "http://h/l/");
        assert_eq!(body["next"], "http://h/l/?page=3");
        assert_eq!(body["previous"], "http://h/l/?page=1");
        assert_eq!(Page::parse(Some("3"), 50).expect("3").envelope(120, vec![], "x")["next"], Value::Null);
    }
}
