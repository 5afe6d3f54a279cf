//! What every request handler shares: the storage root, the signing secret, the read
//! buffers, the record of recently verified copies, and the bounded list of copies
//! found corrupt while they were served.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_shared::config::NodeConfig;
use ferry_shared::slots::{KeyedSlots, Slot};
use ferry_shared::types::FileId;
use tokio::sync::Semaphore;

use crate::buffers::BufferPool;
use crate::error::ServeError;
use crate::verified::VerifiedCopies;

/// How many corrupt-file reports `/health` keeps. The monitor reads them every probe,
/// so a short list suffices; the bound keeps a disk going bad from growing memory.
pub const CORRUPT_REPORTS: usize = 100;

/// Bytes read per step of a body, and the size of every pooled buffer. A 1 MiB range
/// (the common resuming and benchmarked request size, deploy/bench) is one read. 4 MiB
/// steps measured no faster for whole files (reads overlap the sends anyway, so the
/// per-step hand-off is hidden) and would hold four times the memory per connection.
pub const READ_STEP: u64 = 1 << 20;

/// Read buffers that may exist at once across all connections: 512 x [`READ_STEP`] =
/// 512 MiB at most. A download holds at most three (one being sent, one read ahead,
/// one being hashed), so this admits well over a hundred downloads at full speed; more
/// wait their turn for a buffer rather than grow memory.
pub const MAX_BUFFERS: usize = 512;

/// Idle buffers kept for reuse (64 MiB): enough for the concurrency a node sees under
/// load, without holding a burst's peak forever.
pub const RETAINED_BUFFERS: usize = 64;

/// Tunables of a running agent that are not part of the shared [`Config`](ferry_shared::config::Config).
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a copy whose whole bytes matched their signed sha256 is served whole
    /// again without hashing; zero hashes every whole-file read. See
    /// [`crate::verified`].
    pub reverify_after: Duration,
    /// How long bytes sent to a client may stay unacknowledged (a client that stopped
    /// reading) before its connection is dropped and its buffers return to the pool.
    pub stalled_peer_timeout: Duration,
    /// `node.max_downloads_per_client`: downloads one client address has in flight.
    pub max_downloads_per_client: usize,
    /// `node.max_downloads_per_link`: downloads of one signed link in flight.
    pub max_downloads_per_link: usize,
    /// Read buffers that may exist at once ([`MAX_BUFFERS`] on a node).
    pub max_buffers: usize,
    /// Where a file id's bytes are under the root.
    pub layout: Layout,
}

/// How a file id names its bytes under a root. Either way the path is built only from
/// the parsed id, so no request can name a path outside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A storage node: `<root>/<FileId::node_relpath()>`, where workers put copies.
    Node,
    /// The staging volume: `<root>/<id>/data` ([`ferry_shared::staging`]), which the
    /// API serves a complete file from until its first node copy is present.
    Staging,
}

/// Default of [`Options::reverify_after`]: a day, a seventh of the monitor's default
/// scrub interval (`monitor.scrub_interval_secs`, a week); any change to a copy's
/// metadata forces the next whole read to verify anyway.
pub const DEFAULT_REVERIFY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for Options {
    fn default() -> Self {
        Options {
            reverify_after: DEFAULT_REVERIFY_AFTER,
            stalled_peer_timeout: ferry_shared::serve::STALLED_PEER_TIMEOUT,
            max_downloads_per_client: NodeConfig::default().max_downloads_per_client,
            max_downloads_per_link: NodeConfig::default().max_downloads_per_link,
            max_buffers: MAX_BUFFERS,
            layout: Layout::Node,
        }
    }
}

pub struct NodeState {
    root: PathBuf,
    layout: Layout,
    secret: Vec<u8>,
    buffers: Arc<BufferPool>,
    verified: VerifiedCopies,
    /// Files whose served bytes did not match their signed checksum (the copy has been
    /// moved aside). Reported in `/health` so the monitor marks those replicas failed at
    /// once instead of waiting for the next scrub.
    corrupt: Mutex<VecDeque<FileId>>,
    /// Downloads in flight per client address and per signed link (its signature).
    per_client: KeyedSlots<IpAddr>,
    per_link: KeyedSlots<String>,
    /// The root's write checks ([`NodeState::write_error`]).
    write_check: Mutex<WriteCheck>,
}

