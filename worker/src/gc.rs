//! Garbage collection: directories on the staging volume whose bytes nobody needs any
//! more (upload failed or expired, file deleted or fully replicated, or no row at all),
//! and files on storage nodes no replica row accounts for, are removed once they are
//! older than a grace period. Every worker runs it; staging removals are idempotent,
//! and the node sweep runs in one worker at a time.

use std::path::Path;
use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use ferry_shared::config::Config;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub async fn run(ctx: std::sync::Arc<crate::jobs::Ctx>, shutdown: CancellationToken) {
    // The grace leaves young things alone: the API creates a new upload's directory
    // before its row commits, and rsync writes a file before its row says present.
    let grace = Duration::from_secs(ctx.config.worker.gc_grace_secs);
    let every = Duration::from_secs(ctx.config.worker.gc_interval_secs);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match sweep(&ctx.config, &ctx.pool, grace).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(staging.removed = n, "removed unneeded staging directories"),
            Err(error) => tracing::warn!(%error, "staging gc failed; will retry"),
        }
        match sweep_nodes(&ctx, grace).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(node_files.removed = n, "removed orphan files from nodes"),
            Err(error) => tracing::warn!(%error, "node orphan sweep failed; will retry"),
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

/// Advisory lock key: one worker at a time sweeps the nodes.
const NODE_SWEEP_LOCK: i64 = 0x6665_7272_7903;

/// Files on storage nodes that no replica row accounts for (a crash between an rsync
/// and the commit of a file deleted meanwhile, a restored backup, ...) are removed once
/// older than the grace period. Moved-aside corrupt copies (`<id>.corrupt-<time>`) are
/// kept for inspection. One worker at a time, under an advisory lock.
pub async fn sweep_nodes(
    ctx: &crate::jobs::Ctx,
    grace: Duration,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let locked: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&NODE_SWEEP_LOCK]).await?.get(0);
    if !locked {
        return Ok(0);
    }
    let nodes = tx
        .query(
            "SELECT n.id, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path FROM nodes n
             JOIN node_status s ON s.node_id = n.id WHERE n.state <> 'disabled' AND s.up",
            &[],
        )
        .await?;
    let minutes = (grace.as_secs() / 60).max(1).to_string();
    let mut removed = 0;
    for node in &nodes {
        let node_id: i32 = node.get(0);
        let addr = crate::ssh::NodeAddr { host: node.get(1), port: node.get(2), user: node.get(3), root: node.get(4) };
        let root = addr.root.clone();
        let listing = ctx
            .ssh
            .exec(
                &addr,
                &["find", &root, "-mindepth", "2", "-maxdepth", "2", "-type", "f", "-mmin", &format!("+{minutes}")],
            )
            .await?;
        // Only names that are exactly `<2 hex>/<uuid>` under the root are candidates.
        let found: Vec<Uuid> = listing
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("{}/", root.trim_end_matches('/'))))
            .filter_map(|rel| {
                let (shard, name) = rel.split_once('/')?;
                let id: Uuid = name.parse().ok()?;
                (shard.len() == 2 && name.len() == 36 && name.starts_with(shard)).then_some(id)
            })
            .collect();
        if found.is_empty() {
            continue;
        }
        let orphans = tx
            .query(
                "SELECT c.id FROM unnest($1::uuid[]) AS c(id)
                 WHERE NOT EXISTS (SELECT 1 FROM replicas r WHERE r.file_id = c.id AND r.node_id = $2)",
                &[&found, &node_id],
            )
            .await?;
        for row in orphans {
            let id = ferry_shared::types::FileId(row.get(0));
            ctx.ssh.remove(&addr, &id.node_relpath()).await?;
            tracing::info!(file.id = %id, node.id = node_id, "removed orphan file from node");
            removed += 1;
        }
    }
    tx.commit().await?;
    Ok(removed)
}
