//! The clean-end check every integration test gets: when a test passes, the cluster it
//! leaves must have finished all its work, as crates.io's test harness asserts that no
//! background job is left unprocessed when a test app is dropped.
//!
//! Clean means, once the cluster settled (bounded wait, [`SETTLE`]):
//! - the outbox is empty (every job reached RabbitMQ);
//! - every `ferry.*` queue of the cluster's vhost is empty, ready and unacknowledged
//!   messages alike: work queues, retry tiers and dead-letter queues, except for the
//!   scrubs still outstanding (`replicas.scrub_queued_at`), which never end;
//! - no replica is `failed` or still moving (`pending`, `copying`, `deleting`);
//! - no upload is still `assembling`;
//! - every job record is finished: none `queued`, `active` or `retrying` (bar scrubs,
//!   and the replicate jobs of declared stuck repairs), none `dead` unless dead letters
//!   are declared;
//! - staging holds nothing but the directories of uploads still `uploading`;
//! - every user's counted use (`users.used_bytes`, which the quota check reads) equals
//!   a recount of their live files and open uploads.
//!
//! [`crate::Cluster`] runs it when dropped by a test that did not panic; a test that
//! leaves failures on purpose (fault injection) says which with
//! [`crate::Cluster::expect_leftovers`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

/// How long the check waits for in-flight work (relays, retries, deletes) to settle.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Leftovers a test declares legitimate; everything else must be clean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Replicas in state `failed` (a fault made a copy fail for good).
    pub failed_replicas: bool,
    /// Messages in `ferry.*.dead` and job records `dead` (jobs given up or malformed on
    /// purpose).
    pub dead_letters: bool,
    /// Replicas still `pending`/`copying` and their replicate jobs (queued or in a
    /// retry tier): repairs that cannot finish in the test's world, e.g. of files whose
    /// only copy sits on a node the test disabled.
    pub stuck_repairs: bool,
}

/// Where the check looks: one cluster's database, vhost and staging directory.
pub(crate) struct Target {
    pub db_url: String,
    pub mgmt_url: String,
    pub vhost: String,
    pub user: String,
    pub password: String,
    pub staging: std::path::PathBuf,
}

