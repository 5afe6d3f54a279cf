//! Writing chunk bytes to the staging volume. Each upload has one file,
//! `<staging>/<id>/data`, and every chunk is written in place at its offset, so the
//! completed upload needs no assembly copy. Only the writer holding the upload's lease
//! (see `routes::upload`) writes, which makes two PUTs for one offset take turns. A
//! chunk's bytes are fsynced before the transaction that records it commits; bytes of
//! a chunk that is never recorded lie beyond the recorded offset and are overwritten
//! by the chunk that is. A new upload's directory entries are fsynced with its first chunk.
//!
//! A chunk's bytes are copied, as they arrive, into buffers of [`BLOCK_BYTES`] taken
//! from a small pool of reused ones, and each full buffer goes to two blocking threads
//! through channels: one advances the upload's md5, the other the sha256 and writes the
//! bytes. md5 is inherently serial and the costliest step per byte (about twice sha256
//! with SHA-NI, four times the copy into the page cache), so it gets a thread of its
//! own, and the chunk does not wait for it: the chunk is done once its bytes are
//! durable and its sha256 advanced, while its md5 goes on behind it, chained to the
//! upload's next chunk ([`super::running_md5`]). The network side (hyper, on the
//! runtime) overlaps both. Neither disk latency nor hashing stalls the runtime.
//!
//! The copy (of memory the CPU just wrote, so cheap) buys three things over handing on
//! the network's frames themselves: the threads wake once per buffer instead of once per
//! frame (hyper's and multer's frames are often a few KiB to 64 KiB); the frame's memory
//! goes back to hyper or multer at once, so they reuse their buffers instead of taking
//! fresh ones while the threads still hold the old (perf: page faults and the zeroing of
//! fresh pages were 5-6 % of a multipart upload's samples); and the pool's buffers stay
//! mapped between uploads, so their pages are faulted in once, not per frame.
//!
//! Memory is bounded in buffers: one upload's chunks hold at most
//! [`running_md5::UPLOAD_BLOCKS`] of them (filled, being filled, or waiting for the
//! md5, which is how far the md5 may lag) and all uploads together [`PROCESS_BLOCKS`],
//! so however many uploads run at once the bytes read off the network and not yet on
//! disk and hashed stay under the process budget, and a request that finds it spent
//! simply reads more slowly (TCP back-pressure on its client). The pool keeps at most
//! [`KEPT_BLOCKS`] free buffers for the next request and frees the rest.
//!
//! Writeback is started every [`WRITEBACK_STEP`] bytes (`sync_file_range`), so the
//! fdatasync that ends the chunk finds most of it on its way to the disk already
//! instead of starting the whole chunk's I/O after its last byte.
//!
//! Once a chunk of at least [`WRITEBACK_STEP`] bytes is on disk its pages are dropped
//! from the page cache ([`DROP_BEHIND_MIN`]), after the chunk's outcome has gone to the
//! request (so not while its client waits): they are clean after the fdatasync, and the
//! next chunk's write then reuses the pages just freed instead of taking fresh ones.
//! Fresh memory is what a buffered write pays most for on a VM (the host backs a page
//! on its first touch; perf: the copy into new page-cache pages took as many samples as
//! md5, 33 %, against 2 % for the same bytes' copy out of the socket), and a staging
//! copy is read at most once more (by the replication, from the disk). Small uploads
//! stay cached for their replicas, which follow within milliseconds.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use ferry_shared::hashing::{RunningDigest, Sha256Part};
use ferry_shared::types::FileId;
use ferry_store::uploads::DigestState;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::running_md5::{self, Chain, Md5Receiver, PendingMd5, StoredMd5};
pub use ferry_shared::staging::{data_path, upload_dir};

/// Bytes in one buffer: the unit handed to the two threads. Large enough that a thread
/// wakes a few thousand times per GiB, small enough that the sha256 and write left to
/// do after a chunk's last byte arrives is a fraction of a millisecond.
pub const BLOCK_BYTES: usize = 256 << 10;

/// Buffers all uploads together may hold (16 MiB: four uploads with their md5 lagging
/// by a whole budget each; more uploads at once share it). The bench's burst (32
/// clients each sending a 64 MiB chunk at once) holds ferry-api under 100 MiB of RSS
/// with this; at twice as many it measured 112 (docs/PROFILE-INGEST.md, fifth step).
const PROCESS_BLOCKS: usize = 64;

