//! The `jobs` table: one record per job, keyed by the AMQP `message_id` it travels
//! with. Written where the job is enqueued (`queued`, same transaction as the outbox
//! row), when a worker starts it (`active`), schedules a retry (`retrying`), finishes
//! it (`done`) or gives it up (`dead`); re-enqueued by the monitor's reconciler when
//! its message was lost, replayed or discarded by an operator.
//!
//! The record describes the job's running or last attempt. An attempt that ends without
//! success (failed and retried, given up, or lost with its worker) is also copied to
//! `job_attempts` by the statement that ends it ([`attempts`]), so an operator sees
//! every attempt's worker, times and error, across retries and replays, while a job
//! that succeeds the first time costs no write more than before.

use crate::cached::Cached;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ferry_shared::types::{FileId, NodeId};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::search::Search;
use crate::{AttemptOutcome, JobState, ReplicaState, StoreError};

/// What a job is, as written when it is enqueued (and again by a worker that meets a
/// message without a record: one published before records existed, or pruned).
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The AMQP `message_id`.
    pub id: Uuid,
    /// The job's name (`assemble`, `replicate`, `verify`, `delete`, `drop_replica`).
    pub kind: &'a str,
    /// The queue's routing key on the jobs exchange (`assemble`, `replicate`, `delete`).
    pub queue: &'a str,
    /// The upload (= file) the job is about.
    pub file: FileId,
    pub node: Option<NodeId>,
    /// The message body.
    pub payload: &'a serde_json::Value,
}

/// One job record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: String,
    pub queue: String,
    pub payload: serde_json::Value,
    pub file: Uuid,
    pub node: Option<i32>,
    #[serde(serialize_with = "state_text")]
    pub state: JobState,
    /// The attempt's number, counting from 0, which is also its earlier failures: the
    /// running or last attempt's, and while `retrying` the next one's (so the failures
    /// so far). A dead letter given up after 8 failures shows 7. A replay starts again
    /// from 0 with a whole retry budget (`replays` counts the replays).
    pub attempt: i32,
    /// `<host>:<pid>` (or the configured id) of the worker that ran the last attempt.
    pub worker: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub state_at: DateTime<Utc>,
    /// The last attempt's error, or why it was dead-lettered; `None` once an attempt
    /// succeeded (the failures before it are in [`attempts`]).
    pub error: Option<String>,
    /// Times the reconciler re-enqueued it.
    pub requeues: i32,
    /// Times an operator replayed it from the dead letters.
    pub replays: i32,
    pub replayed_at: Option<DateTime<Utc>>,
    pub discarded_at: Option<DateTime<Utc>>,
    /// While `retrying`: when the next attempt is due (the retry tier's delay from the
    /// failure; the broker's message TTL decides to the second). `None` otherwise.
    pub retry_at: Option<DateTime<Utc>>,
    /// Attempts the job's kind gets before it is given up, as the worker that last
    /// scheduled a retry or gave it up knew them (`worker.policy.<kind>.max_attempts`);
    /// `None` before any failure.
    pub max_attempts: Option<i32>,
}

