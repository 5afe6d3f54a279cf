//! Replicate: copy a file from staging to one node with rsync over SSH (in a batch
//! with other files bound for the same node, `crate::batch`), check that the copy is
//! the upload's bytes (the source's sha256 against the one recorded at completion, and
//! rsync's whole-file transfer checksum against the source's: `crate::ssh::Ssh::push`),
//! and only then record the replica as present. When every wanted
//! replica is present the staging copy is released (by the staging sweep, after
//! `worker.staging_linger_secs`).

use std::collections::HashSet;
use std::sync::Arc;

use ferry_shared::staging::{data_path, upload_dir};
use ferry_shared::types::{FileId, NodeId};
use ferry_store::{notify, replicas, NodeState, Pool, ReplicaState};

use super::{Ctx, JobError};
use crate::batch::Priority;
use crate::gather::Gather;
use crate::ssh::{PushFile, Pushed};

/// `repair`: the monitor's top-up, which yields to fresh uploads in the node's batches.
pub async fn run(ctx: &Arc<Ctx>, file: FileId, node: NodeId, repair: bool) -> Result<(), JobError> {
    // The common case in one statement (grouped with the other jobs beginning now):
    // the replica becomes `copying` and comes back with its file's digests and its
    // node. When it cannot begin, the row says why.
    let job = match ctx.begin.write((file, node)).await? {
        Some(job) => job,
        None => {
            let client = ctx.pool.get().await?;
            let Some(job) = replicas::copy_job(&client, file, node).await? else {
                // Replica row gone (file deleted and cleaned): nothing to do.
                return Ok(());
            };
            if job.state == ReplicaState::Deleting || job.file_deleted {
                return Ok(());
            }
            if job.state == ReplicaState::Present {
                // Done before, e.g. by a delivery whose worker died after its commit
                // and before it could release staging: finish that part.
                drop(client);
                return release_staging_when_done(ctx, file).await;
            }
            if job.node_state == NodeState::Disabled {
                return Err(JobError::Permanent(format!("node {node} is disabled")));
            }
            // Changed between the two statements (another delivery, an operator):
            // look again later.
            return Err(JobError::Retry(format!("the copy to node {node} could not begin (replica {:?})", job.state)));
        }
    };
    let (sha256, md5) = (job.sha256, job.md5);
    let addr = super::node_addr(job.node);

    let source = data_path(&upload_dir(&ctx.config.storage.staging_dir, file));
    if !tokio::fs::try_exists(&source).await? {
        restore_staging(ctx, file, &sha256, &source).await?;
    }
    let size = tokio::fs::metadata(&source).await?.len();
    let started = std::time::Instant::now();
    let push = PushFile { id: file.0, source: source.clone(), md5, sha256 };
    let priority = if repair { Priority::Repair } else { Priority::Fresh };
    match ctx.batcher.push(&addr, push, size, priority).await {
        Pushed::Verified => {}
        Pushed::Differs { reason } => {
            // Never leave a bad copy where a redirect could find it. A mismatch here
            // means the staging copy no longer holds the verified bytes (or rsync sent
            // others); a retry re-sends, and repair restores staging from a good node.
            let _ = ctx.ssh.remove(&addr, file.0).await;
            return Err(JobError::Retry(format!("the copy for node {node} is not the upload's bytes: {reason}")));
        }
        Pushed::NotCopied(error) => return Err(error.into()),
    }

    // Grouped with the other files of its batch: one statement records them all.
    let updated = ctx.present.write((file, node)).await?;
    if !updated {
        // Not recorded. Take the copy back only when the file was deleted (or its
        // replica row dropped) while we copied. When another delivery of this job (at
        // least once: a redelivery after a broker restart can run beside the first)
        // already recorded the copy as present, the file at that path IS the recorded
        // copy, the same verified bytes: removing it would leave a `present` row with
        // nothing on the node (the fault suite caught exactly that).
        let now = replicas::copy_job(&ctx.pool.get().await?, file, node).await?;
        let gone = now.as_ref().is_none_or(|j| j.file_deleted || j.state == ReplicaState::Deleting);
        if gone {
            ctx.ssh.remove(&addr, file.0).await?;
        } else {
            tracing::info!(file.id = %file, node.id = %node, state = ?now.map(|j| j.state), "copy already recorded by another delivery");
            release_staging_when_done(ctx, file).await?;
        }
        return Ok(());
    }
    let node_label = node.to_string();
    ferry_shared::metrics::observe(&ferry_shared::metrics::RSYNC_DURATION, &[&node_label], started.elapsed());
    ferry_shared::metrics::RSYNC_BYTES.with_label_values(&[&node_label]).inc_by(size);
    tracing::info!(
        file.id = %file,
        node.id = %node,
        size_bytes = size,
        duration_ms = started.elapsed().as_millis() as u64,
        "replica verified"
    );
    release_staging_when_done(ctx, file).await
}

