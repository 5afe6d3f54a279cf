//! An upload's md5, advanced behind its chunks instead of within each.
//!
//! md5 is serial and the costliest step per byte (one core at about 730 MiB/s here,
//! docs/PROFILE-INGEST.md). Hashed within each chunk, it made every chunk's answer wait
//! for the md5 of the chunk's last bytes, and it idled while the client read and sent
//! the next chunk. Here each chunk's md5 runs on a blocking thread of its own
//! (`staging::ChunkWriter`) that starts from the md5 of the bytes before the chunk and
//! ends with the md5 after it, and the chunk is answered once its bytes are durable and
//! recorded, without waiting for it. The chunks of one upload form a chain in this
//! process: the next chunk's md5 starts from the previous one's result, whenever that
//! comes, so the md5 keeps working between chunks.
//!
//! Only a recorded chunk extends the chain ([`Chain::extend`]). The md5 of a refused or
//! broken chunk is never used: the chain stays where it was, and the retry starts from
//! there. So the md5 never covers bytes that are not the upload's (bytes below the
//! recorded offset never change: a chunk is only ever written at the recorded offset).
//!
//! The upload's row records, with each chunk, the newest md5 state known at that moment
//! and the offset it covers (`uploads.md5_offset`: behind the recorded offset while the
//! chain works). A chunk that finds no usable chain here (its upload's earlier chunks
//! went to another API process, this process restarted, or the chain's thread failed)
//! starts from that stored state and first hashes the bytes between it and the chunk
//! back from the staging file, where they are durable: each chunk was fdatasynced before
//! it was recorded. Whatever needs the whole md5 (a completion) waits for the chain
//! ([`PendingMd5::wait`]) or catches up the same way ([`md5_of_upload`]), so nothing
//! Ferry checks or records at completion changes.
//!
//! Memory: a chunk's buffers stay with its md5 thread until they are hashed, and they
//! count against the upload's buffer budget ([`Chain::budget`]) and the process's, so
//! how far the md5 may lag is bounded in bytes (`staging::UPLOAD_BLOCKS`): a client that
//! sends faster than md5 runs is slowed to it once the lag reaches the budget.
//! The chains themselves are small (an md5 state each) and dropped with the upload's
//! completion or termination, or after [`IDLE`] without a chunk.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use ferry_shared::hashing::Md5Part;
use ferry_shared::types::FileId;
use tokio::sync::{watch, Semaphore};

/// What a chunk's md5 thread ends with.
type Outcome = Result<Md5Part, Arc<io::Error>>;

/// The md5 of an upload's first [`PendingMd5::at`] bytes, known now or once the thread
/// that computes it is done. Cloning shares the one result.
#[derive(Clone)]
pub struct PendingMd5 {
    at: u64,
    result: watch::Receiver<Option<Outcome>>,
}

/// Where a [`PendingMd5`]'s result comes from.
pub struct Md5Sender(watch::Sender<Option<Outcome>>);

impl Md5Sender {
    /// Hands over the outcome (a thread that panics drops the sender: the waiters see
    /// an error).
    pub fn send(self, outcome: io::Result<Md5Part>) {
        self.0.send_replace(Some(outcome.map_err(Arc::new)));
    }
}

/// The receiving end of an md5 being computed, before it is known how many bytes it
/// will cover ([`Md5Receiver::covering`]).
pub struct Md5Receiver(watch::Receiver<Option<Outcome>>);

/// A channel for one md5 thread's outcome.
pub fn channel() -> (Md5Sender, Md5Receiver) {
    let (tx, rx) = watch::channel(None);
    (Md5Sender(tx), Md5Receiver(rx))
}

impl Md5Receiver {
    /// The md5 of the upload's first `at` bytes, as this channel will carry it.
    pub fn covering(self, at: u64) -> PendingMd5 {
        PendingMd5 { at, result: self.0 }
    }
}

