//! `ferry jobs`, `ferry dlq` and `ferry workers`: job records, dead letters and the
//! worker inventory, read from and written to PostgreSQL (`ferry_store::jobs`,
//! `ferry_store::workers`). A replay goes through the outbox, so any running Ferry
//! process (api, worker, monitor) publishes it within half a second.

use anyhow::{bail, Context};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use ferry_shared::types::FileId;
use ferry_stdout::outln;
use ferry_store::jobs::{self, Filter, JobDetail, JobRecord};
use ferry_store::search::Paging;
use ferry_store::uploads::Cancelled;
use ferry_store::{workers, Client, JobState};
use uuid::Uuid;

use crate::output::{footer, one_line, print_json, Json, SearchArgs};

#[derive(Subcommand)]
pub enum JobsCmd {
    /// List job records, newest first; with --upload, that upload's timeline (oldest first).
    Ls {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only jobs in this state: queued, active, retrying, done, dead, cancelled.
        #[arg(long)]
        state: Option<JobState>,
        #[command(flatten)]
        out: Json,
    },
    /// Show one job record (JSON), with its wait and duration in milliseconds and its
    /// attempts that did not succeed (`attempts`: each one's run, number, worker,
    /// times, outcome and error).
    Show {
        /// The job id, or enough of its start to name one job (at least 4 hex digits).
        id: String,
    },
    /// Cancel an unfinished upload and its pending jobs: the upload fails with code
    /// `cancelled` (its client is told so), its queued and retrying jobs become
    /// `cancelled` and are never run, a running one finds nothing to do, and a delete
    /// job removes its staging bytes. A complete upload is a file, which its owner
    /// deletes (`DELETE /storage/files/<id>/`).
    Cancel {
        /// The upload's id, or its start (at least 4 hex digits).
        #[arg(long)]
        upload: String,
        /// Recorded on the upload and its jobs (operators see it; the client sees only
        /// that an operator cancelled the upload).
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
    },
    /// Revoke jobs that wait (queued, or retrying between attempts), as Celery's
    /// `revoke`: each becomes `cancelled` with the reason, and its delivery, when it
    /// comes, is acknowledged without running. Only copies and checks (replicate,
    /// verify): a revoked copy's replica is failed, and the monitor's repair places the
    /// copy again wherever placement allows then (a node whose sshd or storage root
    /// fails its checks is skipped). Every id is looked up before anything is revoked:
    /// one that names no job (or several) stops the command with nothing changed. A job
    /// that runs, has ended or is of another kind is skipped, saying why, and the
    /// command then exits non-zero.
    Revoke {
        /// Job ids, or enough of each one's start to name one job (at least 4 hex digits).
        #[arg(required = true)]
        ids: Vec<String>,
        /// Recorded on each job as `revoked by an operator: <reason>` (not empty).
        #[arg(long, default_value = "from the CLI", value_parser = non_empty)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum DlqCmd {
    /// List dead letters (jobs given up), newest first, with their reason.
    Ls {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        out: Json,
    },
    /// Show one dead letter (JSON, as `ferry jobs show`).
    Show {
        /// The job id, or enough of its start to name one job (at least 4 hex digits).
        id: String,
    },
    /// Put dead letters back in their queue under their own job id (recorded on the job).
    Replay {
        /// Job ids, or enough of each one's start to name one dead letter; or --all with
        /// the filters.
        ids: Vec<String>,
        /// Every dead letter matching the filters (all of them: --limit and --offset
        /// do not apply).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Discard dead letters: they become `cancelled` (recorded on the job), never run.
    Discard {
        /// Job ids, or enough of each one's start to name one dead letter; or --all with
        /// the filters.
        ids: Vec<String>,
        /// Every dead letter matching the filters (all of them: --limit and --offset
        /// do not apply).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Subcommand)]
pub enum WorkersCmd {
    /// List workers: id, host, pid, version, queues, concurrency, heartbeat, jobs in
    /// flight. Workers stopped or silent for over an hour are left out (and counted on
    /// stderr) unless --all.
    Ls {
        /// Also workers stopped or silent for over an hour (kept until pruned after
        /// jobs.retention_days).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        out: Json,
    },
}

#[derive(Args, Clone, Default)]
pub struct FilterArgs {
    /// Only jobs about this upload (= file) id, or the start of one (at least 4 hex digits).
    #[arg(long)]
    upload: Option<String>,
    /// Only jobs of this kind: assemble, replicate, verify, delete, drop_replica (a queue's
    /// name, scrub or drop, stands for the jobs on it).
    #[arg(long, value_parser = parse_kind)]
    kind: Option<String>,
    /// Only jobs queued longer ago than this: 90s, 15m, 2h, 3d.
    #[arg(long, value_parser = parse_age)]
    older_than: Option<f64>,
    /// Only jobs about uploads of this user (exact username; an unknown name is an error).
    #[arg(long)]
    user: Option<String>,
    /// Only jobs about uploads whose file name contains this (case-insensitive).
    #[arg(long)]
    name: Option<String>,
    /// Only the job whose id starts with this (hex digits, or the whole id).
    #[arg(long)]
    id: Option<String>,
    /// Only jobs queued on or after this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Only jobs queued on or before this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Skip this many rows first (the next page: --offset 100).
    #[arg(long, default_value_t = 0)]
    offset: i64,
}

impl FilterArgs {
    /// The store's filter, as the admin Jobs page builds it; an unknown `--user` is an
    /// error, not an empty list.
    async fn filter(&self, client: &Client, state: Option<JobState>) -> anyhow::Result<(Filter, Paging)> {
        let search = SearchArgs {
            user: self.user.clone(),
            name: self.name.clone(),
            id: self.id.clone(),
            from: self.from,
            to: self.to,
            limit: self.limit,
            offset: self.offset,
        };
        let (search, paging) = search.resolve(client).await?;
        let filter = Filter {
            file: match &self.upload {
                Some(given) => Some(crate::storage::resolve_upload_id(client, given).await?),
                None => None,
            },
            state,
            kind: self.kind.clone(),
            older_than_secs: self.older_than,
            include_discarded: false,
            search,
            offset: paging.offset,
        };
        Ok((filter, paging))
    }
}

/// One page of jobs, then (text only) the "1-100 of 2500" line on stderr.
async fn page(client: &Client, filter: &Filter, paging: Paging, out: Json, with_reason: bool) -> anyhow::Result<()> {
    let rows = jobs::list(client, filter, paging.limit).await?;
    list(&rows, out, with_reason)?;
    if !out.json {
        footer(rows.len(), paging, jobs::count(client, filter).await?);
    }
    Ok(())
}

/// A job name (`verify`), or a queue's name (`scrub`, `ferry.scrub`) for the jobs on
/// it: each queue carries one kind of job.
fn parse_kind(s: &str) -> Result<String, String> {
    if ferry_queue::Job::NAMES.contains(&s) {
        return Ok(s.to_owned());
    }
    match s.parse::<ferry_queue::JobKind>() {
        Ok(kind) => Ok(kind.job_names()[0].to_owned()),
        Err(_) => Err(format!(
            "expected one of {} (or a queue's name: scrub, drop, ferry.scrub, ...)",
            ferry_queue::Job::NAMES.join(", ")
        )),
    }
}

/// `<number><unit>` with unit s, m, h or d, in seconds.
fn parse_age(s: &str) -> Result<f64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("{s:?} is not an age like 90s, 15m, 2h or 3d"))?;
    let unit = match unit {
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("unknown unit in {s:?} (s, m, h or d)")),
    };
    Ok(n * unit)
}

fn millis(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
        None => "-".into(),
    }
}