/// The root's write checks: the last one's end and outcome (`None`: passed), and since
/// when one runs.
#[derive(Debug, Default)]
struct WriteCheck {
    last: Option<(Instant, Option<String>)>,
    running: Option<Instant>,
}

/// The slots one download holds while its body is being sent.
pub struct DownloadSlots {
    _client: Slot<IpAddr>,
    _link: Slot<String>,
}

impl NodeState {
    pub fn new(root: PathBuf, secret: &[u8]) -> Self {
        NodeState::with_options(root, secret, &Options::default())
    }

    pub fn with_options(root: PathBuf, secret: &[u8], options: &Options) -> Self {
        NodeState {
            root,
            layout: options.layout,
            secret: secret.to_vec(),
            buffers: BufferPool::new(
                READ_STEP as usize,
                options.max_buffers,
                RETAINED_BUFFERS.min(options.max_buffers),
            ),
            verified: VerifiedCopies::new(options.reverify_after),
            corrupt: Mutex::new(VecDeque::new()),
            per_client: KeyedSlots::new(Semaphore::MAX_PERMITS, options.max_downloads_per_client),
            per_link: KeyedSlots::new(Semaphore::MAX_PERMITS, options.max_downloads_per_link),
            write_check: Mutex::new(WriteCheck::default()),
        }
    }

    /// Why a file cannot be written at a node's root ([`crate::health::write_check`]),
    /// `None` when it can, as the last check found; a check older than
    /// [`crate::health::WRITE_CHECK_EVERY`] starts the next one on a blocking thread,
    /// which this call does not wait for: a `/health` answer never waits on the disk (a
    /// busy disk's `fdatasync` must not make the monitor's probe time out). A check
    /// still running after [`crate::health::WRITE_CHECK_STALL`] is itself the answer:
    /// the disk does not finish a small write. `None` before the first check ends, and
    /// always for staging (its writer is the API, which reports its own failures).
    pub fn write_error(self: &Arc<Self>) -> Option<String> {
        use crate::health::{WRITE_CHECK_EVERY, WRITE_CHECK_STALL};
        if self.layout != Layout::Node {
            return None;
        }
        let mut check = self.write_check.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(started) = check.running {
            if started.elapsed() >= WRITE_CHECK_STALL {
                return Some(format!(
                    "a write to the storage root has not finished in {} s",
                    started.elapsed().as_secs()
                ));
            }
        } else if check.last.as_ref().is_none_or(|(at, _)| at.elapsed() >= WRITE_CHECK_EVERY) {
            check.running = Some(Instant::now());
            let state = Arc::clone(self);
            tokio::task::spawn_blocking(move || {
                let outcome = crate::health::write_check(&state.root).err();
                let mut check = state.write_check.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // Logged when the verdict changes, not at every check.
                let before = check.last.as_ref().map(|(_, outcome)| outcome.is_none());
                match (&outcome, before) {
                    (Some(error), None | Some(true)) => {
                        tracing::warn!(%error, root = %state.root.display(), "storage root is not writable")
                    }
                    (None, Some(false)) => tracing::info!(root = %state.root.display(), "storage root writable again"),
                    _ => {}
                }
                *check = WriteCheck { last: Some((Instant::now(), outcome)), running: None };
            });
        }
        check.last.as_ref().and_then(|(_, outcome)| outcome.clone())
    }

    /// A download's share for `client` and `link` (the link's signature), or
    /// [`ServeError::TooManyDownloads`] when either already has its share in flight.
    pub fn download_slots(&self, client: IpAddr, link: &str) -> Result<DownloadSlots, ServeError> {
        let client = self.per_client.try_acquire(client).map_err(|_| ServeError::TooManyDownloads)?;
        let link = self.per_link.try_acquire(link.to_owned()).map_err(|_| ServeError::TooManyDownloads)?;
        Ok(DownloadSlots { _client: client, _link: link })
    }

    /// The read buffers every body draws from.
    pub fn buffers(&self) -> &Arc<BufferPool> {
        &self.buffers
    }

