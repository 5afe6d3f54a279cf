//! Batching replica copies per node: every replicate job hands its file to the lane
//! of its node and waits for that file's own outcome; the lane moves what is waiting
//! in ONE rsync session ([`Ssh::push`]), at most `worker.batch_sessions_per_node`
//! sessions per node at once. While a session is busy, files queue, so under load the
//! next batch takes everything that arrived meanwhile (up to `worker.batch_max_files` /
//! `worker.batch_max_bytes`); an idle lane waits `worker.batch_window_ms` after the
//! first file for more. A further session starts only beside a busy one when a full
//! batch is waiting: every session costs the node a process tree (sshd channel, shell,
//! gate, `rsync --server`) and both ends a round of the rsync protocol, so on a loaded
//! machine many small batches run slower than a few full ones (measured: with every
//! idle session taking what was queued, most batches held 1-2 files).
//!
//! - Files over `worker.batch_alone_bytes` skip the lanes: pushed alone and at once,
//!   so a large file never waits behind a batch and small ones never behind it.
//! - Fresh uploads go first: a lane fills each batch from its fresh queue before its
//!   repair queue (the monitor's top-up, marked `repair` in its message).
//!
//! Each job keeps its own verdict, commit and ack: a file that fails in a batch
//! fails only its own job.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_shared::config::WorkerConfig;
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::ssh::{NodeAddr, PushFile, Pushed, Ssh, SshError};

/// The batch limits, from `[worker]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub window: Duration,
    pub max_files: usize,
    pub max_bytes: u64,
    pub alone_bytes: u64,
    pub sessions_per_node: usize,
}

impl Limits {
    pub fn from_config(config: &WorkerConfig) -> Limits {
        Limits {
            window: Duration::from_millis(config.batch_window_ms),
            max_files: config.batch_max_files.max(1),
            max_bytes: config.batch_max_bytes,
            alone_bytes: config.batch_alone_bytes,
            sessions_per_node: config.batch_sessions_per_node.max(1),
        }
    }
}

/// Whose copy this is, for the lanes' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A fresh upload's replica.
    Fresh,
    /// The monitor's top-up (repair, drain).
    Repair,
}

struct Item {
    file: PushFile,
    size: u64,
    priority: Priority,
    reply: oneshot::Sender<Pushed>,
}

#[derive(Default)]
struct Queues {
    fresh: VecDeque<Item>,
    repair: VecDeque<Item>,
}

impl Queues {
    fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.repair.is_empty()
    }

    /// Whether what waits fills a whole batch (by files or by bytes).
    fn holds_a_full_batch(&self, limits: &Limits) -> bool {
        let waiting = self.fresh.iter().chain(&self.repair);
        self.fresh.len() + self.repair.len() >= limits.max_files
            || waiting.map(|i| i.size).fold(0u64, u64::saturating_add) >= limits.max_bytes
    }

    /// The next batch: fresh files first, within the limits (at least one file).
    fn take(&mut self, limits: &Limits) -> Vec<Item> {
        let mut batch: Vec<Item> = Vec::new();
        let mut bytes = 0u64;
        for queue in [&mut self.fresh, &mut self.repair] {
            while let Some(next) = queue.front() {
                let fits = batch.is_empty() || bytes.saturating_add(next.size) <= limits.max_bytes;
                if batch.len() >= limits.max_files || !fits {
                    return batch;
                }
                bytes = bytes.saturating_add(next.size);
                batch.extend(queue.pop_front());
            }
        }
        batch
    }
}

#[derive(Default)]
struct Lane {
    queues: Mutex<Queues>,
    wake: Notify,
}

/// A node address: host, port, user, root.
type LaneKey = (String, i32, String, String);

pub struct Batcher {
    ssh: Arc<Ssh>,
    /// Where pushes make their scratch directories (the staging volume: hard links).
    scratch: PathBuf,
    limits: Limits,
    lanes: Mutex<HashMap<LaneKey, Arc<Lane>>>,
}

impl Batcher {
    pub fn new(ssh: Arc<Ssh>, scratch: PathBuf, limits: Limits) -> Batcher {
        Batcher { ssh, scratch, limits, lanes: Mutex::new(HashMap::new()) }
    }

    /// Copies `file` (of `size` bytes) to `node`, in a batch or alone, and returns
    /// its own outcome.
    pub async fn push(&self, node: &NodeAddr, file: PushFile, size: u64, priority: Priority) -> Pushed {
        if size > self.limits.alone_bytes || self.limits.max_files == 1 {
            return self.ssh.push(node, &self.scratch, std::slice::from_ref(&file)).await.pop().unwrap_or_else(|| {
                Pushed::NotCopied(SshError::Config("a push of one file returned no outcome".into()))
            });
        }
        let (reply, outcome) = oneshot::channel();
        let lane = self.lane(node);
        {
            let mut queues = lane.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let item = Item { file, size, priority, reply };
            match item.priority {
                Priority::Fresh => queues.fresh.push_back(item),
                Priority::Repair => queues.repair.push_back(item),
            }
        }
        lane.wake.notify_one();
        outcome
            .await
            .unwrap_or_else(|_| Pushed::NotCopied(SshError::Config("the node's batch ended without an answer".into())))
    }