fn print_jobs(rows: &[JobRecord], with_reason: bool) {
    outln!(
        "{:<19}  {:<36}  {:<12} {:<9} {:>3} {:>4}  {:<24} {:>7} {:>8}  {}",
        "queued",
        "id",
        "kind",
        "state",
        "att",
        "node",
        "worker",
        "wait",
        "duration",
        if with_reason { "reason" } else { "upload / error" }
    );
    let now = chrono::Utc::now();
    for j in rows {
        let note = match (j.shown_error().as_deref().map(one_line), with_reason) {
            (Some(e), true) => e,
            (Some(e), false) => format!("{} {e}", j.file),
            (None, _) => j.file.to_string(),
        };
        // While retrying: which attempt comes next, and when.
        let note = if j.retry_at.is_some() { format!("[{}] {note}", j.attempt_text(now)) } else { note };
        outln!(
            "{:<19}  {:<36}  {:<12} {:<9} {:>3} {:>4}  {:<24} {:>7} {:>8}  {}",
            j.queued_at.format("%F %T"),
            j.id,
            j.kind,
            j.state,
            j.attempt,
            j.node.map_or("-".into(), |n| n.to_string()),
            j.worker.as_deref().unwrap_or("-"),
            millis(j.wait_ms()),
            millis(j.duration_ms()),
            note,
        );
    }
}

