//! Garbage collection: directories on the staging volume whose bytes nobody needs any
//! more (upload failed or expired, file deleted or fully replicated, or no row at all),
//! and files on storage nodes no replica row accounts for, are removed once they are
//! older than a grace period. Every worker runs it; staging removals are idempotent,
//! and the node sweep runs in one worker at a time.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_shared::config::Config;
use ferry_shared::types::FileId;
use ferry_store::{nodes, replicas, staging, Pool};
use tokio_util::sync::CancellationToken;

pub async fn run(ctx: std::sync::Arc<crate::jobs::Ctx>, shutdown: CancellationToken) {
    // The grace leaves young things alone: the API creates a new upload's directory
    // before its row commits, and rsync writes a file before its row says present.
    let grace = Duration::from_secs(ctx.config.worker.gc_grace_secs);
    let every = Duration::from_secs(ctx.config.worker.gc_interval_secs);
    // Staging copies of fully replicated files are released by this sweep once they
    // have lingered (`worker.staging_linger_secs`), so it looks that often; the node
    // sweep keeps `every`.
    let linger = Duration::from_secs(ctx.config.worker.staging_linger_secs);
    let tick = if linger.is_zero() { every } else { linger.clamp(Duration::from_secs(1), every) };
    // The scratch directories of pushes whose worker on this host was killed: at
    // start-up (a replacement usually starts on the same host) and at every round (a
    // worker killed beside this one, which the broker's redelivery makes this one's
    // work).
    remove_abandoned_scratch(&ctx.config.storage.staging_dir).await;
    let mut nodes_swept = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        remove_abandoned_scratch(&ctx.config.storage.staging_dir).await;
        match sweep(&ctx.config, &ctx.pool, grace).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(staging.removed = n, "removed unneeded staging directories"),
            Err(error) => tracing::warn!(%error, "staging gc failed; will retry"),
        }
        if nodes_swept.elapsed() < every {
            continue;
        }
        nodes_swept = tokio::time::Instant::now();
        match sweep_nodes(&ctx, grace).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(node_files.removed = n, "removed orphan files from nodes"),
            Err(error) => tracing::warn!(%error, "node orphan sweep failed; will retry"),
        }
    }
}

/// One pass; returns how many directories were removed. A fully replicated file's
/// copy goes once its replicas have been settled for `worker.staging_linger_secs`,
/// whatever the directory's age; everything else only once the directory is older
/// than `grace`.
pub async fn sweep(
    config: &Config,
    pool: &Pool,
    grace: Duration,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let staging = &config.storage.staging_dir;
    let mut candidates = Vec::new();
    let mut dir = tokio::fs::read_dir(staging).await?;
    while let Some(entry) = dir.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Anything else in the directory is not the sweep's, and is not even looked at.
        let Some(kind) = StagingEntry::of(&name) else { continue };
        // Every push makes and removes a scratch directory here, and other workers
        // sweep the same volume: an entry listed a moment ago may be gone already,
        // which is no reason to give up the pass.
        let Some(age) = age(&entry).await? else { continue };
        match kind {
            // A push's hard links left by a killed worker: at once when that worker
            // ran on this host, else after the grace (a live push is far younger).
            StagingEntry::Scratch => {
                if crate::ssh::scratch_is_abandoned(&name) || age >= grace {
                    remove(&entry.path()).await;
                }
            }
            StagingEntry::Copy(id) => candidates.push(staging::Candidate { id, old: age >= grace }),
        }
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    let want = i64::from(config.storage.replication_factor);
    let linger = Duration::from_secs(config.worker.staging_linger_secs);
    let unneeded = staging::unneeded(&pool.get().await?, &candidates, want, linger).await?;
    let mut removed = 0;
    for id in unneeded {
        if remove(&staging.join(id.to_string())).await {
            removed += 1;
        }
    }
    Ok(removed)
}

/// What the staging sweep may find in the staging directory.
#[derive(Debug, PartialEq, Eq)]
enum StagingEntry {
    /// A push's scratch directory of hard links (`crate::ssh::SCRATCH_PREFIX`).
    Scratch,
    /// A file's staging copy, named by its id.
    Copy(FileId),
}

impl StagingEntry {
    /// What the entry called `name` is, or `None` for anything that is not the sweep's.
    fn of(name: &str) -> Option<Self> {
        if name.starts_with(crate::ssh::SCRATCH_PREFIX) {
            Some(Self::Scratch)
        } else {
            name.parse().ok().map(Self::Copy)
        }
    }
}