impl PendingMd5 {
    /// An md5 to be computed by whoever holds the returned sender.
    pub fn new(at: u64) -> (PendingMd5, Md5Sender) {
        let (sender, receiver) = channel();
        (receiver.covering(at), sender)
    }

    /// An md5 known already.
    fn known(at: u64, md5: Md5Part) -> PendingMd5 {
        let (pending, sender) = PendingMd5::new(at);
        sender.send(Ok(md5));
        pending
    }

    /// How many of the upload's bytes it covers.
    pub fn at(&self) -> u64 {
        self.at
    }

    /// Waits for the md5.
    ///
    /// # Errors
    /// The thread's error (reading the staging file back), or "md5 thread stopped" when
    /// it ended without an outcome (a panic).
    pub async fn wait(&self) -> io::Result<Md5Part> {
        let mut result = self.result.clone();
        let outcome = result.wait_for(Option::is_some).await.map(|outcome| outcome.clone());
        match outcome {
            Ok(Some(Ok(md5))) => Ok(md5),
            Ok(Some(Err(e))) => Err(io::Error::new(e.kind(), e.to_string())),
            Ok(None) | Err(_) => Err(io::Error::other("md5 thread stopped")),
        }
    }

    /// [`PendingMd5::wait`] from a blocking thread.
    pub fn wait_blocking(&self) -> io::Result<Md5Part> {
        futures::executor::block_on(self.wait())
    }

    /// The md5 if it is known by now.
    pub fn now(&self) -> Option<Md5Part> {
        match &*self.result.borrow() {
            Some(Ok(md5)) => Some(md5.clone()),
            _ => None,
        }
    }

    /// Its thread ended without an md5.
    fn failed(&self) -> bool {
        match &*self.result.borrow() {
            Some(outcome) => outcome.is_err(),
            None => self.result.has_changed().is_err(),
        }
    }
}

/// An md5 state stored with the upload's row and the bytes it covers (the start of the
/// upload: the empty md5 at 0).
#[derive(Clone, Default)]
pub struct StoredMd5 {
    pub md5: Md5Part,
    pub at: u64,
}

impl StoredMd5 {
    /// From the row's `md5_state` and `md5_offset` (no state: the empty md5 at 0).
    ///
    /// # Errors
    /// A state that does not parse.
    pub fn from_row(state: Option<&[u8]>, at: u64) -> io::Result<StoredMd5> {
        match state {
            Some(state) => Ok(StoredMd5 { md5: Md5Part::from_bytes(state).map_err(io::Error::other)?, at }),
            None => Ok(StoredMd5::default()),
        }
    }
}

/// Buffers of one upload that its chunks' writes and md5 threads may hold at once.
///
/// 16 (4 MiB, about 5 ms of md5 here): in interleaved runs 16, 24 and 32 ingested alike
/// (docs/PROFILE-INGEST.md, fifth step), so the smallest.
pub const UPLOAD_BLOCKS: usize = 16;

/// How long a chain is kept without a chunk (then a next chunk catches up from the row).
pub const IDLE: Duration = Duration::from_secs(900);

/// Where a chunk's md5 starts: from the chain's last recorded chunk when this process
/// has it, else from the stored state, hashing the bytes in between back from the
/// staging file.
#[derive(Clone)]
pub struct Chain {
    /// The upload's (`None` for a new upload's first chunk, which starts from nothing).
    id: Option<FileId>,
    /// The chunk's offset.
    offset: u64,
    stored: StoredMd5,
    previous: Option<PendingMd5>,
    budget: Arc<Semaphore>,
}

/// One upload's chain in this process.
struct Link {
    /// The md5s after the upload's recorded chunks (or caught up to a recorded offset),
    /// oldest first, at most [`KEPT_LINKS`]: the last is where the next chunk starts,
    /// the newest one known is what the row gets. When the md5 lags by several small
    /// chunks, the one before the chunk is not known yet but an older one is, so the
    /// row's state keeps up with the lag instead of waiting for a chunk whose previous
    /// md5 happens to be done.
    recorded: VecDeque<PendingMd5>,
    budget: Arc<Semaphore>,
    touched: Instant,
}

