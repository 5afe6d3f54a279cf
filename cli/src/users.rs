//! `ferry users`: accounts, with the rules of the admin page (`ferry_store::users`).

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::Subcommand;
use ferry_shared::types::ByteSize;
use ferry_stdout::outln;
use ferry_store::{users, Client};

use crate::output::{footer, print_json, Format, SearchArgs};

#[derive(Subcommand)]
pub enum UsersCmd {
    /// Create a user (password read from the first line of stdin).
    Add {
        username: String,
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password (read from the first line of stdin); the user's tokens and
    /// admin sessions stop working.
    Passwd { username: String },
    /// Disable a user: no more logins, and every token and admin session of theirs stops
    /// working at once. Their files stay.
    Disable { username: String },
    /// Enable a disabled user again (they log in anew).
    Enable { username: String },
    /// Delete a user with no live file, no open upload and no node copy of a deleted
    /// file left (else disable it), with the rows of its deleted files and ended
    /// uploads; their tokens die with the account.
    Delete { username: String },
    /// Set a user's quota in bytes (or 10GiB, 500MiB, 2TB), or `default` for the
    /// configured storage.default_quota_bytes. It bounds new uploads; stored files stay.
    Quota { username: String, quota: String },
    /// List users (--name matches a piece of the username; --user one exact name).
    List {
        #[command(flatten)]
        search: SearchArgs,
        /// Only disabled users.
        #[arg(long, conflicts_with = "enabled")]
        disabled: bool,
        /// Only enabled users.
        #[arg(long)]
        enabled: bool,
        #[command(flatten)]
        format: Format,
    },
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// A quota argument: a size (`ByteSize::parse_human`) or `default` (`None`).
fn parse_quota(s: &str) -> anyhow::Result<Option<ByteSize>> {
    if s.trim().eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    Ok(Some(ByteSize::parse_human(s)?))
}

pub async fn users(client: &Client, cmd: UsersCmd) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::Add { username, admin } => {
            if users::exists(client, &username).await? {
                bail!("user {username} already exists (use `ferry users passwd`)");
            }
            let id = users::upsert(client, &username, &read_password()?, admin).await?;
            outln!("created user {username} (id {id})");
        }
        UsersCmd::Passwd { username } => {
            if !users::set_password(client, &username, &read_password()?).await? {
                bail!("no user named {username}");
            }
            outln!("password of {username} changed");
        }
        UsersCmd::Disable { username } => {
            if !users::set_disabled(client, &username, true).await? {
                bail!("no user named {username}");
            }
            outln!("user {username} disabled; their tokens and sessions no longer work");
        }
        UsersCmd::Enable { username } => {
            if !users::set_disabled(client, &username, false).await? {
                bail!("no user named {username}");
            }
            outln!("user {username} enabled");
        }
        UsersCmd::Delete { username } => {
            if !users::delete(client, &username).await? {
                bail!("no user named {username}");
            }
            outln!("user {username} deleted");
        }
        UsersCmd::Quota { username, quota } => {
            let quota = parse_quota(&quota)?;
            if !users::set_quota(client, &username, quota).await? {
                bail!("no user named {username}");
            }
            match quota {
                Some(q) => outln!("quota of {username} is now {} ({} bytes)", q.human(), q.bytes()),
                None => outln!("quota of {username} is now the configured default"),
            }
        }
        UsersCmd::List { search, disabled, enabled, format } => {
            let (filter, paging) = search.resolve(client).await?;
            let state = if disabled {
                Some(true)
            } else if enabled {
                Some(false)
            } else {
                None
            };
            let (total, rows) = users::search(client, &filter, state, paging).await?;
            if format.json {
                return print_json(rows.iter().map(|u| u.json()));
            }
            outln!(
                "{:>6}  {:<24} {:<6} {:<9} {:>6} {:>12} {:>12}  created",
                "id",
                "username",
                "admin",
                "disabled",
                "files",
                "stored",
                "quota"
            );
            for u in &rows {
                outln!(
                    "{:>6}  {:<24} {:<6} {:<9} {:>6} {:>12} {:>12}  {}",
                    u.id,
                    u.username,
                    u.is_admin,
                    u.disabled,
                    u.files,
                    format.size(u.stored),
                    u.quota.map_or_else(|| "default".into(), |q| format.size(q)),
                    u.created_at.format("%F %T")
                );
            }
            footer(rows.len(), paging, total);
        }
    }
    Ok(())
}