fn state_text<S: serde::Serializer>(state: &JobState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

impl JobRecord {
    /// The record as JSON (`ferry jobs ls --json`, `ferry dlq show`, `GET
    /// /admin/api/jobs`): its fields, times RFC 3339, plus `wait_ms` and `duration_ms`
    /// ([`JobRecord::wait_ms`], [`JobRecord::duration_ms`]; `null` when unknown).
    pub fn json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["wait_ms"] = self.wait_ms().into();
        value["duration_ms"] = self.duration_ms().into();
        value
    }

    /// The error to show beside the job: its last error. A `done` job has none since
    /// migration 18; one finished before it kept its last failure, which is shown
    /// marked as an earlier attempt's, so a `done` job never reads as failing.
    pub fn shown_error(&self) -> Option<String> {
        let error = self.error.as_deref()?;
        Some(if self.state == JobState::Done { format!("before it succeeded: {error}") } else { error.to_owned() })
    }

    /// Queued → started of the last attempt, in milliseconds (the first attempt's wait
    /// for a worker; later attempts include the retry delay).
    pub fn wait_ms(&self) -> Option<i64> {
        self.started_at.map(|s| (s - self.queued_at).num_milliseconds())
    }

    /// The attempt as operators read it. While `retrying`, the retry to come (the next
    /// attempt's number counting from 0 is the retries so far, so it is also that
    /// retry's number counting from 1) and when it is due: `retry 3 of 7 at 00:21:05
    /// UTC, in 95 s` (`now` gives the "in"; 7 = the kind's attempts less the first).
    /// Otherwise the attempt's number from 0, with the kind's budget once known: `3 (from
    /// 0; 8 allowed)`.
    pub fn attempt_text(&self, now: DateTime<Utc>) -> String {
        match self.retry_at {
            Some(at) if self.state == JobState::Retrying => format!(
                "retry {}{} at {}, in {} s",
                self.attempt,
                self.max_attempts.map(|m| format!(" of {}", m - 1)).unwrap_or_default(),
                at.format("%T UTC"),
                (at - now).num_seconds().max(0)
            ),
            _ => match self.max_attempts {
                Some(m) => format!("{} (from 0; {m} allowed)", self.attempt),
                None => self.attempt.to_string(),
            },
        }
    }

    /// Started → finished of the last attempt, in milliseconds.
    pub fn duration_ms(&self) -> Option<i64> {
        match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) if f >= s => Some((f - s).num_milliseconds()),
            _ => None,
        }
    }

    fn from_row(r: &Row) -> Result<JobRecord, StoreError> {
        let state: JobState = r.try_get("state")?;
        Ok(JobRecord {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            queue: r.try_get("queue")?,
            payload: r.try_get("payload")?,
            file: r.try_get("file_id")?,
            node: r.try_get("node_id")?,
            state,
            attempt: r.try_get("attempt")?,
            worker: r.try_get("worker_id")?,
            queued_at: r.try_get("queued_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            state_at: r.try_get("state_at")?,
            error: r.try_get("error")?,
            requeues: r.try_get("requeues")?,
            replays: r.try_get("replays")?,
            replayed_at: r.try_get("replayed_at")?,
            discarded_at: r.try_get("discarded_at")?,
            retry_at: r.try_get::<_, Option<DateTime<Utc>>>("retry_at")?.filter(|_| state == JobState::Retrying),
            max_attempts: r.try_get("max_attempts")?,
        })
    }
}

const COLUMNS: &str = "id, kind, queue, payload, file_id, node_id, state, attempt, worker_id, queued_at, \
                       started_at, finished_at, state_at, error, requeues, replays, replayed_at, discarded_at, \
                       retry_at, max_attempts";

/// Enqueues new jobs inside the caller's transaction, in one statement whatever their
/// number (a file's replicate jobs go together): records each as `queued` and adds its
/// message to the outbox (`crate::outbox`) on `exchange`, routed by the job's queue,
/// with the job's id as its AMQP `message_id` and its payload as the body. The outbox
/// rows are written in the jobs' order, which is the order they are relayed in.
pub async fn enqueue(c: &impl GenericClient, exchange: &str, jobs: &[NewJob<'_>]) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let Columns { ids, kinds, queues, payloads, files, nodes } = Columns::of(jobs.iter().cloned());
    c.execute_cached(
        "WITH x AS MATERIALIZED (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::uuid[], $6::int4[])
                  WITH ORDINALITY AS x(id, kind, queue, payload, file_id, node_id, n)),
         recorded AS (
             INSERT INTO jobs (id, kind, queue, payload, file_id, node_id, state)
             SELECT id, kind, queue, payload, file_id, node_id, $7 FROM x)
         INSERT INTO outbox (exchange, routing_key, message_id, payload)
         SELECT $8, queue, id, payload FROM x ORDER BY n",
        &[&ids, &kinds, &queues, &payloads, &files, &nodes, &JobState::Queued, &exchange],
    )
    .await?;
    Ok(())
}

/// New job rows as the columns of an `unnest`, in the jobs' order.
struct Columns<'a> {
    ids: Vec<Uuid>,
    kinds: Vec<&'a str>,
    queues: Vec<&'a str>,
    payloads: Vec<&'a serde_json::Value>,
    files: Vec<Uuid>,
    nodes: Vec<Option<i32>>,
}

impl<'a> Columns<'a> {
    fn of(jobs: impl Iterator<Item = NewJob<'a>>) -> Columns<'a> {
        let mut columns = Columns {
            ids: Vec::new(),
            kinds: Vec::new(),
            queues: Vec::new(),
            payloads: Vec::new(),
            files: Vec::new(),
            nodes: Vec::new(),
        };
        for job in jobs {
            columns.ids.push(job.id);
            columns.kinds.push(job.kind);
            columns.queues.push(job.queue);
            columns.payloads.push(job.payload);
            columns.files.push(job.file.0);
            columns.nodes.push(job.node.map(|n| n.0));
        }
        columns
    }
}

/// What a worker learns when it starts a job.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    /// When the job was first queued (for the wait-time metric).
    pub queued_at: DateTime<Utc>,
}