/// How long ago `entry` was last modified (zero for a time in the future), or `None`
/// when it no longer exists.
///
/// # Errors
/// Any error of the `stat` but "not found".
async fn age(entry: &tokio::fs::DirEntry) -> std::io::Result<Option<Duration>> {
    match entry.metadata().await {
        Ok(meta) => Ok(Some(meta.modified().unwrap_or(SystemTime::now()).elapsed().unwrap_or_default())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the push scratch directories in `staging` left by dead workers of this host.
async fn remove_abandoned_scratch(staging: &Path) {
    let Ok(mut dir) = tokio::fs::read_dir(staging).await else { return };
    while let Ok(Some(entry)) = dir.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::ssh::scratch_is_abandoned(&name) && remove(&entry.path()).await {
            tracing::info!(dir = %name, "removed a killed worker's push scratch directory");
        }
    }
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
    if !staging::try_lock_node_sweep(&tx).await? {
        return Ok(0);
    }
    let nodes = nodes::reachable(&tx).await?;
    let minutes = u32::try_from(grace.as_secs() / 60).unwrap_or(u32::MAX).max(1);
    let mut removed = 0;
    for (node_id, target) in nodes {
        let addr = crate::jobs::node_addr(target);
        let Ok(root) = ferry_node_commands::NodeRoot::new(&addr.root) else { continue };
        let listing = ctx.ssh.run(&addr, &ferry_node_commands::Command::ListOlderThan { minutes }).await?;
        // Only names that are exactly `<2 hex>/<uuid>` under the root are candidates.
        let found: Vec<FileId> =
            listing.lines().filter_map(|line| root.parse_file(line, "").ok()).map(FileId).collect();
        if found.is_empty() {
            continue;
        }
        let orphans = replicas::unaccounted(&tx, node_id, &found).await?;
        for id in orphans {
            ctx.ssh.remove(&addr, id.0).await?;
            tracing::info!(file.id = %id, node.id = %node_id, "removed orphan file from node");
            removed += 1;
        }
    }
    tx.commit().await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staging entry removed between the listing and its `stat` (a push's scratch
    /// directory ending, another worker's sweep) is skipped, not an error that ends
    /// the pass: under load that happened on most passes, and no staging copy was
    /// released while it did.
    #[tokio::test]
    async fn an_entry_gone_since_it_was_listed_has_no_age() {
        let staging = tempfile::tempdir().expect("tempdir");
        for name in ["gone", "kept"] {
            std::fs::create_dir(staging.path().join(name)).expect("mkdir");
        }
        let mut listing = tokio::fs::read_dir(staging.path()).await.expect("read_dir");
        let mut entries = Vec::new();
        while let Some(entry) = listing.next_entry().await.expect("next_entry") {
            entries.push(entry);
        }
        assert_eq!(entries.len(), 2);
        std::fs::remove_dir(staging.path().join("gone")).expect("rmdir");
        for entry in &entries {
            let age = age(entry).await.expect("no error for a vanished entry");
            match entry.file_name().to_str() {
                Some("gone") => {
                    // What the pass met before: the stat fails with "not found".
                    let stat = entry.metadata().await.map(|_| ()).map_err(|e| e.kind());
                    assert_eq!(stat, Err(std::io::ErrorKind::NotFound));
                    assert_eq!(age, None);
                }
                _ => assert!(age.is_some_and(|a| a < Duration::from_secs(60)), "{age:?}"),
            }
        }
    }

    /// The sweep stats and may remove only what is its own: push scratch directories
    /// and staging copies named by a file id.
    #[test]
    fn the_sweep_looks_only_at_scratch_directories_and_staging_copies() {
        let id = FileId(uuid::Uuid::new_v4());
        assert_eq!(StagingEntry::of(&id.to_string()), Some(StagingEntry::Copy(id)));
        let scratch = format!("{}1234-5678", crate::ssh::SCRATCH_PREFIX);
        assert_eq!(StagingEntry::of(&scratch), Some(StagingEntry::Scratch));
        for other in ["lost+found", ".nfs0001", "notes.txt", &format!("{id}.part"), ""] {
            assert_eq!(StagingEntry::of(other), None, "{other:?}");
        }
    }
}