    /// Copies recently read whole and found matching their checksum.
    pub fn verified(&self) -> &VerifiedCopies {
        &self.verified
    }

    /// The root the files live under, as [`Layout`] says.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `id` lives. Built only from the parsed id, so no request can name a path
    /// outside the root.
    pub fn path_of(&self, id: FileId) -> PathBuf {
        match self.layout {
            Layout::Node => self.root.join(id.node_relpath()),
            Layout::Staging => ferry_shared::staging::data_path(&ferry_shared::staging::upload_dir(&self.root, id)),
        }
    }

    /// The HMAC key shared with the API, which signs download URLs.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Records that the copy of `id` was corrupt, dropping the oldest report when full.
    pub fn report_corrupt(&self, id: FileId) {
        // A poisoned lock only means another thread panicked mid-push; the queue is
        // still a valid queue, so keep using it.
        let mut corrupt = self.corrupt.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if corrupt.contains(&id) {
            return;
        }
        if corrupt.len() >= CORRUPT_REPORTS {
            corrupt.pop_front();
        }
        corrupt.push_back(id);
    }

    /// The current corrupt-file reports, oldest first.
    pub fn corrupt(&self) -> Vec<FileId> {
        let corrupt = self.corrupt.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        corrupt.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write_error` answers at once from the last check and runs the next one in the
    /// background: nothing before the first check ends, then that check's outcome.
    async fn settled_write_error(state: &Arc<NodeState>) -> Option<String> {
        assert_eq!(state.write_error(), None, "nothing is known before the first check ends");
        for _ in 0..500 {
            let done = state.write_check.lock().map(|c| c.last.is_some()).unwrap_or(false);
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        state.write_error()
    }

    #[tokio::test]
    async fn a_writable_root_passes_and_an_unusable_one_says_why() -> Result<(), std::io::Error> {
        let dir = tempfile::tempdir()?;
        let state = Arc::new(NodeState::new(dir.path().to_owned(), b"k"));
        assert_eq!(settled_write_error(&state).await, None);
        let gone = Arc::new(NodeState::new(dir.path().join("gone"), b"k"));
        let error = settled_write_error(&gone).await.unwrap_or_default();
        assert!(error.starts_with("cannot create a file in the storage root: "), "{error}");
        // Staging is not checked.
        let options = Options { layout: Layout::Staging, ..Options::default() };
        let staging = Arc::new(NodeState::with_options(dir.path().join("gone"), b"k", &options));
        assert_eq!(staging.write_error(), None);
        assert!(staging.write_check.lock().map(|c| c.running.is_none() && c.last.is_none()).unwrap_or(false));
        Ok(())
    }

    #[test]
    fn corrupt_reports_are_bounded_and_deduplicated() {
        let state = NodeState::new(PathBuf::from("/srv/ferry"), b"k");
        let first = FileId::new();
        state.report_corrupt(first);
        state.report_corrupt(first);
        assert_eq!(state.corrupt(), vec![first]);
        for _ in 0..CORRUPT_REPORTS {
            state.report_corrupt(FileId::new());
        }
        let reports = state.corrupt();
        assert_eq!(reports.len(), CORRUPT_REPORTS);
        assert!(!reports.contains(&first), "the oldest report is dropped first");
    }

    #[test]
    fn paths_stay_under_the_root() {
        let state = NodeState::new(PathBuf::from("/srv/ferry"), b"k");
        let id: FileId = "0b6f1c1e-2f4e-4b7a-9d0e-1a2b3c4d5e6f".parse().expect("uuid");
        assert_eq!(state.path_of(id), PathBuf::from("/srv/ferry/0b/0b6f1c1e-2f4e-4b7a-9d0e-1a2b3c4d5e6f"));
        let staging = NodeState::with_options(
            PathBuf::from("/srv/staging"),
            b"k",
            &Options { layout: Layout::Staging, ..Options::default() },
        );
        assert_eq!(staging.path_of(id), PathBuf::from("/srv/staging/0b6f1c1e-2f4e-4b7a-9d0e-1a2b3c4d5e6f/data"));
    }
}