/// A delivery a worker starts: its job (as the message gives it) and the attempt.
#[derive(Debug, Clone)]
pub struct Start {
    /// The AMQP `message_id`.
    pub id: Uuid,
    pub kind: String,
    pub queue: String,
    pub file: FileId,
    pub node: Option<NodeId>,
    /// The message body.
    pub payload: serde_json::Value,
    pub attempt: i32,
}

impl Start {
    /// The record of `job` at `attempt`.
    pub fn new(job: &NewJob<'_>, attempt: i32) -> Start {
        Start {
            id: job.id,
            kind: job.kind.to_owned(),
            queue: job.queue.to_owned(),
            file: job.file,
            node: job.node,
            payload: job.payload.clone(),
            attempt,
        }
    }

    /// The job this delivery carries.
    fn job(&self) -> NewJob<'_> {
        NewJob {
            id: self.id,
            kind: &self.kind,
            queue: &self.queue,
            file: self.file,
            node: self.node,
            payload: &self.payload,
        }
    }
}

/// The error kept with an attempt the broker delivered again before it ended.
pub const REDELIVERED: &str =
    "the broker delivered the job again: the attempt's worker stopped or lost its connection before it ended";

/// Marks each job `active` on `worker` at its attempt, creating the record if the
/// message had none, all in one statement (a worker's deliveries come in bursts). The
/// record's `error` is cleared: it is the running attempt's now (the failed ones are in
/// [`attempts`]). A record still `active` belongs to an attempt whose delivery the
/// broker gave again (its worker was killed or lost its connection before it
/// acknowledged): that attempt is kept in [`attempts`] as `lost` ([`REDELIVERED`]). One
/// outcome per job, in order: `None` when the record says the job is already `done`
/// or `cancelled`: a duplicate delivery (re-enqueued by the reconciler, or
/// republished after a relay crash) that needs no work. A job given twice (two
/// deliveries of one message) is written once and both get its outcome.
pub async fn start(c: &impl GenericClient, starts: &[Start], worker: &str) -> Result<Vec<Option<Started>>, StoreError> {
    // One row per id: `ON CONFLICT DO UPDATE` refuses to touch a row twice.
    let mut seen = std::collections::HashSet::with_capacity(starts.len());
    let unique: Vec<&Start> = starts.iter().filter(|s| seen.insert(s.id)).collect();
    let Columns { ids, kinds, queues, payloads, files, nodes } = Columns::of(unique.iter().map(|s| s.job()));
    let attempts: Vec<i32> = unique.iter().map(|s| s.attempt).collect();
    let rows = c
        .query_cached(
            "WITH lost AS (
                 INSERT INTO job_attempts (job_id, replay, attempt, worker_id, started_at, outcome, error)
                 SELECT id, replays, attempt, worker_id, started_at, $10, $11 FROM jobs
                 WHERE id = ANY($1) AND state = $7)
             INSERT INTO jobs (id, kind, queue, payload, file_id, node_id, state, attempt, worker_id, started_at)
             SELECT x.id, x.kind, x.queue, x.payload, x.file_id, x.node_id, $7, x.attempt, $9, now()
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::uuid[], $6::int4[], $8::int4[])
                  AS x(id, kind, queue, payload, file_id, node_id, attempt)
             ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, attempt = EXCLUDED.attempt,
                 worker_id = EXCLUDED.worker_id, started_at = now(), finished_at = NULL, state_at = now(),
                 error = NULL
             WHERE jobs.state NOT IN ('done', 'cancelled')
             RETURNING id, queued_at",
            &[
                &ids,
                &kinds,
                &queues,
                &payloads,
                &files,
                &nodes,
                &JobState::Active,
                &attempts,
                &worker,
                &AttemptOutcome::Lost,
                &REDELIVERED,
            ],
        )
        .await?;
    let mut started = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        started.insert(row.try_get::<_, Uuid>("id")?, Started { queued_at: row.try_get("queued_at")? });
    }
    Ok(starts.iter().map(|s| started.get(&s.id).copied()).collect())
}

