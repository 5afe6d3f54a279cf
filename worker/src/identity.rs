//! Who this worker is and what it is doing: its id (in job records, the `workers`
//! inventory, AMQP connection names and consumer tags), the jobs it has in flight, and
//! the registration + heartbeat loop that keeps the inventory current.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_shared::config::WorkerConfig;
use ferry_store::{pauses, workers, Pool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often a worker heartbeats into `workers` (the inventory calls one silent for
/// [`workers::STALE_AFTER_SECS`] stale).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// This worker process.
pub struct Worker {
    /// `worker.id` if configured, else `<hostname>:<pid>`.
    pub id: String,
    pub host: String,
    pub pid: u32,
    in_flight: Mutex<BTreeSet<Uuid>>,
    /// The queues (routing keys) an operator paused, as of the last heartbeat.
    paused: watch::Sender<BTreeSet<String>>,
}

impl Worker {
    pub fn new(config: &WorkerConfig) -> Worker {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let pid = std::process::id();
        let id = if config.id.trim().is_empty() { format!("{host}:{pid}") } else { config.id.trim().to_owned() };
        Worker { id, host, pid, in_flight: Mutex::new(BTreeSet::new()), paused: watch::Sender::new(BTreeSet::new()) }
    }

    /// Follows the set of paused queues (routing keys).
    pub fn watch_paused(&self) -> watch::Receiver<BTreeSet<String>> {
        self.paused.subscribe()
    }

    /// Reads the paused queues from PostgreSQL; consumers of a queue that became paused
    /// stop consuming, those of a resumed one start again.
    pub async fn refresh_paused(&self, pool: &Pool) -> Result<(), ferry_store::StoreError> {
        let now: BTreeSet<String> = pauses::list(&pool.get().await?).await?.into_iter().map(|p| p.queue).collect();
        self.paused.send_if_modified(|paused| {
            let changed = *paused != now;
            if changed {
                tracing::info!(paused = ?now, "paused queues changed");
                *paused = now;
            }
            changed
        });
        Ok(())
    }

    /// Marks job `id` of `kind` in flight until the returned guard is dropped (also
    /// counted in `ferry_jobs_in_flight{kind,worker}`).
    pub fn track(self: &Arc<Self>, id: Uuid, kind: &'static str) -> InFlight {
        self.lock().insert(id);
        ferry_shared::metrics::JOBS_IN_FLIGHT.with_label_values(&[kind, &self.id]).inc();
        InFlight { worker: self.clone(), id, kind }
    }

    /// The ids of the jobs in flight right now.
    pub fn in_flight(&self) -> Vec<Uuid> {
        self.lock().iter().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Uuid>> {
        // The set stays consistent even if a holder panicked (insert/remove only).
        self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A job in flight; dropping it (job settled, or its task cancelled) takes it out.
pub struct InFlight {
    worker: Arc<Worker>,
    id: Uuid,
    kind: &'static str,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.worker.lock().remove(&self.id);
        ferry_shared::metrics::JOBS_IN_FLIGHT.with_label_values(&[self.kind, &self.worker.id]).dec();
    }
}

/// Registers the worker, heartbeats every [`HEARTBEAT`] with its in-flight jobs (and
/// reads the paused queues) until `shutdown`, then marks it stopped. A failed write is logged and retried at the next
/// beat (the inventory is for operators; jobs do not depend on it).
pub async fn heartbeat(worker: Arc<Worker>, config: WorkerConfig, pool: Pool, shutdown: CancellationToken) {
    let queues = config.queues.clone();
    let registration = workers::Registration {
        id: &worker.id,
        host: &worker.host,
        pid: i32::try_from(worker.pid).unwrap_or(i32::MAX),
        version: env!("CARGO_PKG_VERSION"),
        queues: &queues,
        concurrency: i32::from(config.concurrency),
    };
    let mut registered = false;
    let mut ticker = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let result = match pool.get().await {
            Ok(client) if !registered => workers::register(&client, &registration).await,
            Ok(client) => workers::heartbeat(&client, &worker.id, &worker.in_flight()).await,
            Err(e) => Err(e.into()),
        };
        if let Err(error) = worker.refresh_paused(&pool).await {
            tracing::warn!(%error, "cannot read the paused queues; will retry");
        }
        match result {
            Ok(()) if !registered => {
                registered = true;
                tracing::info!(worker.id = %worker.id, "registered in the worker inventory");
            }
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "worker heartbeat failed; will retry"),
        }
    }
    if let Ok(client) = pool.get().await {
        if let Err(error) = workers::stopped(&client, &worker.id).await {
            tracing::warn!(%error, "could not mark the worker stopped");
        }
    }
}
