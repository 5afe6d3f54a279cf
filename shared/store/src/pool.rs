//! PostgreSQL: the pool every process uses and the migrations run at start-up.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use ferry_shared::config::DatabaseConfig;

use crate::{Client, StoreError};

/// Arbitrary but fixed key for the migration advisory lock: two processes starting
/// together serialise here instead of racing on `CREATE TABLE`.
const MIGRATION_LOCK_KEY: i64 = 0x6665_7272_7901;

/// Migrations embedded in the binary, applied in order, each in its own transaction.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "running_digest", include_str!("../migrations/0002_running_digest.sql")),
    (3, "scrub", include_str!("../migrations/0003_scrub.sql")),
    (4, "node_down_since", include_str!("../migrations/0004_node_down_since.sql")),
    (5, "upload_writer_lease", include_str!("../migrations/0005_upload_writer_lease.sql")),
    (6, "scrub_queued", include_str!("../migrations/0006_scrub_queued.sql")),
    (7, "file_version_unique", include_str!("../migrations/0007_file_version_unique.sql")),
    (8, "jobs", include_str!("../migrations/0008_jobs.sql")),
    (9, "user_revocation", include_str!("../migrations/0009_user_revocation.sql")),
    (10, "paused_queues", include_str!("../migrations/0010_paused_queues.sql")),
    (11, "upload_metadata", include_str!("../migrations/0011_upload_metadata.sql")),
    (12, "node_history", include_str!("../migrations/0012_node_history.sql")),
    (13, "upload_concat", include_str!("../migrations/0013_upload_concat.sql")),
    (14, "user_usage", include_str!("../migrations/0014_user_usage.sql")),
    (15, "user_usage_at_commit", include_str!("../migrations/0015_user_usage_at_commit.sql")),
    (16, "users_fillfactor", include_str!("../migrations/0016_users_fillfactor.sql")),
    (17, "sweep_indexes", include_str!("../migrations/0017_sweep_indexes.sql")),
    (18, "job_attempts", include_str!("../migrations/0018_job_attempts.sql")),
    (19, "open_uploads_per_user", include_str!("../migrations/0019_open_uploads_per_user.sql")),
    (20, "node_ssh_probe", include_str!("../migrations/0020_node_ssh_probe.sql")),
    (21, "job_retry_at", include_str!("../migrations/0021_job_retry_at.sql")),
    (22, "node_write_check", include_str!("../migrations/0022_node_write_check.sql")),
    (23, "md5_offset", include_str!("../migrations/0023_md5_offset.sql")),
];

/// Parses the URL into a driver config (no connection is made yet). Every session
/// runs with PostgreSQL's JIT compilation off (`jit`, on by default since
/// PostgreSQL 12), after any `options` the URL gives: Ferry's statements are short,
/// and the monitor's sweeps, whose estimated cost crosses `jit_above_cost` once some
/// ten thousand files exist, spent about 570 ms compiling per call
/// (pg_stat_statements' `jit_*` columns; 5.5 % of PostgreSQL's CPU in a small-files
/// run, perf) to save nothing. PostgreSQL docs, "JIT Compilation", "When to JIT?".
pub fn pg_config(config: &DatabaseConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg =
        tokio_postgres::Config::from_str(config.url.expose()).map_err(|e| StoreError::Config(e.to_string()))?;
    pg.connect_timeout(Duration::from_secs(5));
    add_options(&mut pg, "-c jit=off");
    Ok(pg)
}

/// Appends `more` to the session options (`-c name=value ...`) the URL may give.
fn add_options(pg: &mut tokio_postgres::Config, more: &str) {
    let options = match pg.get_options() {
        Some(given) if !given.trim().is_empty() => format!("{given} {more}"),
        _ => more.to_owned(),
    };
    pg.options(options);
}

/// Where `config` points, for error messages: `host:port/dbname` (several hosts
/// joined by commas, a Unix socket by its directory), never the user or password.
pub fn address(config: &DatabaseConfig) -> String {
    let Ok(pg) = tokio_postgres::Config::from_str(config.url.expose()) else {
        return "an unparsable database.url".into();
    };
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() { "localhost:5432".to_owned() } else { hosts.join(",") };
    format!("{hosts}/{}", pg.get_dbname().or(pg.get_user()).unwrap_or_default())
}

/// Builds the connection pool. Connections are made lazily, so this succeeds while
/// the database is down; `wait_timeout` bounds how long a caller waits for one.
pub fn pool(config: &DatabaseConfig) -> Result<Pool, StoreError> {
    build(pg_config(config)?, config, config.pool_size)
}

/// A small pool (`size` connections) for bookkeeping writes that something else mends
/// if a database crash loses them: its sessions commit with `synchronous_commit = off`
/// (PostgreSQL docs, "Asynchronous Commit"), so a commit returns before its WAL is
/// flushed and does not wait for an fsync of its own. Such a commit can be lost only
/// with the last few hundred milliseconds of WAL (`wal_writer_delay` x 3) in a crash of
/// PostgreSQL itself, never reordered after a later synchronous commit of any session
/// (which flushes the WAL up to itself). The workers' job records use it: a lost
/// `active`/`done` is an open record the monitor's reconciler re-enqueues, and the
/// idempotent handler finds its work done.
pub fn bookkeeping_pool(config: &DatabaseConfig, size: usize) -> Result<Pool, StoreError> {
    let mut pg = pg_config(config)?;
    add_options(&mut pg, "-c synchronous_commit=off");
    build(pg, config, size.max(1))
}

fn build(pg: tokio_postgres::Config, config: &DatabaseConfig, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let timeout = Duration::from_millis(config.acquire_timeout_ms);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Config(e.to_string()))
}

/// Applies pending migrations under an advisory lock.
pub async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    let result = apply(&mut client).await;
    // Unlock even when a migration failed; the session would drop it on close anyway.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    for (version, name, sql) in MIGRATIONS {
        let done = client.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version]).await?.is_some();
        if done {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        tx.commit().await?;
        tracing::info!(migration.version = version, migration.name = name, "applied migration");
    }
    Ok(())
}

/// Readiness: one round trip through the pool.
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    pool.get().await?.execute("SELECT 1", &[]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> DatabaseConfig {
        DatabaseConfig { url: ferry_shared::config::Secret::new(url), ..DatabaseConfig::default() }
    }

    #[test]
    fn sessions_run_without_jit_after_the_options_the_url_gives() {
        let pg = pg_config(&config("postgres://u@h/db")).expect("parses");
        assert_eq!(pg.get_options(), Some("-c jit=off"));
        let pg = pg_config(&config("postgres://u@h/db?options=-c%20work_mem%3D8MB")).expect("parses");
        assert_eq!(pg.get_options(), Some("-c work_mem=8MB -c jit=off"));
    }
}