/// Marks the jobs `done` that are `active` on `worker`, in one statement (the jobs of
/// one rsync batch end together), and returns the ids it marked. The record's `error`
/// goes with the attempt it described: an earlier failure stays in [`attempts`].
///
/// A record no longer `active` on `worker` is left as it is: the broker gave the job
/// to a later delivery (this worker stalled past its connection's heartbeat, or was
/// cut off), which started the record again and keeps this run as a `lost` attempt.
/// An old run that ends late must not rewrite what the later one recorded.
pub async fn finish(c: &impl GenericClient, ids: &[Uuid], worker: &str) -> Result<Vec<Uuid>, StoreError> {
    let rows = c
        .query_cached(
            "UPDATE jobs SET state = $2, error = NULL, finished_at = now(), state_at = now()
             WHERE id = ANY($1) AND state = $3 AND worker_id = $4 RETURNING id",
            &[&ids, &JobState::Done, &JobState::Active, &worker],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// A failed attempt to be retried ([`retrying`]).
#[derive(Debug, Clone, Copy)]
pub struct Retry<'a> {
    pub id: Uuid,
    /// The next attempt's number, which is also the failures so far.
    pub attempt: i32,
    pub error: &'a str,
    /// The worker whose attempt failed.
    pub worker: &'a str,
    /// How long until the next attempt (its retry tier's delay).
    pub delay: std::time::Duration,
    /// Attempts the job's kind gets in all.
    pub max_attempts: i32,
}

/// Marks the job `retrying` after a failed attempt, with when the next one is due and
/// how many its kind gets ([`JobRecord::retry_at`], [`JobRecord::max_attempts`]). The
/// attempt that failed is kept in [`attempts`] as `failed`, with its worker, start and
/// `error`. A copy the job is making (its replica on the job's node still `pending` or
/// `copying`) takes the same `error` as its `last_error`, so the replica says why it is
/// not there yet; the copy's success clears it. False when the record is not `active`
/// on the worker (a later delivery has it, as in [`finish`]): nothing is written, and
/// the caller must not schedule another attempt.
pub async fn retrying(c: &impl GenericClient, r: &Retry<'_>) -> Result<bool, StoreError> {
    let updated = c
        .execute_cached(
            "WITH ended AS (
                 INSERT INTO job_attempts (job_id, replay, attempt, worker_id, started_at, outcome, error)
                 SELECT id, replays, attempt, worker_id, started_at, $5, $4 FROM jobs
                 WHERE id = $1 AND state = $6 AND worker_id = $7),
             noted AS (
                 UPDATE replicas r SET last_error = $4, updated_at = now() FROM jobs j
                 WHERE j.id = $1 AND j.state = $6 AND j.worker_id = $7
                   AND r.file_id = j.file_id AND r.node_id = j.node_id AND r.state = ANY($10))
             UPDATE jobs SET state = $2, attempt = $3, error = $4, finished_at = now(), state_at = now(),
                 retry_at = now() + make_interval(secs => $8), max_attempts = $9
             WHERE id = $1 AND state = $6 AND worker_id = $7",
            &[
                &r.id,
                &JobState::Retrying,
                &r.attempt,
                &r.error,
                &AttemptOutcome::Failed,
                &JobState::Active,
                &r.worker,
                &r.delay.as_secs_f64(),
                &r.max_attempts,
                &[ReplicaState::Pending, ReplicaState::Copying].as_slice(),
            ],
        )
        .await?;
    Ok(updated == 1)
}

/// What is known of a dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub job: NewJob<'a>,
    pub reason: &'a str,
    pub attempt: i32,
    pub worker: Option<&'a str>,
    /// Who writes it: the worker whose run gave up (then only a record `active` on
    /// `worker` is changed, as in [`finish`]), or the monitor taking in a dead letter
    /// from the broker's dead-letter queues.
    pub by_worker: bool,
    /// Attempts the job's kind gets, when the writer knows it (a worker does).
    pub max_attempts: Option<i32>,
}

/// Marks the job `dead` with its reason, creating the record if there was none (a
/// broker-made dead letter of a message without one), and says whether it did. A
/// record already `dead` keeps the reason its worker wrote, which is more precise than
/// the broker's; a `done` or `cancelled` one stays so (the work is done, or an operator
/// ended it). The attempt that was running (the record `active`) is kept in
/// [`attempts`] as `dead`. Written by a worker ([`DeadLetter::by_worker`]), only a
/// record `active` on that worker is changed: false otherwise, and the caller must not
/// dead-letter the job (a later delivery has it).
pub async fn dead(c: &impl GenericClient, d: &DeadLetter<'_>) -> Result<bool, StoreError> {
    let job = &d.job;
    let updated = c
        .execute_cached(
            "WITH ended AS (
             INSERT INTO job_attempts (job_id, replay, attempt, worker_id, started_at, outcome, error)
             SELECT id, replays, GREATEST(attempt, $8), COALESCE($9, worker_id), started_at, $11, $10
             FROM jobs WHERE id = $1 AND state = 'active' AND (NOT $12 OR worker_id = $9))
         INSERT INTO jobs (id, kind, queue, payload, file_id, node_id, state, attempt, worker_id, error,
                           finished_at, state_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), now())
         ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, attempt = GREATEST(jobs.attempt, EXCLUDED.attempt),
             worker_id = COALESCE(EXCLUDED.worker_id, jobs.worker_id), error = EXCLUDED.error,
             finished_at = now(), state_at = now(), max_attempts = COALESCE($13, jobs.max_attempts)
         WHERE jobs.state NOT IN ('dead', 'done', 'cancelled')
           AND (NOT $12 OR (jobs.state = 'active' AND jobs.worker_id = $9))",
            &[
                &job.id,
                &job.kind,
                &job.queue,
                job.payload,
                &job.file.0,
                &job.node.map(|n| n.0),
                &JobState::Dead,
                &d.attempt,
                &d.worker,
                &d.reason,
                &AttemptOutcome::Dead,
                &d.by_worker,
                &d.max_attempts,
            ],
        )
        .await?;
    Ok(updated == 1)
}