fn show(job: &JobDetail) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(&job.json())?);
    Ok(())
}

/// The job `given` names: a whole id, or the start of exactly one job's id (as `git`
/// takes a commit's) among the jobs in `state` (any state: `None`). An error for no
/// match, several, or text that is no id's start.
async fn resolve_id(client: &Client, given: &str, state: Option<JobState>) -> anyhow::Result<Uuid> {
    if let Some(id) = crate::output::whole_id(given, "a job id")? {
        return Ok(id);
    }
    let filter = Filter {
        state,
        include_discarded: true,
        search: ferry_store::search::Search { id_prefix: Some(given.to_owned()), ..Default::default() },
        ..Default::default()
    };
    let ids: Vec<Uuid> = jobs::list(client, &filter, 3).await?.iter().map(|j| j.id).collect();
    let none = if state.is_some() { "dead letter's job id" } else { "job id" };
    crate::output::the_one(given, &ids, none, "job ids")
}

/// A reason as given, refused when blank: a record that says why says something.
fn non_empty(reason: &str) -> Result<String, String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err("give a reason (it is recorded on each job)".into());
    }
    Ok(reason.to_owned())
}

/// The job `given` names ([`resolve_id`]); a whole id too must name a job that exists.
async fn resolve_existing(client: &Client, given: &str) -> anyhow::Result<Uuid> {
    let id = resolve_id(client, given, None).await?;
    if jobs::get(client, id).await?.is_none() {
        bail!("no job {id}");
    }
    Ok(id)
}

/// The job `given` names among the dead letters first, then (a replayed or discarded
/// one, no longer `dead`) among all jobs: what `dlq show`, `replay` and `discard` act on.
async fn resolve_dead_letter_id(client: &Client, given: &str) -> anyhow::Result<Uuid> {
    match resolve_id(client, given, Some(JobState::Dead)).await {
        Ok(id) => Ok(id),
        Err(_) => resolve_id(client, given, None).await,
    }
}

/// The job `given` names ([`resolve_id`] among all jobs) with its attempts.
async fn find(client: &Client, given: &str) -> anyhow::Result<JobDetail> {
    let id = resolve_id(client, given, None).await?;
    jobs::detail(client, id).await?.with_context(|| format!("no job {id}"))
}

fn list(rows: &[JobRecord], out: Json, with_reason: bool) -> anyhow::Result<()> {
    if out.json {
        return print_json(rows.iter().map(JobRecord::json));
    }
    print_jobs(rows, with_reason);
    Ok(())
}