/// Free buffers the pool keeps mapped for the next request (4 MiB: one upload's whole
/// budget, so one upload at full speed takes no fresh buffer); a buffer freed beyond
/// that goes back to the allocator.
const KEPT_BLOCKS: usize = 16;

/// The process-wide budget behind [`PROCESS_BLOCKS`] and the free buffers.
struct Pool {
    budget: Arc<Semaphore>,
    free: Mutex<Vec<Box<[u8]>>>,
}

static POOL: LazyLock<Pool> =
    LazyLock::new(|| Pool { budget: Arc::new(Semaphore::new(PROCESS_BLOCKS)), free: Mutex::new(Vec::new()) });

/// A buffer on its way through the two threads, holding its share of both budgets (its
/// upload's and the process's) until the last of them drops it; it then goes back to the
/// pool.
struct Block {
    bytes: Option<Box<[u8]>>,
    len: usize,
    _upload: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

impl Block {
    fn filled(&self) -> &[u8] {
        self.bytes.as_deref().map_or(&[], |bytes| &bytes[..self.len])
    }

    /// Copies as much of `bytes` as fits; returns how much that was.
    fn fill(&mut self, bytes: &[u8]) -> usize {
        let Some(buffer) = self.bytes.as_deref_mut() else { return 0 };
        let n = bytes.len().min(buffer.len() - self.len);
        buffer[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    fn is_full(&self) -> bool {
        self.len == self.bytes.as_deref().map_or(0, <[u8]>::len)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // Back to the pool before the permits go (fields drop after this), so whoever
        // the released permit wakes finds the buffer free.
        if let Some(bytes) = self.bytes.take() {
            let mut free = POOL.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if free.len() < KEPT_BLOCKS {
                free.push(bytes);
            }
        }
    }
}

/// Bytes written between two writeback kicks.
const WRITEBACK_STEP: u64 = 2 << 20;

/// Smallest chunk whose pages leave the page cache once it is durable (see the module
/// comment).
const DROP_BEHIND_MIN: u64 = WRITEBACK_STEP;

/// Where a chunk's digests start: the upload's sha256 at the chunk's offset and its md5
/// chain ([`running_md5`]).
pub struct DigestStart {
    sha256: Sha256Part,
    chain: Chain,
}

impl DigestStart {
    /// A new upload's first chunk, at offset 0.
    pub fn fresh() -> DigestStart {
        DigestStart { sha256: Sha256Part::default(), chain: Chain::fresh() }
    }

    /// The chunk at `offset` of upload `id`, from the states stored with its row
    /// ([`stored_states`]; no sha256 yet is the empty one).
    ///
    /// # Errors
    /// A stored state that does not parse, or an md5 state beyond `offset`.
    pub fn resume(id: FileId, offset: u64, stored: &DigestState) -> std::io::Result<DigestStart> {
        let (sha256, md5) = stored_states(stored)?;
        Ok(DigestStart { sha256: sha256.unwrap_or_default(), chain: Chain::at(id, offset, md5)? })
    }
}

/// The digest states stored with an upload's row, parsed: the sha256 of every byte
/// recorded (`None` for an upload without one yet) and the md5 state with the bytes it
/// covers.
///
/// # Errors
/// A state that does not parse.
pub fn stored_states(stored: &DigestState) -> std::io::Result<(Option<Sha256Part>, StoredMd5)> {
    let sha256 =
        stored.sha256_state.as_deref().map(Sha256Part::from_bytes).transpose().map_err(std::io::Error::other)?;
    let md5 = StoredMd5::from_row(stored.md5_state.as_deref(), stored.md5_offset.bytes())?;
    Ok((sha256, md5))
}

/// A chunk on disk (fdatasynced): its sha256 advanced over it and its md5 on its way.
pub struct Written {
    sha256: Sha256Part,
    md5: PendingMd5,
    chain: Chain,
}

/// The digest states to record with a chunk.
pub struct States {
    /// The sha256 of the upload's bytes up to the chunk's end.
    pub sha256: Vec<u8>,
    /// The newest md5 state known now and how many bytes it covers (at or before the
    /// chunk's end); `None`: none newer than the row's.
    pub md5: Option<(Vec<u8>, u64)>,
}

impl Written {
    /// The upload's md5 and sha256 up to the chunk's end, once its md5 thread (and the
    /// chain before it) is done.
    ///
    /// # Errors
    /// The md5 thread's, see [`PendingMd5::wait`].
    pub async fn digest(&self) -> std::io::Result<RunningDigest> {
        Ok(RunningDigest::join(self.md5.wait().await?, self.sha256.clone()))
    }

    /// What to record with the chunk now, without waiting for its md5.
    pub fn states(&self) -> States {
        let md5 = match self.md5.now() {
            Some(md5) => Some(StoredMd5 { md5, at: self.md5.at() }),
            None => self.chain.known(),
        };
        States { sha256: self.sha256.to_bytes(), md5: md5.map(|m| (m.md5.to_bytes(), m.at)) }
    }

    /// The chunk is recorded as upload `id`'s: its next chunk starts from this one's md5.
    pub fn recorded(&self, id: FileId) {
        self.chain.extend(id, self.md5.clone());
    }
}

/// Writes one chunk at `offset` of an upload's data file, hashing it on the way
/// (continuing the upload's sha256 and md5).
pub struct ChunkWriter {
    budget: Arc<Semaphore>,
    /// The buffer being filled.
    current: Option<Block>,
    md5_tx: mpsc::UnboundedSender<Arc<Block>>,
    write_tx: mpsc::UnboundedSender<Arc<Block>>,
    md5: Md5Receiver,
    chain: Chain,
    /// The write thread's outcome (the sha256 and where the chunk ends), sent once the
    /// chunk is durable (before it drops the chunk's pages, which nobody waits for).
    written: oneshot::Receiver<std::io::Result<(Sha256Part, u64)>>,
}

impl ChunkWriter {
    /// Opens (creating if needed) the data file in `dir` for writing at `start`'s
    /// offset.
    ///
    /// A new upload's directory and data file are made durable with the chunk: after the
    /// fdatasync, the directory and its parent are fsynced too (fsync(2) of a new file
    /// does not persist its name), so a recorded first chunk survives a power loss.
    pub async fn open(dir: &Path, start: DigestStart) -> std::io::Result<ChunkWriter> {
        let fresh = match tokio::fs::create_dir(dir).await {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(_) => {
                tokio::fs::create_dir_all(dir).await?;
                true
            }
        };
        let dir = dir.to_owned();
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(data_path(&dir))
            .await?
            .into_std()
            .await;
        let DigestStart { mut sha256, chain } = start;
        let offset = chain.offset();
        // Unbounded channels, bounded by the blocks' budgets: a block exists only with
        // its permits.
        let (md5_tx, mut md5_rx) = mpsc::unbounded_channel::<Arc<Block>>();
        let (write_tx, mut write_rx) = mpsc::unbounded_channel::<Arc<Block>>();
        let (md5_sender, md5) = running_md5::channel();
        let (md5_chain, data) = (chain.clone(), data_path(&dir));
        tokio::task::spawn_blocking(move || {
            let outcome = md5_chain.start_blocking(&data).map(|mut md5| {
                while let Some(block) = md5_rx.blocking_recv() {
                    md5.update(block.filled());
                }
                md5
            });
            md5_sender.send(outcome);
        });
        let (written_tx, written) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let mut at = offset;
            let durable = (|| {
                let mut kicked = offset;
                while let Some(block) = write_rx.blocking_recv() {
                    let bytes = block.filled();
                    sha256.update(bytes);
                    file.write_all_at(bytes, at)?;
                    at += bytes.len() as u64;
                    if at - kicked >= WRITEBACK_STEP {
                        start_writeback(&file, kicked, at - kicked);
                        kicked = at;
                    }
                }
                file.sync_data()?;
                if fresh {
                    ferry_shared::staging::sync_dir(&dir)?;
                    if let Some(parent) = dir.parent() {
                        ferry_shared::staging::sync_dir(parent)?;
                    }
                }
                Ok(sha256)
            })();
            let dropping = durable.is_ok() && at - offset >= DROP_BEHIND_MIN;
            // The chunk is answered from here on; the drop (up to a millisecond for 8
            // MiB, strace) runs meanwhile instead of in every chunk's critical path.
            let _ = written_tx.send(durable.map(|sha256| (sha256, at)));
            if dropping {
                drop_behind(&file, offset, at - offset);
            }
        });
        let budget = chain.budget().clone();
        Ok(ChunkWriter { budget, current: None, md5_tx, write_tx, md5, chain, written })
    }