/// Filters of a job listing; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub file: Option<FileId>,
    pub state: Option<JobState>,
    /// The job's name (`replicate`, ...).
    pub kind: Option<String>,
    /// Only jobs queued before this long ago (seconds).
    pub older_than_secs: Option<f64>,
    /// Dead letters an operator discarded are left out unless asked for.
    pub include_discarded: bool,
    /// The upload's owner (`user`) and file name (`name`), the job id's start
    /// (`id_prefix`), and the days it was queued (`from`, `to`).
    pub search: Search,
    /// Rows to skip (paging).
    pub offset: i64,
}

/// The WHERE clause of [`list`] and [`count`], over parameters $1-$10.
const FILTER: &str = "WHERE ($1::uuid IS NULL OR file_id = $1) AND ($2::text IS NULL OR state = $2)
       AND ($3::text IS NULL OR kind = $3)
       AND ($4::float8 IS NULL OR queued_at < now() - make_interval(secs => $4))
       AND ($5 OR discarded_at IS NULL)
       AND ($6::text IS NULL OR file_id IN (SELECT p.id FROM uploads p JOIN users u ON u.id = p.user_id
                                            WHERE u.username = $6))
       AND ($7::text IS NULL OR file_id IN (SELECT p.id FROM uploads p WHERE p.filename ILIKE $7))
       AND ($8::text IS NULL OR id::text LIKE $8)
       AND ($9::date IS NULL OR queued_at >= $9::date) AND ($10::date IS NULL OR queued_at < $10::date + 1)";

/// Jobs matching `filter`: an upload's oldest first (its timeline), otherwise newest
/// first; at most `limit` after skipping `filter.offset`.
pub async fn list(c: &impl GenericClient, filter: &Filter, limit: i64) -> Result<Vec<JobRecord>, StoreError> {
    let order = if filter.file.is_some() { "queued_at, id" } else { "queued_at DESC, id" };
    let sql = format!("SELECT {COLUMNS} FROM jobs {FILTER} ORDER BY {order} LIMIT $11 OFFSET $12");
    let (name, id) = (filter.search.name_pattern(), filter.search.id_pattern());
    let file = filter.file.map(|f| f.0);
    let mut params = filter_params(filter, &file, &name, &id);
    params.extend([&limit as &(dyn ToSql + Sync), &filter.offset]);
    let rows = c.query_cached(&sql, &params).await?;
    rows.iter().map(JobRecord::from_row).collect()
}

/// How many jobs match `filter` (its offset aside).
pub async fn count(c: &impl GenericClient, filter: &Filter) -> Result<i64, StoreError> {
    let (name, id) = (filter.search.name_pattern(), filter.search.id_pattern());
    let file = filter.file.map(|f| f.0);
    let params = filter_params(filter, &file, &name, &id);
    Ok(c.query_one_cached(&format!("SELECT count(*) AS n FROM jobs {FILTER}"), &params).await?.try_get("n")?)
}

fn filter_params<'a>(
    f: &'a Filter,
    file: &'a Option<Uuid>,
    name: &'a Option<String>,
    id: &'a Option<String>,
) -> Vec<&'a (dyn ToSql + Sync)> {
    vec![
        file,
        &f.state,
        &f.kind,
        &f.older_than_secs,
        &f.include_discarded,
        &f.search.user,
        name,
        id,
        &f.search.from,
        &f.search.to,
    ]
}

/// One job by id.
pub async fn get(c: &impl GenericClient, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
    let row = c.query_opt_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"), &[&id]).await?;
    row.as_ref().map(JobRecord::from_row).transpose()
}

/// Who puts a job back in the outbox, for the record.
#[derive(Debug, Clone, Copy)]
enum Requeue {
    /// The monitor's reconciler: the job's message was lost.
    Reconciler,
    /// An operator replaying a dead letter (a fresh start: attempts from 0).
    Replay,
}