pub async fn jobs(client: &mut Client, cmd: JobsCmd) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::Ls { filter, state, out } => {
            let (mut f, paging) = filter.filter(client, state).await?;
            f.include_discarded = true;
            page(client, &f, paging, out, false).await?;
        }
        JobsCmd::Show { id } => show(&find(client, &id).await?)?,
        JobsCmd::Cancel { upload, reason } => {
            let upload = crate::storage::resolve_upload_id(client, &upload).await?.0;
            match ferry_queue::expiry::cancel_upload(client, FileId(upload), &reason).await? {
                Cancelled::Done { jobs } => {
                    outln!("upload {upload} cancelled; {jobs} pending job(s) cancelled; its staging bytes are being removed");
                }
                Cancelled::AlreadyEnded(state) => {
                    let hint = if state == ferry_store::UploadState::Complete {
                        " (a complete upload is a file, which its owner deletes: DELETE /storage/files/<id>/)"
                    } else {
                        ""
                    };
                    bail!("upload {upload} is already {state}; nothing to cancel{hint}")
                }
                Cancelled::Unknown => bail!("no upload {upload}"),
            }
        }
        JobsCmd::Revoke { ids, reason } => {
            // All looked up first, so a typo changes nothing.
            let mut resolved = Vec::with_capacity(ids.len());
            for given in &ids {
                resolved.push(resolve_existing(client, given).await?);
            }
            let mut revoked = 0;
            for id in resolved {
                match jobs::revoke(client, id, &reason).await? {
                    jobs::Revoke::Revoked => {
                        revoked += 1;
                        outln!("job {id} revoked");
                    }
                    refused => outln!("job {id} skipped: {}", refused.refusal()),
                }
            }
            all_acted(revoked, ids.len())?;
        }
    }
    Ok(())
}

/// The dead letters a replay or discard acts on: the ids given, or with --all every one
/// matching the filters.
async fn targets(client: &Client, ids: Vec<String>, all: bool, filter: &FilterArgs) -> anyhow::Result<Vec<Uuid>> {
    match (ids.is_empty(), all) {
        (false, false) => {
            let mut resolved = Vec::with_capacity(ids.len());
            for given in &ids {
                // One that is no dead letter (any more) the action skips, saying why.
                resolved.push(resolve_dead_letter_id(client, given).await?);
            }
            Ok(resolved)
        }
        (true, true) => {
            // Every match as of this listing, read a page at a time: --limit and
            // --offset page a listing, they do not narrow --all (a replay of 4 with
            // --limit 1 used to act on 1 and say nothing of the other 3).
            const PAGE: i64 = 1000;
            let (mut f, _) = filter.filter(client, Some(JobState::Dead)).await?;
            f.offset = 0;
            let mut seen = std::collections::HashSet::new();
            let mut targets = Vec::new();
            loop {
                let rows = jobs::list(client, &f, PAGE).await?;
                let full = rows.len() as i64 == PAGE;
                // A job that died meanwhile can shift a row onto the next page too.
                targets.extend(rows.into_iter().map(|j| j.id).filter(|id| seen.insert(*id)));
                if !full {
                    return Ok(targets);
                }
                f.offset += PAGE;
            }
        }
        (false, true) => bail!("give job ids or --all, not both"),
        (true, false) => bail!("give the job ids to act on, or --all with filters"),
    }
}

/// Why job `id` is no dead letter, for a skipped replay or discard: ` (it is done,
/// replayed 1× already)`, ` (it is cancelled: discarded)`, or ` (no such job)`.
async fn why_not(client: &impl ferry_store::GenericClient, id: Uuid) -> anyhow::Result<String> {
    let Some(job) = jobs::get(client, id).await? else { return Ok(" (no such job)".into()) };
    let mut why = format!(" (it is {}", job.state);
    if job.discarded_at.is_some() {
        why.push_str(": discarded");
    } else if job.replays > 0 {
        why.push_str(&format!(", replayed {}× already", job.replays));
    }
    why.push(')');
    Ok(why)
}

/// An error (non-zero exit) when a replay, discard or revoke acted on fewer of the
/// `given` jobs than asked: the others were skipped, each saying why (unknown,
/// finished, discarded, running, or of a kind the action does not take).
fn all_acted(acted: usize, given: usize) -> anyhow::Result<()> {
    if acted < given {
        bail!("{} of the {given} job(s) given were skipped (each says why above)", given - acted);
    }
    Ok(())
}