/// Begins copy attempts in groups ([`crate::gather`]): the replicate jobs a worker
/// takes arrive in bursts (its prefetch refills as a batch's jobs are acked), and each
/// begun copy was a commit of its own, with a WAL flush.
pub fn begin_copies(pool: Pool, max: usize) -> Gather<(FileId, NodeId), Option<replicas::CopyJob>> {
    Gather::spawn(max, move |wanted: Vec<(FileId, NodeId)>| {
        let pool = pool.clone();
        async move { replicas::begin_copy(&pool.get().await?, &wanted).await }
    })
}

/// Records verified copies `present` in groups ([`crate::gather`]): one statement
/// for the replicas of a batch instead of one commit (and WAL flush) each, then one
/// statement of upload events for those that changed. The events wake completing
/// POSTs waiting for their write quorum; they are sent after the commit and outside
/// it: a transaction that notifies holds PostgreSQL's one notification lock from its
/// commit until its WAL is flushed, so every replica's commit would wait for the one
/// before it (the small-files bench: sessions waiting on `Lock:object`). Alone, the
/// notification writes no WAL; a waiter that misses one looks again on its own, so a
/// failed notification is logged, not the write's failure.
pub fn record_present(pool: Pool, max: usize) -> Gather<(FileId, NodeId), bool> {
    Gather::spawn(max, move |wanted: Vec<(FileId, NodeId)>| {
        let pool = pool.clone();
        async move {
            let client = pool.get().await?;
            let changed: HashSet<(FileId, NodeId)> =
                replicas::mark_present(&client, &wanted).await?.into_iter().collect();
            let files: Vec<FileId> = changed.iter().map(|(file, _)| *file).collect();
            if let Err(error) = notify::upload_events(&client, &files).await {
                tracing::warn!(%error, "could not send upload events; waiters look again on their own");
            }
            Ok(wanted.iter().map(|replica| changed.contains(replica)).collect())
        }
    })
}

/// Releases the staging copy once every wanted replica is present, when
/// `worker.staging_linger_secs` is 0; otherwise the staging sweep (`crate::gc`)
/// releases it once the replicas have been settled that long (the API serves the
/// staging copy while no node copy is healthy in its view, see
/// [`ferry_shared::config::WorkerConfig::staging_linger_secs`]), which no worker's
/// death can skip. Counted after the replica's commit, so of two replicas finishing
/// together the later one sees both (inside its transaction each would see only its
/// own).
async fn release_staging_when_done(ctx: &Arc<Ctx>, file: FileId) -> Result<(), JobError> {
    if ctx.config.worker.staging_linger_secs > 0 {
        return Ok(());
    }
    let client = ctx.pool.get().await?;
    let replicas::Progress { in_flight: missing, present } = replicas::progress(&client, file).await?;
    if missing == 0 && present >= i64::from(ctx.config.storage.replication_factor) {
        let dir = upload_dir(&ctx.config.storage.staging_dir, file);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "could not release staging copy");
            }
        }
    }
    Ok(())
}

/// Marks the replica failed with its last error, for the repair to replace.
pub async fn fail(ctx: &Arc<Ctx>, file: FileId, node: NodeId, reason: &str) -> Result<(), JobError> {
    replicas::fail_copy(&ctx.pool.get().await?, file, node, reason).await?;
    tracing::warn!(file.id = %file, node.id = %node, reason, "replica failed");
    Ok(())
}

/// Brings the file back to staging from a healthy node holding a verified copy.
async fn restore_staging(ctx: &Arc<Ctx>, file: FileId, sha256: &str, dest: &std::path::Path) -> Result<(), JobError> {
    let expected: ferry_shared::types::Sha256 =
        sha256.parse().map_err(|_| JobError::Permanent(format!("stored sha256 {sha256:?} is malformed")))?;
    let sources = replicas::healthy_sources(&ctx.pool.get().await?, file).await?;
    let mut last = JobError::Retry(format!("no healthy node holds a verified copy of {file} to repair from"));
    for url in &sources {
        match super::fetch::from_node(
            &ctx.http,
            ctx.config.signing.secret.expose().as_bytes(),
            url,
            file,
            expected,
            dest,
        )
        .await
        {
            Ok(()) => {
                tracing::info!(file.id = %file, source = %url, "restored staging copy from a replica");
                return Ok(());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