/// Puts the job back in the outbox under its own id (same `message_id`, same body) and
/// marks it `queued` again. Returns false when the job does not exist. Call inside a
/// transaction.
async fn requeue(c: &impl GenericClient, id: Uuid, exchange: &str, by: Requeue) -> Result<bool, StoreError> {
    let set = match by {
        Requeue::Replay => "replays = replays + 1, replayed_at = now(), discarded_at = NULL, attempt = 0",
        Requeue::Reconciler => {
            lost(c, id, LOST).await?;
            "requeues = requeues + 1"
        }
    };
    let updated = c
        .execute_cached(
            &format!(
                "UPDATE jobs SET state = $2, {set}, worker_id = NULL, started_at = NULL, finished_at = NULL,
                     state_at = now() WHERE id = $1"
            ),
            &[&id, &JobState::Queued],
        )
        .await?;
    if updated == 0 {
        return Ok(false);
    }
    c.execute_cached(
        "INSERT INTO outbox (exchange, routing_key, message_id, payload)
         SELECT $2, queue, id, payload FROM jobs WHERE id = $1",
        &[&id, &exchange],
    )
    .await?;
    Ok(true)
}

/// What [`replay`] did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Back in the outbox with its id.
    Replayed,
    /// There is no such dead job (unknown, finished, discarded, or replayed already).
    NotDead,
    /// A copy or check (`replicate`, `verify`) of a file deleted since the job died:
    /// a run would find nothing to do and end `done`, which would look like a success.
    /// Left dead; discard it.
    FileDeleted,
}

/// Job kinds whose work is a live file's: a replay of one whose file was deleted is
/// refused ([`Replay::FileDeleted`]).
const FILE_BOUND_KINDS: &[&str] = &["replicate", "verify"];

/// Replays a dead job: back in the outbox with its id, `queued`, `replays` + 1. A
/// discarded one (`cancelled`) is never run again, nor is one cancelled with its
/// upload, nor a copy or check of a file deleted since ([`Replay`]).
pub async fn replay(c: &impl GenericClient, id: Uuid, exchange: &str) -> Result<Replay, StoreError> {
    let row = c
        .query_opt_cached(
            "SELECT j.state, j.kind = ANY($2) AND (f.id IS NULL OR f.deleted_at IS NOT NULL) AS file_deleted
             FROM jobs j LEFT JOIN files f ON f.id = j.file_id WHERE j.id = $1 FOR UPDATE OF j",
            &[&id, &FILE_BOUND_KINDS],
        )
        .await?;
    let Some(row) = row else { return Ok(Replay::NotDead) };
    if row.try_get::<_, JobState>("state")? != JobState::Dead {
        return Ok(Replay::NotDead);
    }
    if row.try_get("file_deleted")? {
        return Ok(Replay::FileDeleted);
    }
    Ok(if requeue(c, id, exchange, Requeue::Replay).await? { Replay::Replayed } else { Replay::NotDead })
}

/// What [`revoke`] did with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// `cancelled`; a copy's replica `failed`, a check's replica free to be scrubbed
    /// again.
    Revoked,
    /// There is no such job.
    Unknown,
    /// A worker runs it now (`active`): it ends by itself, or dies with its time limit.
    Running,
    /// It no longer waits: `done`, `dead` (discard it instead) or `cancelled`.
    Ended(JobState),
    /// A job of this kind is not revoked: `assemble` ends an upload (cancel the upload),
    /// `delete` and `drop_replica` finish a removal already recorded.
    NotRevocable(String),
}

impl Revoke {
    /// What an operator is told: what the job is doing, and what to do instead (the
    /// admin page, the admin API's 409 `not_revocable` and `ferry jobs revoke` alike).
    pub fn refusal(&self) -> String {
        match self {
            Revoke::Revoked => "Revoked.".into(),
            Revoke::Unknown => "There is no such job.".into(),
            Revoke::Running => "That job is running on a worker now: it ends by itself, or with its time limit; \
                                only a job that waits (queued, or retrying between attempts) is revoked."
                .into(),
            Revoke::Ended(JobState::Dead) => "That job is a dead letter: discard it instead.".into(),
            Revoke::Ended(state) => format!("That job is {state}: only a job that waits is revoked."),
            Revoke::NotRevocable(kind) if kind == "assemble" => {
                "An assemble job ends its upload: cancel the upload instead (ferry jobs cancel --upload).".into()
            }
            Revoke::NotRevocable(kind) => format!(
                "A {kind} job finishes a removal already recorded and is not revoked; only copies and checks \
                 (replicate, verify) are."
            ),
        }
    }
}

/// The job kinds [`revoke`] accepts: work on one replica that the monitor redoes or
/// reschedules by itself once it is given up.
pub const REVOCABLE_KINDS: &[&str] = &["replicate", "verify"];