pub async fn dlq(client: &mut Client, cmd: DlqCmd) -> anyhow::Result<()> {
    match cmd {
        DlqCmd::Ls { filter, out } => {
            let (f, paging) = filter.filter(client, Some(JobState::Dead)).await?;
            page(client, &f, paging, out, true).await?;
        }
        DlqCmd::Show { id } => {
            let id = resolve_dead_letter_id(client, &id).await?;
            let job = jobs::detail(client, id).await?.with_context(|| format!("no job {id}"))?;
            let r = &job.record;
            if r.state == JobState::Dead || r.discarded_at.is_some() || r.replays > 0 {
                show(&job)?;
            } else {
                bail!("job {} is {}, not a dead letter", r.id, r.state);
            }
        }
        DlqCmd::Replay { ids, all, filter } => {
            let ids = targets(client, ids, all, &filter).await?;
            let tx = client.transaction().await?;
            let mut replayed = 0;
            for id in &ids {
                match jobs::replay(&tx, *id, ferry_queue::JOBS_EXCHANGE).await? {
                    jobs::Replay::Replayed => {
                        replayed += 1;
                        outln!("replayed {id}");
                    }
                    jobs::Replay::NotDead => {
                        eprintln!("{id} is not a dead letter{}; skipped", why_not(&tx, *id).await?)
                    }
                    jobs::Replay::FileDeleted => eprintln!(
                        "{id}: its file was deleted after it died, so a replay would find nothing to do; \
                         skipped (discard it: ferry dlq discard {id})"
                    ),
                }
            }
            tx.commit().await?;
            outln!(
                "{replayed} dead letter(s) replayed; they are published from the outbox by any running Ferry process"
            );
            all_acted(replayed, ids.len())?;
        }
        DlqCmd::Discard { ids, all, filter } => {
            let ids = targets(client, ids, all, &filter).await?;
            let mut discarded = 0;
            for id in &ids {
                if jobs::discard(client, *id).await? {
                    discarded += 1;
                    outln!("discarded {id}");
                } else {
                    eprintln!("{id} is not a dead letter{}; skipped", why_not(client, *id).await?);
                }
            }
            outln!("{discarded} dead letter(s) discarded");
            all_acted(discarded, ids.len())?;
        }
    }
    Ok(())
}

pub async fn workers(client: &Client, cmd: WorkersCmd) -> anyhow::Result<()> {
    let WorkersCmd::Ls { all, out } = cmd;
    let rows = workers::list(client, all).await?;
    if out.json {
        return print_json(rows.iter().map(workers::WorkerRow::json));
    }
    let older = if all { 0 } else { workers::count_older(client).await? };
    outln!(
        "{:<32} {:<8} {:<16} {:<8} {:<10} {:<26} {:>4} {:<19} {:>9} {:>9}",
        "id",
        "state",
        "host",
        "pid",
        "version",
        "queues",
        "conc",
        "started",
        "heartbeat",
        "in_flight"
    );
    for w in rows {
        let state = w.liveness();
        outln!(
            "{:<32} {:<8} {:<16} {:<8} {:<10} {:<26} {:>4} {:<19} {:>8.0}s {:>9}",
            w.id,
            state,
            w.host,
            w.pid,
            w.version,
            w.queues.join(","),
            w.concurrency,
            w.started_at.format("%F %T"),
            w.heartbeat_age_secs,
            w.in_flight.len(),
        );
        // A stale worker's list is what it last reported: its jobs go to other
        // workers once the broker drops its connection, and may be listed there too.
        let label = if state == "running" { "in flight" } else { "in flight at its last heartbeat" };
        for id in &w.in_flight {
            outln!("    {label}: {id}");
        }
    }
    if older > 0 {
        eprintln!("{older} worker(s) stopped or silent for over an hour not shown (--all lists them)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_kinds_parse() {
        assert_eq!(parse_age("90s"), Ok(90.0));
        assert_eq!(parse_age("15m"), Ok(900.0));
        assert_eq!(parse_age("2h"), Ok(7200.0));
        assert_eq!(parse_age("1.5d"), Ok(129_600.0));
        assert_eq!(parse_age("30"), Ok(30.0));
        assert!(parse_age("2w").is_err());
        assert!(parse_age("h").is_err());
        assert_eq!(parse_kind("drop_replica").as_deref(), Ok("drop_replica"));
        // A queue's name stands for the jobs on it (the operator trial of stop 31).
        assert_eq!(parse_kind("scrub").as_deref(), Ok("verify"));
        assert_eq!(parse_kind("ferry.drop").as_deref(), Ok("drop_replica"));
        assert!(parse_kind("scrubs").is_err());
    }
}