/// Recorded md5s kept per chain (the md5 lags by at most [`UPLOAD_BLOCKS`] buffers, so
/// by fewer chunks than this unless they are under 64 KiB, which come too slowly to
/// outrun the md5).
const KEPT_LINKS: usize = 64;

impl Link {
    fn new(first: PendingMd5, budget: Arc<Semaphore>) -> Link {
        Link { recorded: VecDeque::from([first]), budget, touched: Instant::now() }
    }

    fn push(&mut self, md5: PendingMd5) {
        self.recorded.push_back(md5);
        if self.recorded.len() > KEPT_LINKS {
            self.recorded.pop_front();
        }
        self.touched = Instant::now();
    }

    /// The newest md5 known now; the older ones it supersedes are dropped.
    fn known(&mut self) -> Option<StoredMd5> {
        let newest = self.recorded.iter().rposition(|p| p.now().is_some())?;
        self.recorded.drain(..newest);
        let pending = self.recorded.front()?;
        pending.now().map(|md5| StoredMd5 { md5, at: pending.at })
    }
}

static CHAINS: LazyLock<Mutex<HashMap<FileId, Link>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn chains() -> std::sync::MutexGuard<'static, HashMap<FileId, Link>> {
    CHAINS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Chain {
    /// A new upload's: its first chunk starts at 0 from the empty md5.
    pub fn fresh() -> Chain {
        Chain {
            id: None,
            offset: 0,
            stored: StoredMd5::default(),
            previous: None,
            budget: Arc::new(Semaphore::new(UPLOAD_BLOCKS)),
        }
    }

    /// The chain of upload `id` for a chunk at `offset` (under the upload's writer
    /// lease), given the md5 state stored with its row.
    ///
    /// # Errors
    /// A stored state beyond `offset` (the row is inconsistent).
    pub fn at(id: FileId, offset: u64, stored: StoredMd5) -> io::Result<Chain> {
        if stored.at > offset {
            return Err(io::Error::other(format!("stored md5 covers {} bytes, beyond offset {offset}", stored.at)));
        }
        let mut chains = chains();
        let link = chains.get_mut(&id);
        let (previous, budget) = match link {
            Some(link) => {
                link.touched = Instant::now();
                let last = link.recorded.back().filter(|last| last.at == offset && !last.failed());
                (last.cloned(), link.budget.clone())
            }
            None => (None, Arc::new(Semaphore::new(UPLOAD_BLOCKS))),
        };
        Ok(Chain { id: Some(id), offset, stored, previous, budget })
    }

    /// The upload's buffer budget, shared by its chunks in this process.
    pub fn budget(&self) -> &Arc<Semaphore> {
        &self.budget
    }

    /// The chunk's offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The md5 at the chunk's offset, from a blocking thread: waits for the previous
    /// chunk's, or hashes the staging `data` file from the stored state on.
    ///
    /// # Errors
    /// Reading the data file (short: `UnexpectedEof`).
    pub fn start_blocking(&self, data: &Path) -> io::Result<Md5Part> {
        if let Some(md5) = self.previous.as_ref().and_then(|p| p.wait_blocking().ok()) {
            return Ok(md5);
        }
        let md5 = catch_up(&self.stored, self.offset, data)?;
        if let Some(id) = self.id {
            // The bytes up to the offset are recorded, so this md5 is the upload's
            // whatever becomes of the chunk: a retry after a failed chunk starts here
            // instead of catching up again.
            self.remember(id, PendingMd5::known(self.offset, md5.clone()));
        }
        Ok(md5)
    }

    /// `md5` as the chain's end when it is newer than what the chain has.
    fn remember(&self, id: FileId, md5: PendingMd5) {
        self.attach(id, md5, |last, md5| last.at < md5.at || last.failed());
    }

    /// `md5` as the end of upload `id`'s chain (a new one with this chunk's budget), if
    /// the chain has no end yet or `replaces(end, md5)`.
    fn attach(&self, id: FileId, md5: PendingMd5, replaces: impl Fn(&PendingMd5, &PendingMd5) -> bool) {
        let mut chains = chains();
        if chains.len() >= MAX_CHAINS {
            chains.retain(|_, link| link.touched.elapsed() < IDLE);
        }
        match chains.get_mut(&id) {
            Some(link) => {
                if link.recorded.back().is_none_or(|last| replaces(last, &md5)) {
                    link.push(md5);
                }
            }
            None => {
                chains.insert(id, Link::new(md5, self.budget.clone()));
            }
        }
    }

    /// The newest md5 state known now of the upload's recorded bytes, with the bytes it
    /// covers: for the row, which keeps its own when this is not newer.
    pub fn known(&self) -> Option<StoredMd5> {
        chains().get_mut(&self.id?)?.known()
    }

    /// After the chunk was recorded: the upload's next chunk starts from `md5`.
    pub fn extend(&self, id: FileId, md5: PendingMd5) {
        self.attach(id, md5, |_, _| true);
    }
}