    /// Copies `bytes` into the writer's buffers, handing each full one to the two
    /// threads; waits while the request's or the process's buffers are all in use.
    pub async fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let block = match &mut self.current {
                Some(block) => block,
                None => self.current.insert(self.take_block().await?),
            };
            let n = block.fill(bytes);
            bytes = &bytes[n..];
            if block.is_full() {
                self.send_current().await?;
            }
        }
        Ok(())
    }

    /// A free buffer, once both budgets have room for one.
    async fn take_block(&self) -> std::io::Result<Block> {
        let closed = |_| std::io::Error::other("upload buffer closed");
        let upload = self.budget.clone().acquire_owned().await.map_err(closed)?;
        let process = POOL.budget.clone().acquire_owned().await.map_err(closed)?;
        let kept = POOL.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let bytes = kept.unwrap_or_else(|| vec![0u8; BLOCK_BYTES].into_boxed_slice());
        Ok(Block { bytes: Some(bytes), len: 0, _upload: upload, _process: process })
    }

    /// Hands the buffer being filled (if it holds anything) to both threads.
    async fn send_current(&mut self) -> std::io::Result<()> {
        let Some(block) = self.current.take().filter(|block| block.len > 0) else { return Ok(()) };
        let block = Arc::new(block);
        // A closed channel means the thread stopped: the writer's error comes out of
        // `finish`, the md5 thread's out of the chunk's md5.
        let sent = self.md5_tx.send(block.clone()).is_ok() && self.write_tx.send(block).is_ok();
        if !sent {
            return Err(std::io::Error::other("staging writer stopped"));
        }
        Ok(())
    }

    /// Waits for every byte to be on disk (fdatasync) and returns the chunk's sha256,
    /// with its md5 still on its way.
    pub async fn finish(mut self) -> std::io::Result<Written> {
        // A stopped writer shows its own error below.
        let _ = self.send_current().await;
        let ChunkWriter { md5_tx, write_tx, md5, chain, written, .. } = self;
        drop((md5_tx, write_tx));
        // No outcome means the thread panicked.
        let (sha256, end) = written.await.map_err(|_| std::io::Error::other("staging writer stopped"))??;
        Ok(Written { sha256, md5: md5.covering(end), chain })
    }
}

