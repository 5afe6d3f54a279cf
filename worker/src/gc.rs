//! Staging garbage collection: directories on the staging volume whose bytes nobody
//! needs any more (upload failed or expired, file deleted or fully replicated, or no
//! row at all) are removed once they are older than a grace period. Every worker runs
//! it; removals are idempotent, so replicas racing each other is harmless.

use std::path::Path;
use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use ferry_shared::config::Config;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Leaves young directories alone: the API creates a new upload's directory before
/// its row commits, and a replica may be about to be restored into one.
const GRACE: Duration = Duration::from_secs(3600);
const EVERY: Duration = Duration::from_secs(600);

pub async fn run(config: Config, pool: Pool, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match sweep(&config, &pool, GRACE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(staging.removed = n, "removed unneeded staging directories"),
            Err(error) => tracing::warn!(%error, "staging gc failed; will retry"),
        }
    }
}

/// One pass; returns how many directories were removed.
pub async fn sweep(
    config: &Config,
    pool: &Pool,
    grace: Duration,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let staging = &config.storage.staging_dir;
    let mut candidates = Vec::new();
    let mut dir = tokio::fs::read_dir(staging).await?;
    while let Some(entry) = dir.next_entry().await? {
        let Ok(id) = entry.file_name().to_string_lossy().parse::<Uuid>() else { continue };
        let modified = entry.metadata().await?.modified().unwrap_or(SystemTime::now());
        if modified.elapsed().unwrap_or_default() >= grace {
            candidates.push(id);
        }
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    let want = i64::from(config.storage.replication_factor);
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT c.id FROM unnest($1::uuid[]) AS c(id)
             LEFT JOIN uploads u ON u.id = c.id
             LEFT JOIN files f ON f.id = c.id
             WHERE u.id IS NULL
                OR u.status IN ('failed', 'expired')
                OR f.deleted_at IS NOT NULL
                OR (u.status = 'complete' AND f.id IS NOT NULL
                    AND (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.state = 'present') >= $2
                    AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = f.id
                                    AND r.state IN ('pending', 'copying')))",
            &[&candidates, &want],
        )
        .await?;
    let mut removed = 0;
    for row in rows {
        let id: Uuid = row.get(0);
        if remove(&staging.join(id.to_string())).await {
            removed += 1;
        }
    }
    Ok(removed)
}

async fn remove(dir: &Path) -> bool {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(), "could not remove staging directory");
            false
        }
    }
}