    /// The lane of `node`, started on first use (one per node address; nodes are few).
    fn lane(&self, node: &NodeAddr) -> Arc<Lane> {
        let key = (node.host.clone(), node.port, node.user.clone(), node.root.clone());
        let mut lanes = self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lane) = lanes.get(&key) {
            return lane.clone();
        }
        let lane = Arc::new(Lane::default());
        lanes.insert(key, lane.clone());
        tokio::spawn(drive(lane.clone(), self.ssh.clone(), node.clone(), self.scratch.clone(), self.limits.clone()));
        lane
    }
}

/// A lane's loop: take a session slot, wait for files (and, beside a busy session,
/// for a full batch or the end of the busy ones), gather, push, repeat.
async fn drive(lane: Arc<Lane>, ssh: Arc<Ssh>, node: NodeAddr, scratch: PathBuf, limits: Limits) {
    let sessions = Arc::new(Semaphore::new(limits.sessions_per_node));
    loop {
        let Ok(permit) = sessions.clone().acquire_owned().await else { return };
        let mut was_busy = false;
        loop {
            let woken = lane.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let busy = sessions.available_permits() + 1 < limits.sessions_per_node;
            let ready = {
                let queues = lane.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                !queues.is_empty() && (!busy || queues.holds_a_full_batch(&limits))
            };
            if ready {
                break;
            }
            was_busy |= busy;
            woken.await;
        }
        // An idle lane gives a lone file a moment for company; one that was busy
        // already gathered what arrived meanwhile.
        let waiting = lane.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fresh.len();
        if !was_busy && waiting < limits.max_files && !limits.window.is_zero() {
            tokio::time::sleep(limits.window).await;
        }
        let batch = lane.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(&limits);
        if batch.is_empty() {
            continue;
        }
        let (ssh, node, scratch, lane) = (ssh.clone(), node.clone(), scratch.clone(), lane.clone());
        tokio::spawn(async move {
            let files: Vec<PushFile> = batch.iter().map(|item| item.file.clone()).collect();
            let started = Instant::now();
            let outcomes = ssh.push(&node, &scratch, &files).await;
            let verified = outcomes.iter().filter(|o| matches!(o, Pushed::Verified)).count();
            tracing::info!(
                node.host = %node.host,
                node.port = node.port,
                batch.files = files.len(),
                batch.verified = verified,
                batch.bytes = batch.iter().map(|i| i.size).sum::<u64>(),
                duration_ms = started.elapsed().as_millis() as u64,
                "rsync batch done"
            );
            for (item, outcome) in batch.into_iter().zip(outcomes) {
                let _ = item.reply.send(outcome);
            }
            drop(permit);
            // The loop may be waiting for this session to end.
            lane.wake.notify_one();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(size: u64, priority: Priority) -> Item {
        let file =
            PushFile { id: uuid::Uuid::new_v4(), source: PathBuf::new(), md5: String::new(), sha256: String::new() };
        Item { file, size, priority, reply: oneshot::channel().0 }
    }

    fn limits(max_files: usize, max_bytes: u64) -> Limits {
        Limits { window: Duration::ZERO, max_files, max_bytes, alone_bytes: u64::MAX, sessions_per_node: 1 }
    }

    #[test]
    fn batches_take_fresh_files_first_within_the_limits() {
        let mut queues = Queues::default();
        queues.repair.extend([item(1, Priority::Repair), item(1, Priority::Repair)]);
        queues.fresh.extend([item(1, Priority::Fresh), item(1, Priority::Fresh), item(1, Priority::Fresh)]);
        let batch = queues.take(&limits(4, 100));
        let order: Vec<Priority> = batch.iter().map(|i| i.priority).collect();
        assert_eq!(order, [Priority::Fresh, Priority::Fresh, Priority::Fresh, Priority::Repair]);
        assert_eq!(queues.take(&limits(4, 100)).len(), 1);
        assert!(queues.is_empty());
    }

    #[test]
    fn a_full_batch_is_counted_in_files_or_in_bytes() {
        let mut queues = Queues::default();
        queues.fresh.extend([item(10, Priority::Fresh), item(10, Priority::Fresh)]);
        assert!(!queues.holds_a_full_batch(&limits(3, 100)));
        queues.repair.push_back(item(10, Priority::Repair));
        assert!(queues.holds_a_full_batch(&limits(3, 100)), "3 files of at most 3");
        assert!(!queues.holds_a_full_batch(&limits(10, 100)));
        queues.fresh.push_back(item(70, Priority::Fresh));
        assert!(queues.holds_a_full_batch(&limits(10, 100)), "100 bytes of at most 100");
    }

    #[test]
    fn a_batch_stops_at_its_byte_limit_but_always_takes_one_file() {
        let mut queues = Queues::default();
        queues.fresh.extend([item(60, Priority::Fresh), item(60, Priority::Fresh), item(500, Priority::Fresh)]);
        assert_eq!(queues.take(&limits(10, 100)).len(), 1);
        assert_eq!(queues.take(&limits(10, 100)).len(), 1);
        assert_eq!(queues.take(&limits(10, 100)).len(), 1, "one file over the byte limit still goes");
        assert!(queues.take(&limits(10, 100)).is_empty());
    }
}