impl Target {
    /// Waits up to [`SETTLE`] for the cluster to be clean; the error lists what is not.
    pub(crate) async fn check(&self, allowed: Leftovers) -> Result<()> {
        let (db, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
        let deadline = Instant::now() + SETTLE;
        loop {
            let dirt = self.dirt(&db, &http, allowed).await?;
            if dirt.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!("the cluster did not end clean after {SETTLE:?}:\n  {}", dirt.join("\n  "));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Everything not clean right now, one line each.
    async fn dirt(
        &self,
        db: &tokio_postgres::Client,
        http: &reqwest::Client,
        allowed: Leftovers,
    ) -> Result<Vec<String>> {
        let mut dirt = Vec::new();
        let outbox: i64 = db.query_one("SELECT count(*) FROM outbox", &[]).await?.get(0);
        if outbox > 0 {
            dirt.push(format!("{outbox} job(s) in the outbox"));
        }
        let replicas = db
            .query(
                "SELECT state, count(*), min(last_error) FROM replicas
                 WHERE (state IN ('pending', 'copying') AND NOT $2) OR state = 'deleting'
                    OR (state = 'failed' AND NOT $1)
                 GROUP BY state ORDER BY state",
                &[&allowed.failed_replicas, &allowed.stuck_repairs],
            )
            .await?;
        for row in replicas {
            let (state, n, error): (String, i64, Option<String>) = (row.get(0), row.get(1), row.get(2));
            dirt.push(format!("{n} replica(s) {state}{}", error.map(|e| format!(" (e.g. {e})")).unwrap_or_default()));
        }
        let jobs = db
            .query(
                "SELECT state, kind, count(*), min(error) FROM jobs
                 WHERE (state IN ('queued', 'active', 'retrying') AND kind <> 'verify'
                        AND NOT (kind = 'replicate' AND $1))
                    OR (state = 'dead' AND NOT $2)
                 GROUP BY state, kind ORDER BY state, kind",
                &[&allowed.stuck_repairs, &allowed.dead_letters],
            )
            .await?;
        for row in jobs {
            let (state, kind, n, error): (String, String, i64, Option<String>) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            dirt.push(format!(
                "{n} {kind} job(s) {state}{}",
                error.map(|e| format!(" (e.g. {e})")).unwrap_or_default()
            ));
        }
        // Every user's counted use (`users.used_bytes`, kept by triggers) equals the sum
        // it stands for: live files, and open uploads at their declared or received size.
        let drift = db
            .query(
                "SELECT u.username, u.used_bytes,
                        ((SELECT COALESCE(SUM(size), 0) FROM files WHERE user_id = u.id AND deleted_at IS NULL)
                      + (SELECT COALESCE(SUM(COALESCE(total_size, \"offset\")), 0) FROM uploads
                         WHERE user_id = u.id AND status IN ('uploading', 'assembling')))::BIGINT AS recount
                 FROM users u ORDER BY u.id",
                &[],
            )
            .await?;
        for row in drift {
            let (user, counted, recount): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if counted != recount {
                dirt.push(format!("user {user}: {counted} bytes counted in use, {recount} by a recount"));
            }
        }
        let assembling: i64 =
            db.query_one("SELECT count(*) FROM uploads WHERE status = 'assembling'", &[]).await?.get(0);
        if assembling > 0 {
            dirt.push(format!("{assembling} upload(s) still assembling"));
        }
        let uploading: Vec<String> = db
            .query("SELECT id::text FROM uploads WHERE status = 'uploading'", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut stray: Vec<String> = std::fs::read_dir(&self.staging)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !uploading.contains(name))
            .collect();
        stray.sort();
        if !stray.is_empty() {
            dirt.push(format!("staging holds {stray:?}"));
        }
        let url = format!("{}/api/queues/{}", self.mgmt_url.trim_end_matches('/'), self.vhost);
        let queues: Value = http
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("listing queues at {url}"))?
            .json()
            .await?;
        // Scrubs never end (a replica is due again every scrub interval): verify jobs
        // queued or running, each marked by `scrub_queued_at`, may sit in ferry.scrub
        // and the (shared) retry tiers; anything beyond them there is unfinished work.
        let scrubs: i64 =
            db.query_one("SELECT count(*) FROM replicas WHERE scrub_queued_at IS NOT NULL", &[]).await?.get(0);
        let mut scrub_side = 0;
        for queue in queues.as_array().into_iter().flatten() {
            let name = queue["name"].as_str().unwrap_or_default();
            let messages = queue["messages"].as_u64().unwrap_or(0);
            let dead = name.ends_with(".dead");
            if name == "ferry.scrub" || name.starts_with("ferry.retry.") {
                scrub_side += messages;
            } else if name.starts_with("ferry.")
                && messages > 0
                && !(dead && allowed.dead_letters)
                && !(name == "ferry.replicate" && allowed.stuck_repairs)
            {
                dirt.push(format!("{messages} message(s) in {name}"));
            }
        }
        if scrub_side > u64::try_from(scrubs).unwrap_or(0) && !allowed.stuck_repairs {
            dirt.push(format!("{scrub_side} message(s) in ferry.scrub and the retry tiers, {scrubs} of them scrubs"));
        }
        Ok(dirt)
    }
}

/// Runs [`Target::check`] to completion from synchronous code (a `Drop`), on a thread
/// with its own runtime, so it works inside or outside the test's runtime.
pub(crate) fn check_blocking(target: Target, allowed: Leftovers) -> Result<()> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(target.check(allowed))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the clean-end check panicked"))?
}