/// Chains kept before the idle ones are dropped (each is a few md5 states; the uploads
/// active within [`IDLE`] are bounded by the per-user open-upload cap).
const MAX_CHAINS: usize = 1024;

/// Forgets upload `id`'s chain: it completed or ended.
pub fn end(id: FileId) {
    chains().remove(&id);
}

/// The md5 of upload `id`'s first `offset` bytes (a completion's): the chain's when this
/// process has it, else from the stored state and the staging `data` file.
///
/// # Errors
/// Reading the data file; a stored state beyond `offset`.
pub async fn md5_of_upload(id: FileId, offset: u64, stored: StoredMd5, data: &Path) -> io::Result<Md5Part> {
    let chain = Chain::at(id, offset, stored)?;
    let data = data.to_owned();
    tokio::task::spawn_blocking(move || chain.start_blocking(&data)).await.map_err(io::Error::other)?
}

/// Bytes read back at a time.
const READ_BYTES: usize = 1 << 20;

/// `stored` advanced over the data file's bytes up to `offset`.
fn catch_up(stored: &StoredMd5, offset: u64, data: &Path) -> io::Result<Md5Part> {
    let mut md5 = stored.md5.clone();
    if stored.at == offset {
        return Ok(md5);
    }
    let file = std::fs::File::open(data)?;
    let mut buffer = vec![0u8; READ_BYTES];
    let mut at = stored.at;
    while at < offset {
        let n = usize::try_from(offset - at).unwrap_or(usize::MAX).min(READ_BYTES);
        file.read_exact_at(&mut buffer[..n], at)?;
        md5.update(&buffer[..n]);
        at += n as u64;
    }
    tracing::debug!(from = stored.at, to = offset, "md5 caught up from the staging file");
    Ok(md5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::hashing::{RunningDigest, Sha256Part};

    fn md5_hex(md5: Md5Part) -> String {
        RunningDigest::join(md5, Sha256Part::default()).finalize().0.to_string()
    }

    fn md5_of(bytes: &[u8]) -> String {
        let mut md5 = Md5Part::default();
        md5.update(bytes);
        md5_hex(md5)
    }

    /// No chain here: the md5 starts from the stored state and reads the bytes after it
    /// back from the file; a state beyond the offset is refused.
    #[tokio::test]
    async fn without_a_chain_the_md5_catches_up_from_the_stored_state() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let data = scratch.path().join("data");
        let bytes: Vec<u8> = (0..3 * READ_BYTES as u32 + 777).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&data, &bytes).expect("write");
        let mut stored = StoredMd5::default();
        stored.md5.update(&bytes[..1000]);
        stored.at = 1000;

        let chain = Chain::at(FileId::new(), 2_500_000, stored.clone()).expect("chain");
        let md5 = chain.start_blocking(&data).expect("caught up");
        assert_eq!(md5_hex(md5), md5_of(&bytes[..2_500_000]));

        let whole = md5_of_upload(FileId::new(), bytes.len() as u64, stored.clone(), &data).await.expect("md5");
        assert_eq!(md5_hex(whole), md5_of(&bytes));

        let short = md5_of_upload(FileId::new(), bytes.len() as u64 + 1, stored.clone(), &data).await;
        assert_eq!(short.err().map(|e| e.kind()), Some(io::ErrorKind::UnexpectedEof));
        assert!(Chain::at(FileId::new(), 999, stored).is_err());
    }

    /// A recorded chunk's md5 is where the next chunk starts, before it is even known;
    /// one that failed is not used (the stored state is), and a chain at another offset
    /// is not either. What the row gets is the newest md5 known of recorded bytes, also
    /// when the one just before the chunk is not known yet, and a catch-up is kept for
    /// the next chunk (a retry does not catch up again).
    #[tokio::test]
    async fn the_next_chunk_starts_from_the_recorded_one_and_only_from_it() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let data = scratch.path().join("data");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 253) as u8).collect();
        std::fs::write(&data, &bytes).expect("write");
        let id = FileId::new();
        let md5_to = |n: usize| {
            let mut md5 = Md5Part::default();
            md5.update(&bytes[..n]);
            md5
        };

        // The first chunk, 4000 bytes, recorded while its md5 is still running.
        let (first, sender) = PendingMd5::new(4000);
        Chain::fresh().extend(id, first);
        let chain = Chain::at(id, 4000, StoredMd5::default()).expect("chain");
        assert!(chain.known().is_none(), "not known before its thread ends");
        sender.send(Ok(md5_to(4000)));
        assert_eq!(md5_hex(chain.known().expect("known now").md5), md5_of(&bytes[..4000]));
        assert_eq!(md5_hex(chain.start_blocking(&data).expect("md5")), md5_of(&bytes[..4000]));

        // Two more recorded, the md5 lagging behind both: the row gets the first's.
        let (second, second_sender) = PendingMd5::new(5000);
        chain.extend(id, second);
        let (third, third_sender) = PendingMd5::new(6000);
        chain.extend(id, third);
        let next = Chain::at(id, 6000, StoredMd5::default()).expect("chain");
        assert_eq!(next.known().map(|k| k.at), Some(4000));
        second_sender.send(Ok(md5_to(5000)));
        assert_eq!(next.known().map(|k| k.at), Some(5000));
        third_sender.send(Ok(md5_to(6000)));
        assert_eq!(md5_hex(next.start_blocking(&data).expect("md5")), md5_of(&bytes[..6000]));

        // A chain at another offset is not this chunk's: the file is read instead, and
        // what was caught up is where the next chunk at that offset starts.
        let elsewhere = Chain::at(id, 7000, StoredMd5::default()).expect("chain");
        assert!(elsewhere.previous.is_none());
        assert_eq!(md5_hex(elsewhere.start_blocking(&data).expect("md5")), md5_of(&bytes[..7000]));
        let retry = Chain::at(id, 7000, StoredMd5::default()).expect("chain");
        assert_eq!(retry.previous.as_ref().map(PendingMd5::at), Some(7000), "the catch-up is kept");

        // A chain whose thread failed is passed over.
        let (broken, sender) = PendingMd5::new(8000);
        chain.extend(id, broken);
        sender.send(Err(io::Error::other("disk")));
        let after = Chain::at(id, 8000, StoredMd5::default()).expect("chain");
        assert!(after.previous.is_none());
        assert_eq!(md5_hex(after.start_blocking(&data).expect("md5")), md5_of(&bytes[..8000]));

        end(id);
        assert!(Chain::at(id, 8000, StoredMd5::default()).expect("chain").previous.is_none());
    }
}
