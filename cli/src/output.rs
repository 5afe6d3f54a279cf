//! How listings print: a table for people (sizes as `1.5 GiB`), exact byte counts
//! with `--bytes`, or one JSON array with `--json` (the same objects the admin JSON
//! API returns: `ferry_store`'s `json()` of each row), and the filters and paging the
//! listings of uploads, files and users share with the admin page.

use anyhow::bail;
use chrono::NaiveDate;
use clap::Args;
use ferry_shared::types::ByteSize;
use ferry_stdout::outln;
use ferry_store::search::{Paging, Search};
use ferry_store::{users, Client};

/// `--json` and `--bytes` of a listing that shows sizes.
#[derive(Args, Clone, Copy, Default)]
pub struct Format {
    /// Print one JSON array (sizes in bytes, times RFC 3339), for scripts.
    #[arg(long)]
    pub json: bool,
    /// Sizes as exact byte counts instead of 1.5 GiB.
    #[arg(long, conflicts_with = "json")]
    pub bytes: bool,
}

impl Format {
    pub fn size(&self, size: ByteSize) -> String {
        if self.bytes {
            size.bytes().to_string()
        } else {
            size.human()
        }
    }
}

/// `--json` of a listing without sizes.
#[derive(Args, Clone, Copy, Default)]
pub struct Json {
    /// Print one JSON array (times RFC 3339), for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Prints `rows` as one pretty JSON array.
pub fn print_json(rows: impl IntoIterator<Item = serde_json::Value>) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = rows.into_iter().collect();
    outln!("{}", serde_json::to_string_pretty(&rows)?);
    Ok(())
}

/// The filters of `ferry uploads ls`, `ferry files ls` and `ferry users list`, as on
/// the admin page.
#[derive(Args, Clone, Default)]
pub struct SearchArgs {
    /// Only this user's (exact username; an unknown name is an error).
    #[arg(long)]
    pub user: Option<String>,
    /// Only names containing this text (case-insensitive).
    #[arg(long)]
    pub name: Option<String>,
    /// Only ids starting with this (hex digits, or the whole id).
    #[arg(long)]
    pub id: Option<String>,
    /// Only those created on or after this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Only those created on or before this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// At most this many rows.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Skip this many rows first (the next page: --offset 50).
    #[arg(long, default_value_t = 0)]
    pub offset: i64,
}

impl SearchArgs {
    /// The store's filter and page; an unknown `--user` is an error, not an empty list.
    pub async fn resolve(&self, client: &Client) -> anyhow::Result<(Search, Paging)> {
        if let Some(user) = &self.user {
            if !users::exists(client, user).await? {
                bail!("no user named {user:?} (`ferry users list` shows them)");
            }
        }
        if self.id.as_deref().is_some_and(|id| !ferry_store::search::is_id_prefix(id)) {
            bail!("--id takes the start of an id: hex digits and '-'");
        }
        if !(1..=10_000).contains(&self.limit) || self.offset < 0 {
            bail!("--limit must be 1-10000 and --offset 0 or more");
        }
        let search = Search {
            user: self.user.clone(),
            name: self.name.clone(),
            id_prefix: self.id.clone(),
            from: self.from,
            to: self.to,
        };
        Ok((search, Paging { limit: self.limit, offset: self.offset }))
    }
}

/// The "1-50 of 250" line after a table (on stderr, so stdout stays the table).
pub fn footer(shown: usize, paging: Paging, total: i64) {
    if shown == 0 {
        eprintln!("none of {total} shown");
    } else {
        eprintln!("{}-{} of {total}", paging.offset + 1, paging.offset + shown as i64);
    }
}

/// `text` as one table cell: each line trimmed, joined with " | ", control characters
/// as spaces. Error texts (rsync's stderr, a probe's answer) span lines, and a second
/// line printed as it is reads as a row of its own.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `given` as a whole id, or `None` when it is an id's start to look up (at least 4
/// hex digits, as `git` takes a commit's); an error naming `a` ("a job id") when it is
/// neither.
pub fn whole_id(given: &str, a: &str) -> anyhow::Result<Option<uuid::Uuid>> {
    if let Ok(id) = given.parse::<uuid::Uuid>() {
        return Ok(Some(id));
    }
    if given.len() < 4 || !ferry_store::search::is_id_prefix(given) {
        bail!("{given:?} is not {a}, nor the start of one (at least 4 hex digits)");
    }
    Ok(None)
}

/// The one id among `found` (up to 3 looked up) that the start `given` names: an error
/// for none ("no {none} starts with ...") or several ("... is the start of several
/// {several} (...)").
pub fn the_one<T: std::fmt::Display + Copy>(given: &str, found: &[T], none: &str, several: &str) -> anyhow::Result<T> {
    match found {
        [one] => Ok(*one),
        [] => bail!("no {none} starts with {given}"),
        many => {
            let ids: Vec<String> = many.iter().map(ToString::to_string).collect();
            bail!(
                "{given} is the start of several {several} ({}{}); give more of it",
                ids.join(", "),
                if many.len() > 2 { ", ..." } else { "" }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_multi_line_error_is_one_cell() {
        let rsync = "rsync: [receiver] mkstemp failed: Is a directory (21)\nrsync error: some files could not be transferred (code 23)\n";
        assert_eq!(
            one_line(rsync),
            "rsync: [receiver] mkstemp failed: Is a directory (21) | rsync error: some files could not be transferred (code 23)"
        );
        assert_eq!(one_line("a\r\n\n  b\tc\u{1b}[2J"), "a | b c [2J");
        assert_eq!(one_line("plain"), "plain");
    }
}