/// Drops the (clean, just fsynced) pages of `len` bytes at `offset` from the page
/// cache. Advice only: a failure changes nothing but memory use, so it is ignored.
fn drop_behind(file: &File, offset: u64, len: u64) {
    if let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) {
        let _ = nix::fcntl::posix_fadvise(
            file.as_raw_fd(),
            offset,
            len,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` back to the disk, without
/// waiting for it. Only an optimisation: the final fdatasync is what makes the chunk
/// durable, so a failure here is ignored (it shows again there if it matters). The one
/// `unsafe` in the crate: neither std nor nix wraps `sync_file_range(2)`.
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: plain syscall on a file descriptor we own for the duration of the call;
    // no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of every size around a buffer's, written at an offset after earlier bytes:
    /// the file holds exactly the bytes sent, and the digests continued over them (the
    /// md5 through the upload's chain, the sha256 from its stored state) equal one pass
    /// over the whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_of_any_size_land_in_place_with_the_running_digest() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let dir = scratch.path().join("upload");
        let id = FileId::new();
        let head: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let body: Vec<u8> = (0..3 * BLOCK_BYTES as u32 + 12_345).map(|i| (i * 7 % 253) as u8).collect();

        let mut first = ChunkWriter::open(&dir, DigestStart::fresh()).await.expect("open");
        first.write(&head).await.expect("write");
        let first = first.finish().await.expect("finish");
        first.recorded(id);
        let states = first.states();

        let stored = DigestState { sha256_state: Some(states.sha256), ..Default::default() };
        let start = DigestStart::resume(id, head.len() as u64, &stored).expect("resume");
        let mut writer = ChunkWriter::open(&dir, start).await.expect("open");
        let sizes = [1, 7, BLOCK_BYTES - 8, BLOCK_BYTES, 1, BLOCK_BYTES + 1, 65_536];
        let mut rest = body.as_slice();
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (frame, more) = rest.split_at((*size).min(rest.len()));
            writer.write(frame).await.expect("write");
            rest = more;
        }
        let written = writer.finish().await.expect("finish");
        let digest = written.digest().await.expect("digest");

        let whole = [head.as_slice(), &body].concat();
        assert_eq!(std::fs::read(data_path(&dir)).expect("data file"), whole);
        let mut one_pass = RunningDigest::default();
        one_pass.update(&whole);
        assert_eq!(digest.finalize(), one_pass.finalize());
        let md5 = written.states().md5.expect("known once waited for");
        assert_eq!(md5.1, whole.len() as u64);
        running_md5::end(id);
    }
}
