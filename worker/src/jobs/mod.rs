//! Job handlers, one file each. Every handler is idempotent: it re-reads the state
//! from PostgreSQL, does only what is still to do, and commits before the consumer
//! acks, so a redelivered job finds its work done and acks.

pub mod assemble;
pub mod delete;
pub mod fetch;
pub mod replicate;
pub mod scrub;

use std::sync::Arc;

use ferry_queue::outbox::RelayWaker;
use ferry_queue::Job;
use ferry_shared::config::Config;
use ferry_shared::types::{FileId, NodeId};
use ferry_store::nodes::SshTarget;
use ferry_store::{Pool, StoreError};

use crate::batch::Batcher;
use crate::gather::{Gather, GatherError};
use crate::identity::Worker;
use crate::ssh::{NodeAddr, Ssh, SshError};

/// What a handler needs, shared by all jobs of one worker process.
pub struct Ctx {
    pub config: Config,
    pub pool: Pool,
    /// For the job records only: asynchronous commit ([`ferry_store::bookkeeping_pool`]).
    pub records: Pool,
    pub ssh: Arc<Ssh>,
    /// Per-node rsync batches for replicate jobs.
    pub batcher: Batcher,
    /// Copy attempts begun, grouped (`(file, node)` -> the replica's copy job, when
    /// it could begin): [`replicate::begin_copies`].
    pub begin: Gather<(FileId, NodeId), Option<ferry_store::replicas::CopyJob>>,
    /// Verified copies recorded `present`, grouped (`(file, node)` -> whether the row
    /// changed): [`replicate::record_present`].
    pub present: Gather<(FileId, NodeId), bool>,
    /// Job records started (`active` on this worker), grouped:
    /// [`crate::consumer::record_started`].
    pub started: Gather<ferry_store::jobs::Start, Option<ferry_store::jobs::Started>>,
    /// Job records ended `done`, grouped, on [`Ctx::records`]:
    /// [`crate::consumer::record_finished`].
    pub finished: Gather<uuid::Uuid, bool>,
    pub relay: RelayWaker,
    /// For fetching a copy back from a node agent (repair without staging).
    pub http: reqwest::Client,
    /// This worker's id and in-flight jobs.
    pub worker: Arc<Worker>,
    /// Attempts, retry delays and time limit per job kind.
    pub policies: crate::policy::Policies,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (node down, DB or broker blip, transient rsync error).
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help; the job is marked failed and dead-lettered.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Retry(format!("database: {e}"))
    }
}

impl From<GatherError> for JobError {
    fn from(e: GatherError) -> Self {
        JobError::Retry(format!("database: {e}"))
    }
}

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for JobError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::from(e).into()
    }
}

/// How the SSH layer addresses a node the store returned.
pub(crate) fn node_addr(t: SshTarget) -> NodeAddr {
    NodeAddr { host: t.host, port: t.port, user: t.user, root: t.root }
}

impl From<SshError> for JobError {
    fn from(e: SshError) -> Self {
        if e.is_permanent() {
            JobError::Permanent(e.to_string())
        } else {
            JobError::Retry(e.to_string())
        }
    }
}

impl From<std::io::Error> for JobError {
    fn from(e: std::io::Error) -> Self {
        JobError::Retry(format!("i/o: {e}"))
    }
}

pub async fn handle(ctx: &Arc<Ctx>, job: &Job) -> Result<(), JobError> {
    match job {
        Job::Assemble { upload } => assemble::run(ctx, *upload).await,
        Job::Replicate { file, node, repair } => replicate::run(ctx, *file, *node, *repair).await,
        Job::Delete { file } => delete::run(ctx, *file).await,
        Job::DropReplica { file, node } => delete::drop_replica(ctx, *file, *node).await,
        Job::Verify { file, node } => scrub::run(ctx, *file, *node).await,
    }
}

/// Records in PostgreSQL that `job` will not be retried any more, so the failure is
/// visible there and not only in the dead-letter queue.
pub async fn give_up(ctx: &Arc<Ctx>, job: &Job, reason: &str) -> Result<(), JobError> {
    match job {
        Job::Assemble { upload } => {
            assemble::fail(ctx, *upload, ferry_store::uploads::UploadFailure::AssemblyFailed, reason).await
        }
        Job::Replicate { file, node, .. } => replicate::fail(ctx, *file, *node, reason).await,
        Job::Verify { file, node } => {
            tracing::warn!(file.id = %file, node.id = %node, reason, "scrub gave up; will be scheduled again");
            scrub::finished(ctx, *file, *node).await
        }
        Job::Delete { file } | Job::DropReplica { file, .. } => {
            tracing::error!(file.id = %file, reason, "delete job gave up; a copy may remain on a node");
            Ok(())
        }
    }
}