/// Revokes a job that waits (`queued`, or `retrying` between attempts), in one
/// statement: `cancelled` with `revoked by an operator: <reason>`, so the delivery it
/// waits for is acknowledged without running ([`start`] skips a `cancelled` record),
/// as a Celery worker skips a revoked task id when it arrives. A copy's (`replicate`)
/// replica in flight becomes `failed` with that reason, which the repair replaces
/// wherever the placement rule allows then (a broken node's checks keep it off); a
/// check's (`verify`) replica is free for its next scrub. Only [`REVOCABLE_KINDS`].
pub async fn revoke(c: &impl GenericClient, id: Uuid, reason: &str) -> Result<Revoke, StoreError> {
    let error = format!("revoked by an operator: {reason}");
    let row = c
        .query_opt_cached(
            "WITH j AS (
                 UPDATE jobs SET state = $3, error = $2, state_at = now(),
                     -- A retrying job's last attempt ended when it failed: its duration
                     -- must not grow by the wait for the retry it will not have.
                     finished_at = CASE WHEN state = $8 THEN finished_at ELSE now() END
                 WHERE id = $1 AND state = ANY($4) AND kind = ANY($5)
                 RETURNING kind, file_id, node_id),
             copy AS (
                 UPDATE replicas r SET state = $6, last_error = $2, updated_at = now()
                 FROM j WHERE j.kind = 'replicate' AND r.file_id = j.file_id AND r.node_id = j.node_id
                   AND r.state = ANY($7)
                 RETURNING r.node_id),
             scrub AS (
                 UPDATE replicas r SET scrub_queued_at = NULL
                 FROM j WHERE j.kind = 'verify' AND r.file_id = j.file_id AND r.node_id = j.node_id
                 RETURNING r.node_id)
             -- Data-modifying CTEs run whether or not the query reads them.
             SELECT kind FROM j",
            &[
                &id,
                &error,
                &JobState::Cancelled,
                &[JobState::Queued, JobState::Retrying].as_slice(),
                &REVOCABLE_KINDS,
                &ReplicaState::Failed,
                &[ReplicaState::Pending, ReplicaState::Copying].as_slice(),
                &JobState::Retrying,
            ],
        )
        .await?;
    if row.is_some() {
        return Ok(Revoke::Revoked);
    }
    let Some(job) = get(c, id).await? else { return Ok(Revoke::Unknown) };
    Ok(match job.state {
        JobState::Active => Revoke::Running,
        JobState::Queued | JobState::Retrying => Revoke::NotRevocable(job.kind),
        ended => Revoke::Ended(ended),
    })
}

/// Discards a dead letter: `cancelled`, with the time. False when there is no such
/// dead job.
pub async fn discard(c: &impl GenericClient, id: Uuid) -> Result<bool, StoreError> {
    let n = c
        .execute_cached(
            "UPDATE jobs SET state = $2, discarded_at = now(), state_at = now() WHERE id = $1 AND state = 'dead'",
            &[&id, &JobState::Cancelled],
        )
        .await?;
    Ok(n > 0)
}

/// Open jobs whose state has not changed for `after_secs`: their message was lost (a
/// purged queue, a dead letter the broker made, a worker that vanished past its time
/// limit). `active` ones always count (a job runs at most its time limit); `queued` and
/// `retrying` ones only on the queues in `drained` (their queue and its retry tiers hold
/// no ready message, so the message is nowhere), since a job merely waiting in a backlog
/// is not lost. Jobs still in the outbox (the broker is unreachable) were never
/// published and do not count. Up to `limit`, oldest first, locked (`SKIP LOCKED`) for
/// [`reconcile`] in the same transaction.
pub async fn overdue(
    c: &impl GenericClient,
    after_secs: f64,
    drained: &[&str],
    limit: i64,
) -> Result<Vec<JobRecord>, StoreError> {
    let rows = c
        .query_cached(
            &format!(
                "SELECT {COLUMNS} FROM jobs
                 WHERE state IN ('queued', 'active', 'retrying') AND state_at < now() - make_interval(secs => $1)
                   AND (state = 'active' OR queue = ANY($2))
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = jobs.id)
                 ORDER BY state_at LIMIT $3 FOR UPDATE SKIP LOCKED"
            ),
            &[&after_secs, &drained, &limit],
        )
        .await?;
    rows.iter().map(JobRecord::from_row).collect()
}

/// What a lost attempt's row says.
const LOST: &str = "no word from its worker past the job's time limit; re-enqueued by the reconciler";

/// Keeps the job's running attempt (the record `active`) in [`attempts`] as `lost`
/// with `error`; nothing when no attempt runs.
async fn lost(c: &impl GenericClient, id: Uuid, error: &str) -> Result<(), StoreError> {
    c.execute_cached(
        "INSERT INTO job_attempts (job_id, replay, attempt, worker_id, started_at, outcome, error)
         SELECT id, replays, attempt, worker_id, started_at, $2, $3 FROM jobs WHERE id = $1 AND state = 'active'",
        &[&id, &AttemptOutcome::Lost, &error],
    )
    .await?;
    Ok(())
}

