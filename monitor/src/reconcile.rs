//! The reconciler: job records that stayed open for longer than a job may take (the
//! longest of `worker.job_timeout_secs` and the per-kind time limits) plus a margin (`monitor.reconcile_margin_secs`) lost
//! their message: a purged queue, a dead letter the broker made without telling anyone,
//! a worker that vanished. `active` records count at once; `queued` and `retrying` ones
//! only when their queue and its retry tiers hold no ready message (read with a passive
//! declare), because a job waiting in a backlog is late, not lost. They are put back in
//! the outbox under their own id, so the work heals, and counted
//! (`ferry_jobs_overdue`, `ferry_jobs_requeued_total`). Handlers are idempotent and a
//! worker acks a delivery whose record is already `done` without running it, so a
//! re-enqueued job whose first message shows up after all costs one lookup.
//!
//! The same round prunes finished records past `monitor.job_retention_days` and stopped
//! workers past that age, and sets `ferry_jobs_dead`.

use ferry_queue::{JobKind, Publisher, JOBS_EXCHANGE, RETRY_TIERS};
use ferry_shared::config::Config;
use ferry_shared::metrics::{QUEUE_CONSUMERS, QUEUE_READY};
use ferry_store::{jobs, workers, JobState, Pool, StoreError};

/// Re-enqueues per round at most (the rest wait for the next round).
const BATCH: i64 = 500;
/// Finished records deleted per round at most: a round stays short however many fell
/// due at once (after a longer retention was shortened, say); at 10-second rounds this
/// still keeps up with about 5,000 jobs finishing per second.
const PRUNE_BATCH: i64 = 50_000;
/// A job re-enqueued this many times without finishing is given up (`dead`): its
/// message keeps vanishing, e.g. it crashes its worker every time.
pub const MAX_REQUEUES: i32 = 3;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Overdue jobs re-enqueued.
    pub requeued: usize,
    /// Overdue jobs given up after [`MAX_REQUEUES`].
    pub given_up: usize,
    /// Finished records deleted.
    pub pruned: u64,
}

/// The queues (routing keys) whose main queue holds no ready message, while the retry
/// tiers hold none either: the tiers are shared by every kind, so a message parked in
/// one could be of any kind, and nothing counts as drained until they are empty. A
/// broker that cannot be asked drains nothing: only `active` records are reconciled.
/// Every queue's depth and consumers read on the way are exported
/// (`ferry_queue_ready{queue}`, `ferry_queue_consumers{queue}`), the dead-letter
/// queues' too, so Prometheus sees the queues without the broker's own plugin.
async fn drained_queues(publisher: &Publisher) -> Vec<&'static str> {
    /// What a queue read here is to the reconciler.
    enum Role {
        /// A shared retry tier: any message in it keeps every kind from being drained.
        Tier,
        /// The main queue of the kind with this routing key.
        Main(&'static str),
        /// A dead-letter queue: read for its gauges only.
        Dead,
    }
    let tiers = RETRY_TIERS.iter().map(|(tier, _)| (Role::Tier, ferry_queue::retry_queue(tier)));
    let mains = JobKind::ALL.into_iter().map(|kind| (Role::Main(kind.routing_key()), kind.queue()));
    let dead = JobKind::ALL.into_iter().map(|kind| (Role::Dead, kind.dead_queue()));
    let mut drained = Vec::new();
    let mut tiers_empty = true;
    for (role, queue) in tiers.chain(mains).chain(dead) {
        let counts = match publisher.queue_counts(&queue).await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%error, queue, "cannot read the queue depth; reconciling active jobs only");
                return Vec::new();
            }
        };
        QUEUE_READY.with_label_values(&[&queue]).set(i64::from(counts.ready));
        QUEUE_CONSUMERS.with_label_values(&[&queue]).set(i64::from(counts.consumers));
        match role {
            Role::Tier => tiers_empty &= counts.ready == 0,
            Role::Main(kind) if counts.ready == 0 => drained.push(kind),
            Role::Main(_) | Role::Dead => {}
        }
    }
    if tiers_empty {
        drained
    } else {
        Vec::new()
    }
}

/// One reconcile round; see the module doc.
pub async fn round(pool: &Pool, publisher: &Publisher, config: &Config) -> Result<Round, StoreError> {
    let after_secs = (config.worker.longest_time_limit_secs() + config.monitor.reconcile_margin_secs) as f64;
    let drained = drained_queues(publisher).await;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let overdue = jobs::overdue(&tx, after_secs, &drained, BATCH).await?;
    ferry_shared::metrics::JOBS_OVERDUE.set(overdue.len() as i64);
    let mut done = Round::default();
    for job in &overdue {
        if job.requeues >= MAX_REQUEUES {
            let reason = format!(
                "lost {} times (re-enqueued by the reconciler after {after_secs} s {} each time)",
                job.requeues + 1,
                job.state
            );
            jobs::give_up(&tx, job.id, &reason).await?;
            tracing::error!(job.id = %job.id, job.kind = %job.kind, file.id = %job.file, reason, "job given up");
            done.given_up += 1;
        } else if jobs::reconcile(&tx, job.id, JOBS_EXCHANGE).await? {
            ferry_shared::metrics::JOBS_REQUEUED.with_label_values(&[&job.kind]).inc();
            tracing::warn!(
                job.id = %job.id,
                job.kind = %job.kind,
                file.id = %job.file,
                job.state = %job.state,
                since = %job.state_at,
                "job overdue: its message was lost; re-enqueued"
            );
            done.requeued += 1;
        }
    }
    let retention_secs = (config.monitor.job_retention_days * 86_400) as f64;
    done.pruned = jobs::prune(&tx, retention_secs, PRUNE_BATCH).await?;
    workers::prune(&tx, retention_secs).await?;
    let dead = jobs::count_in_state(&tx, JobState::Dead).await?;
    tx.commit().await?;
    ferry_shared::metrics::JOBS_DEAD.set(dead);
    Ok(done)
}
