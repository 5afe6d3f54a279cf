//! `ferry files` and `ferry uploads`: every user's files and uploads, filtered and paged
//! like the admin page's lists, and upload housekeeping.

use anyhow::Context;
use clap::Subcommand;
use ferry_shared::types::FileId;
use ferry_stdout::outln;
use ferry_store::{files, jobs, replicas, uploads, Client, Pool, UploadState};

use crate::output::{footer, print_json, Format, SearchArgs};

#[derive(Subcommand)]
pub enum FilesCmd {
    /// List files, newest first (live ones; --deleted for deleted ones).
    Ls {
        #[command(flatten)]
        search: SearchArgs,
        /// Deleted files instead of live ones.
        #[arg(long)]
        deleted: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Show a file with its checksums, replicas and jobs (JSON; its first 50 jobs, oldest
    /// first, and `jobs_total`). The id's start is enough (at least 4 hex digits) when one
    /// upload's id starts so.
    Show { id: String },
}

#[derive(Subcommand)]
pub enum UploadsCmd {
    /// List uploads of every user, newest first.
    Ls {
        #[command(flatten)]
        search: SearchArgs,
        /// Only uploads in this state: uploading, assembling, complete, failed, expired.
        #[arg(long)]
        state: Option<UploadState>,
        #[command(flatten)]
        format: Format,
    },
    /// Expire uploads past their expiry now and queue their staging bytes for removal.
    Gc,
}

/// The upload (= file) id `given` names: a whole id, or the start of exactly one
/// upload's id (at least 4 hex digits), as job ids are taken.
pub async fn resolve_upload_id(client: &Client, given: &str) -> anyhow::Result<FileId> {
    if let Some(id) = crate::output::whole_id(given, "an upload or file id")? {
        return Ok(FileId(id));
    }
    let ids = uploads::ids_starting(client, &given.to_ascii_lowercase(), 3).await?;
    crate::output::the_one(given, &ids, "upload or file id", "upload ids")
}

pub async fn files(client: &Client, cmd: FilesCmd) -> anyhow::Result<()> {
    match cmd {
        FilesCmd::Ls { search, deleted, format } => {
            let (filter, paging) = search.resolve(client).await?;
            let (total, rows) = files::search(client, &filter, Some(deleted), paging).await?;
            if format.json {
                return print_json(rows.iter().map(|o| o.json()));
            }
            outln!("{:<36}  {:<12} {:>12}  {:>8}  {:<19}  name", "id", "user", "size", "replicas", "created");
            for o in &rows {
                outln!(
                    "{}  {:<12} {:>12}  {:>8}  {}  {}",
                    o.file.id,
                    o.username,
                    format.size(o.file.size),
                    o.present,
                    o.file.created_at.format("%F %T"),
                    o.file.filename
                );
            }
            footer(rows.len(), paging, total);
        }
        FilesCmd::Show { id } => {
            let id = resolve_upload_id(client, &id).await?;
            let owned = files::get_any(client, id).await?.with_context(|| format!("no file {id}"))?;
            let replicas = replicas::of_files(client, &[id]).await?;
            let mut view = owned.json();
            view["replicas"] = replicas
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "node": r.node_name,
                        "state": r.state.as_str(),
                        "attempts": r.attempts,
                        "last_error": r.last_error,
                    })
                })
                .collect();
            let filter = jobs::Filter { file: Some(id), include_discarded: true, ..Default::default() };
            let (records, total) =
                (jobs::list(client, &filter, SHOWN_JOBS).await?, jobs::count(client, &filter).await?);
            view["jobs"] = records
                .iter()
                .map(|j| {
                    serde_json::json!({
                        "id": j.id,
                        "kind": j.kind,
                        "node": j.node,
                        "state": j.state.as_str(),
                        "attempt": j.attempt,
                        "worker": j.worker,
                        "queued_at": j.queued_at,
                        "error": j.shown_error(),
                    })
                })
                .collect();
            view["jobs_total"] = total.into();
            outln!("{}", serde_json::to_string_pretty(&view)?);
        }
    }
    Ok(())
}

/// Jobs `files show` lists, oldest first (`jobs_total` counts all; `ferry jobs ls
/// --upload ID --offset N` pages through them).
const SHOWN_JOBS: i64 = 50;

pub async fn uploads(pool: &Pool, client: &Client, cmd: UploadsCmd) -> anyhow::Result<()> {
    match cmd {
        UploadsCmd::Ls { search, state, format } => {
            let (filter, paging) = search.resolve(client).await?;
            let (total, rows) = uploads::search(client, &filter, state, paging).await?;
            if format.json {
                return print_json(rows.iter().map(|r| r.json()));
            }
            outln!(
                "{:<36}  {:<12} {:<10} {:>12} {:>12}  {:<19}  {:<19}  name",
                "id",
                "user",
                "state",
                "offset",
                "total",
                "created",
                "expires"
            );
            for r in &rows {
                let u = &r.upload;
                outln!(
                    "{}  {:<12} {:<10} {:>12} {:>12}  {}  {:<19}  {}",
                    u.id,
                    r.username,
                    u.state,
                    format.size(u.offset),
                    u.total_size.map_or_else(|| "?".into(), |t| format.size(t)),
                    u.created_at.format("%F %T"),
                    r.expires_at().map_or_else(|| "-".into(), |t| t.format("%F %T").to_string()),
                    u.filename
                );
            }
            footer(rows.len(), paging, total);
        }
        UploadsCmd::Gc => {
            let expired = ferry_queue::expiry::expire_uploads(pool).await?;
            outln!("expired {expired} uploads; their staging bytes are queued for removal");
        }
    }
    Ok(())
}