/// Re-enqueues an overdue job through the outbox (same id), `requeues` + 1.
pub async fn reconcile(c: &impl GenericClient, id: Uuid, exchange: &str) -> Result<bool, StoreError> {
    requeue(c, id, exchange, Requeue::Reconciler).await
}

/// Marks an overdue job that was re-enqueued too often `dead` with `reason` (its
/// running attempt, if any, kept in [`attempts`] as `lost` with that reason).
pub async fn give_up(c: &impl GenericClient, id: Uuid, reason: &str) -> Result<(), StoreError> {
    lost(c, id, reason).await?;
    c.execute_cached(
        "UPDATE jobs SET state = $2, error = $3, finished_at = now(), state_at = now() WHERE id = $1",
        &[&id, &JobState::Dead, &reason],
    )
    .await?;
    Ok(())
}

/// Deletes up to `limit` `done` and `cancelled` records finished more than
/// `older_than_secs` ago, oldest first; returns how many. A walk of the `jobs_finished`
/// index (migration 17; before it, a scan of every record: 0.26 s at 2,000,000), then
/// of the primary key (`= ANY(ARRAY(...))`: with `IN (...)` the planner hashed every
/// record to delete a few).
pub async fn prune(c: &impl GenericClient, older_than_secs: f64, limit: i64) -> Result<u64, StoreError> {
    Ok(c.execute_cached(
        "DELETE FROM jobs WHERE id = ANY(ARRAY(
             SELECT id FROM jobs WHERE state IN ('done', 'cancelled')
                AND COALESCE(finished_at, state_at) < now() - make_interval(secs => $1)
             ORDER BY COALESCE(finished_at, state_at) LIMIT $2))",
        &[&older_than_secs, &limit],
    )
    .await?)
}

/// How many records are in `state`.
pub async fn count_in_state(c: &impl GenericClient, state: JobState) -> Result<i64, StoreError> {
    Ok(c.query_one_cached("SELECT count(*) FROM jobs WHERE state = $1", &[&state]).await?.try_get(0)?)
}

/// One attempt of a job that did not succeed (`job_attempts`, migration 18).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attempt {
    /// Which run of the job it belonged to: the job's `replays` then (0 before any
    /// replay).
    pub replay: i32,
    /// Its number within that run, from 0.
    pub attempt: i32,
    /// The worker that ran it (`<host>:<pid>` or the configured id); `None` when the
    /// record never said (a broker-made dead letter).
    pub worker: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    #[serde(serialize_with = "outcome_text")]
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
}

fn outcome_text<S: serde::Serializer>(outcome: &AttemptOutcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(outcome.as_str())
}

/// The attempts of job `id` that did not succeed, oldest first: what `ferry jobs show`,
/// the admin page and `GET /admin/api/jobs/<id>` list beside the record (whose worker
/// and times are the running or last attempt's).
pub async fn attempts(c: &impl GenericClient, id: Uuid) -> Result<Vec<Attempt>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT replay, attempt, worker_id, started_at, ended_at, outcome, error FROM job_attempts
             WHERE job_id = $1 ORDER BY id",
            &[&id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                replay: r.try_get("replay")?,
                attempt: r.try_get("attempt")?,
                worker: r.try_get("worker_id")?,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                outcome: r.try_get("outcome")?,
                error: r.try_get("error")?,
            })
        })
        .collect()
}

/// One job as shown alone: its record and its attempts that did not succeed.
#[derive(Debug, Clone)]
pub struct JobDetail {
    pub record: JobRecord,
    pub attempts: Vec<Attempt>,
}

impl JobDetail {
    /// [`JobRecord::json`] with `attempts`: an array of [`Attempt`]s (`replay`,
    /// `attempt`, `worker`, `started_at`, `ended_at`, `outcome`: `failed`, `dead` or
    /// `lost`, `error`), oldest first.
    pub fn json(&self) -> serde_json::Value {
        let mut value = self.record.json();
        value["attempts"] = serde_json::to_value(&self.attempts).unwrap_or_default();
        value
    }
}

/// Job `id` with its attempts ([`get`], [`attempts`]); `None` when there is no such job.
pub async fn detail(c: &impl GenericClient, id: Uuid) -> Result<Option<JobDetail>, StoreError> {
    let Some(record) = get(c, id).await? else { return Ok(None) };
    Ok(Some(JobDetail { record, attempts: attempts(c, id).await? }))
}
