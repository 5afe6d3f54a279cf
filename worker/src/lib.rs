//! `ferry-worker`: consumes the job queues (assemble, replicate, delete) and does the
//! heavy lifting: assembling and verifying uploads, copying them to storage nodes
//! with rsync over SSH, removing deleted files. Run as many replicas as the queues
//! need; each handles `--concurrency` jobs per queue at once.

pub mod batch;
pub mod consumer;
pub mod gather;
pub mod gc;
pub mod identity;
pub mod jobs;
pub mod policy;
pub mod ssh;

use std::sync::Arc;

use ferry_queue::outbox::{self, RelayWaker};
use ferry_queue::{JobKind, Publisher};
use ferry_shared::config::Config;
use ferry_shared::ops;
use ferry_store::StoreError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consumer::QueueConsumer;

/// Connections of the job-record pool: each record write is one short statement.
const RECORD_CONNECTIONS: usize = 4;
/// Most writes in one grouped statement ([`gather`]): a batch's files at most.
const GROUP_MAX: usize = 1024;
use crate::jobs::Ctx;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Db(#[from] StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}

pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let kinds: Vec<JobKind> =
        config.worker.queues.iter().map(|q| q.parse()).collect::<Result<_, _>>().map_err(RunError::Config)?;
    let pool = ferry_store::pool(&config.database)?;
    ferry_store::migrate(&pool).await?;
    tokio::fs::create_dir_all(&config.storage.staging_dir).await?;
    let policies = policy::Policies::from_config(&config.worker).map_err(RunError::Config)?;
    let worker = Arc::new(identity::Worker::new(&config.worker));
    // Before any consumer starts, so a paused queue is not consumed for a moment.
    worker.refresh_paused(&pool).await?;
    let publisher = Arc::new(Publisher::new(
        config.broker.url.expose(),
        &format!("ferry-worker {} publisher", worker.id),
        config.broker.heartbeat_secs,
    ));
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| RunError::Config(format!("http client: {e}")))?;
    let ssh = Arc::new(ssh::Ssh::new(&config.worker)?);
    let batcher = batch::Batcher::new(
        ssh.clone(),
        config.storage.staging_dir.clone(),
        batch::Limits::from_config(&config.worker),
    );
    let records = ferry_store::bookkeeping_pool(&config.database, RECORD_CONNECTIONS)?;
    let ctx = Arc::new(Ctx {
        ssh,
        batcher,
        begin: jobs::replicate::begin_copies(pool.clone(), GROUP_MAX),
        present: jobs::replicate::record_present(pool.clone(), GROUP_MAX),
        started: consumer::record_started(records.clone(), worker.id.clone(), GROUP_MAX),
        finished: consumer::record_finished(records.clone(), worker.id.clone(), GROUP_MAX),
        pool: pool.clone(),
        records,
        relay: RelayWaker::default(),
        http,
        worker: worker.clone(),
        policies,
        config,
    });

    let tasks = TaskTracker::new();
    tasks.spawn(outbox::run_relay(pool.clone(), publisher.clone(), ctx.relay.clone(), shutdown.clone()));
    tasks.spawn(gc::run(ctx.clone(), shutdown.clone()));
    for kind in kinds {
        let consumer = QueueConsumer {
            ctx: ctx.clone(),
            publisher: publisher.clone(),
            kind,
            // Replicate jobs mostly wait on their node's batch: hold enough to fill batches.
            concurrency: match kind {
                JobKind::Replicate => ctx.config.worker.replicate_in_flight.max(ctx.config.worker.concurrency),
                _ => ctx.config.worker.concurrency,
            },
        };
        tasks.spawn(consumer.run(shutdown.clone()));
    }
    tasks.close();
    // The inventory outlives the consumers' drain, so it shows what is still in flight.
    let drained = CancellationToken::new();
    let inventory = tokio::spawn(identity::heartbeat(worker, ctx.config.worker.clone(), pool.clone(), drained.clone()));

    let ready = ferry_queue::ready::db_and_broker(pool, publisher);
    tracing::info!(listen = %listener.local_addr()?, "ferry-worker running");
    let limits = ferry_shared::serve::Limits::from_config(&ctx.config.http);
    ferry_shared::serve::serve(listener, ops::routes(ready), shutdown, limits).await?;
    tasks.wait().await;
    drained.cancel();
    let _ = inventory.await;
    Ok(())
}
