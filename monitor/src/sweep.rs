//! Periodic bookkeeping done by the active monitor: topping up under-replicated files,
//! retiring surplus replicas and scheduling scrubs (expiry is `ferry_queue::expiry`).

use ferry_queue::outbox;
use ferry_queue::Job;
use ferry_shared::config::Config;
use ferry_store::{nodes, notify, replicas, Pool, StoreError};
use uuid::Uuid;

/// Under-replicated files given new targets per round at most.
const TOP_UP_LIMIT: i64 = 200;
/// The files of this many most recently failed copies are re-checked every round.
const RECENT_FAILURES: i64 = 100;

/// Where each of the replica sweeps goes on in the next round: the last file id its
/// previous round examined ([`Uuid::nil`] at the start of a pass). Each round examines
/// the next `monitor.sweep_files` files in id order ([`replicas::FileRange`]), so a
/// round costs the same however many files exist and a pass over N files takes N /
/// `monitor.sweep_files` rounds. Kept in the active monitor's memory: a new leader
/// starts a pass from the beginning.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cursors {
    top_up: Uuid,
    surplus: Uuid,
    /// Under-replicated files the top-up's slices found so far in this pass.
    short_in_pass: usize,
}

/// Files with fewer live replicas (pending, copying or present, on active nodes) than
/// the replication factor get new targets among eligible nodes, and replicate jobs.
/// Replicas on draining or disabled nodes, or on nodes down for longer than
/// `monitor.node_grace_secs`, do not count, so draining a node or losing one copies its
/// files elsewhere.
///
/// A round examines the files of the copies that failed last (every round) and the next
/// slice of the sweep (`cursors`), and tops up at most 200 files; a slice with more
/// than that is taken up again after the last file topped up.
pub async fn top_up_replicas(pool: &Pool, config: &Config, cursors: &mut Cursors) -> Result<usize, StoreError> {
    let want = i64::from(config.storage.replication_factor);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let grace_secs = config.monitor.node_grace_secs as f64;
    let range = replicas::file_range(&tx, cursors.top_up, i64::from(config.monitor.sweep_files)).await?;
    let mut files = replicas::under_replicated_after_failure(&tx, want, grace_secs, RECENT_FAILURES).await?;
    let swept = replicas::under_replicated(&tx, want, grace_secs, range, TOP_UP_LIMIT).await?;
    let short = swept.len();
    let next = match swept.last() {
        Some(last) if swept.len() as i64 == TOP_UP_LIMIT => last.file.0,
        _ if range.reaches_end() => Uuid::nil(),
        _ => range.through,
    };
    for file in swept {
        if !files.iter().any(|f| f.file == file.file) {
            files.push(file);
        }
    }
    let mut added = 0;
    for file in &files {
        let live = replicas::live_count(&tx, file.file, grace_secs).await?;
        let placement = nodes::Placement::configured(config, want - live, file.size, &file.existing);
        for node in nodes::eligible(&tx, placement).await? {
            // A node whose earlier copy failed may be chosen again: reset that row.
            replicas::reset_pending(&tx, file.file, node).await?;
            outbox::enqueue(&tx, &Job::Replicate { file: file.file, node, repair: true }).await?;
            added += 1;
        }
    }
    tx.commit().await?;
    cursors.top_up = next;
    cursors.short_in_pass += short;
    if next.is_nil() {
        ferry_shared::metrics::UNDER_REPLICATED.set(i64::try_from(cursors.short_in_pass).unwrap_or(i64::MAX));
        cursors.short_in_pass = 0;
    }
    if added > 0 {
        tracing::info!(replicas.added = added, "topped up under-replicated files");
    }
    Ok(added)
}

/// Replicas on draining nodes whose file already has R present replicas on active
/// nodes, and copies beyond R on healthy nodes, are marked `deleting` and handed to the
/// delete workers; once a draining node holds nothing it can be removed with nothing
/// lost. Both are looked for in the next slice of the sweep (`cursors`), so a round's
/// cost and the jobs it enqueues are bounded by the slice: a draining node's copy is
/// retired in the first pass of this sweep that finds its file's new copies present.
/// The same slice's `failed` replica rows of files with R present copies again are
/// deleted ([`replicas::forget_failed`]): bytes a failure left on a node become the
/// orphan sweep's to reclaim.
pub async fn retire_drained(pool: &Pool, config: &Config, cursors: &mut Cursors) -> Result<usize, StoreError> {
    let want = i64::from(config.storage.replication_factor);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let range = replicas::file_range(&tx, cursors.surplus, i64::from(config.monitor.sweep_files)).await?;
    let mut rows = replicas::retire_draining(&tx, want, range).await?;
    // Copies beyond R on healthy active nodes (a node came back after its files were
    // repaired elsewhere): keep the R on the nodes with most room, retire the rest.
    rows.extend(replicas::retire_surplus(&tx, want, range).await?);
    for &(file, node) in &rows {
        outbox::enqueue(&tx, &Job::DropReplica { file, node }).await?;
        // The copy is no longer `present`: every API process drops its cached
        // locations of the file at commit, before a worker removes the copy.
        notify::upload_event(&tx, file).await?;
    }
    let forgotten = replicas::forget_failed(&tx, want, range).await?;
    tx.commit().await?;
    cursors.surplus = if range.reaches_end() { Uuid::nil() } else { range.through };
    if !rows.is_empty() {
        tracing::info!(replicas.retired = rows.len(), "retiring replicas from draining nodes");
    }
    if forgotten > 0 {
        tracing::info!(replicas.forgotten = forgotten, "failed copies of files with R present copies forgotten");
    }
    Ok(rows.len())
}

/// A queued scrub that has not finished after this long (its job was lost, e.g.
/// dead-lettered after a crash loop) no longer blocks the replica's next scrub.
pub const SCRUB_LEASE_SECS: u64 = 3600;

/// Schedules a sha256 re-check of present replicas not verified within the scrub
/// interval (on nodes that are up), oldest first. A replica whose last scrub is still
/// queued is skipped, and at most `monitor.scrub_max_queued` scrubs are outstanding at
/// once: scheduling more than the workers verify would grow the replicate queue
/// without bound, and repairs (same queue) would wait behind it.
pub async fn schedule_scrub(pool: &Pool, config: &Config) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = replicas::claim_scrub(
        &tx,
        config.monitor.scrub_interval_secs as f64,
        i64::from(config.monitor.scrub_max_queued),
        SCRUB_LEASE_SECS as f64,
    )
    .await?;
    for &(file, node) in &rows {
        outbox::enqueue(&tx, &Job::Verify { file, node }).await?;
    }
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(replicas.scrubbing = rows.len(), "scheduled replica scrub");
    }
    Ok(rows.len())
}
