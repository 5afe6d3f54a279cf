//! The filters the admin page and the `ferry` CLI share for listings of every user's
//! uploads, files and accounts: who, what name, which id, when, and a page of the
//! result (newest first, with the total so a page can say "51-100 of 250").

use chrono::NaiveDate;

/// What a listing is narrowed to; `None` matches everything. Every filter binds as a
/// query parameter (never spliced into SQL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// The owner's exact username.
    pub user: Option<String>,
    /// A piece of the (file) name, matched case-insensitively anywhere in it.
    pub name: Option<String>,
    /// The start of the id as text (`87de9ef6`, or the whole UUID).
    pub id_prefix: Option<String>,
    /// Created on or after this day (UTC).
    pub from: Option<NaiveDate>,
    /// Created on or before this day (UTC).
    pub to: Option<NaiveDate>,
}

/// One page of a listing: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: i64,
    pub offset: i64,
}

/// Whether `text` can be the start of an id as [`Search::id_prefix`] takes it: hex
/// digits and `-` only (any case); the empty text is every id's start.
pub fn is_id_prefix(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

impl Search {
    /// `name` as a `LIKE` pattern matching it anywhere, its wildcards escaped.
    pub(crate) fn name_pattern(&self) -> Option<String> {
        self.name.as_deref().map(|n| format!("%{}%", escape_like(n)))
    }

    /// `id_prefix` as a `LIKE` pattern on the id's text (lowercase, as PostgreSQL
    /// prints UUIDs).
    pub(crate) fn id_pattern(&self) -> Option<String> {
        self.id_prefix.as_deref().map(|p| format!("{}%", escape_like(&p.to_ascii_lowercase())))
    }
}

/// `\`, `%` and `_` taken literally in a `LIKE` pattern (PostgreSQL's default escape is `\`).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_take_wildcards_literally() {
        let s = Search { name: Some("50%_off\\".into()), id_prefix: Some("87DE".into()), ..Search::default() };
        assert_eq!(s.name_pattern().as_deref(), Some("%50\\%\\_off\\\\%"));
        assert_eq!(s.id_pattern().as_deref(), Some("87de%"));
        assert_eq!(Search::default().name_pattern(), None);
    }
}
