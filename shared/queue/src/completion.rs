//! Recording a verified upload as a file: the file row (with its version in the
//! parent's chain), its replica targets with their replicate jobs, and the upload's
//! completion, all in the caller's transaction.
//!
//! It sends no upload event: a worker that records a file announces it itself (the
//! completing request waits in an API process), while the API recording a file in the
//! completing request is its own waiter. A `NOTIFY` would cost every completion a turn
//! at PostgreSQL's one notification-queue lock, held through the commit's WAL flush,
//! which serialises every notifying commit of the database.
//!
//! Two callers share it: the API, when a completing request finds every byte received,
//! stored and hashed on the way in (the md5 it compares is final, nothing is left to
//! check), and the worker's `assemble` job for the uploads the API hands over (a staging
//! file whose length is not the recorded one, or no stored digest).

use ferry_shared::config::Config;
use ferry_shared::types::{ByteSize, FileId};
use ferry_store::{files, nodes, replicas, uploads, StoreError, Transaction, UploadState};

use crate::{outbox, Job};

/// A verified upload: `size` bytes whose `md5` matched the client's and whose `sha256`
/// (hex) the nodes will check their copies against.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    pub id: FileId,
    pub size: ByteSize,
    pub md5: &'a str,
    pub sha256: &'a str,
}

/// What [`record_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The file exists and its replicate jobs sit in the outbox (wake the relay after
    /// the commit); they may be fewer than `storage.replication_factor` when too few
    /// nodes are eligible (logged; the monitor's repair adds the rest later).
    File,
    /// The upload was not `assembling` (recorded by an earlier delivery, cancelled or
    /// expired meanwhile): nothing was written.
    NotAssembling,
}

/// Records the `assembling` upload `file.id` as a file in `tx` (see the module docs):
/// locks the upload row, then the parent file's row (versions of one chain completing
/// at once take distinct, increasing numbers; the unique index `files_chain_version`
/// enforces it; a parent deleted meanwhile leaves the file standing alone), picks up to
/// `storage.replication_factor` eligible nodes ([`nodes::eligible`]: active, reported up
/// within `api.heartbeat_stale_secs`, room for the file plus `storage.node_reserve_bytes`),
/// inserts a `pending` replica and a replicate job for each, and marks the upload
/// `complete`.
pub async fn record_file(tx: &Transaction<'_>, file: Verified<'_>, config: &Config) -> Result<Recorded, StoreError> {
    let Some(origin) = uploads::lock_origin(tx, file.id).await?.filter(|o| o.state == UploadState::Assembling) else {
        return Ok(Recorded::NotAssembling);
    };
    insert_file(tx, file, &origin, config).await?;
    uploads::mark_complete(tx, file.id).await?;
    Ok(Recorded::File)
}

/// Records the file of an upload inserted `complete` in `tx` just before
/// (`uploads::NewUpload::verified`: the whole file came in one request and its md5 was
/// checked on the way in), as [`record_file`] does for an `assembling` one, without
/// locking the row the transaction just inserted or moving its state again.
pub async fn record_new_file(
    tx: &Transaction<'_>,
    file: Verified<'_>,
    origin: &uploads::Origin,
    config: &Config,
) -> Result<(), StoreError> {
    insert_file(tx, file, origin, config).await
}

/// The file row, its replica targets and their replicate jobs (see [`record_file`]).
async fn insert_file(
    tx: &Transaction<'_>,
    file: Verified<'_>,
    origin: &uploads::Origin,
    config: &Config,
) -> Result<(), StoreError> {
    let parent = match origin.parent {
        Some(p) => files::lock_live(tx, p).await?,
        None => None,
    };
    let version = match parent {
        Some(p) => files::next_version(tx, p).await?,
        None => 1,
    };
    let row = files::NewFile {
        id: file.id,
        user: origin.user,
        filename: &origin.filename,
        size: file.size,
        md5: file.md5,
        sha256: file.sha256,
        parent,
        version,
    };
    files::insert(tx, &row).await?;
    let count = i64::from(config.storage.replication_factor);
    let targets = replicas::place(tx, file.id, nodes::Placement::configured(config, count, file.size, &[])).await?;
    if !targets.is_empty() {
        let jobs: Vec<Job> =
            targets.iter().map(|&node| Job::Replicate { file: file.id, node, repair: false }).collect();
        outbox::enqueue_all(tx, &jobs).await?;
    }
    if (targets.len() as u32) < config.storage.replication_factor {
        tracing::warn!(
            file.id = %file.id,
            replicas.targets = targets.len(),
            replicas.wanted = config.storage.replication_factor,
            "not enough eligible nodes; the monitor's repair will add replicas when nodes are available"
        );
    }
    Ok(())
}
