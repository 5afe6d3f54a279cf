//! Writing chunk bytes to the staging volume. Each upload has one file,
//! `<staging>/<id>/data`, and every chunk is written in place at its offset, so the
//! completed upload needs no assembly copy. Only the writer holding the upload's lease
//! (see `routes::upload`) writes, which makes two PUTs for one offset take turns. A
//! chunk's bytes are fsynced before the transaction that records it commits; bytes of
//! a chunk that is never recorded lie beyond the recorded offset and are overwritten
//! by the chunk that is. A new upload's directory entries are fsynced with its first chunk.
//!
//! A chunk's frames go, as they arrive, to two blocking threads through bounded
//! channels: one advances the md5, the other the sha256 and writes the bytes. md5 is
//! inherently serial and the costliest step per byte (about twice sha256 with SHA-NI,
//! four times the copy into the page cache), so it gets a thread of its own and the
//! chunk's critical path is the md5 alone; the network side (hyper, on the runtime)
//! overlaps both. Neither disk latency nor hashing stalls the runtime.
//!
//! Memory is bounded in bytes, not frames: a frame holds permits from a per-request
//! budget ([`REQUEST_BUFFER`]) and a process-wide one ([`PROCESS_BUFFER`]) until both
//! threads are done with it, so however many uploads run at once the bytes read off
//! the network and not yet on disk stay under the process budget, and a request that
//! finds it spent simply reads more slowly (TCP back-pressure on its client).
//!
//! Writeback is started every [`WRITEBACK_STEP`] bytes (`sync_file_range`), so the
//! fdatasync that ends the chunk finds most of it on its way to the disk already
//! instead of starting the whole chunk's I/O after its last byte.
//!
//! Once a chunk of at least [`WRITEBACK_STEP`] bytes is on disk its pages are dropped
//! from the page cache ([`DROP_BEHIND_MIN`]): they are clean after the fdatasync, and the
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
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use ferry_shared::hashing::{Md5Part, RunningDigest, Sha256Part};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

pub use ferry_shared::staging::{data_path, upload_dir};

/// Bytes one request may have read and not yet hashed and written: enough for a few
/// of hyper's frames (at most its ~400 KiB read buffer each) so the two threads never
/// starve while the next frame is read.
const REQUEST_BUFFER: u32 = 1 << 20;

/// Bytes all requests together may hold that way (so 32 uploads at once hold no more
/// than 16 at full speed would).
const PROCESS_BUFFER: u32 = 16 << 20;

/// The process-wide budget behind [`PROCESS_BUFFER`].
static PROCESS_BUDGET: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(PROCESS_BUFFER as usize)));

/// Channel slots per thread; the byte budgets are what bound memory, this only needs
/// to exceed the frames that fit in [`REQUEST_BUFFER`].
const QUEUE_FRAMES: usize = 64;

/// A frame on its way to the two threads, holding its share of both budgets until
/// the last of them drops it.
struct Frame {
    bytes: Bytes,
    _request: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

/// Bytes written between two writeback kicks.
const WRITEBACK_STEP: u64 = 2 << 20;

/// Smallest chunk whose pages leave the page cache once it is durable (see the module
/// comment).
const DROP_BEHIND_MIN: u64 = WRITEBACK_STEP;

/// Writes one chunk at `offset` of an upload's data file, hashing it on the way
/// (continuing the upload's running digest).
pub struct ChunkWriter {
    budget: Arc<Semaphore>,
    md5_tx: mpsc::Sender<Arc<Frame>>,
    write_tx: mpsc::Sender<Arc<Frame>>,
    md5: JoinHandle<Md5Part>,
    write: JoinHandle<std::io::Result<Sha256Part>>,
}

impl ChunkWriter {
    /// Opens (creating if needed) the data file in `dir` for writing at `offset`.
    ///
    /// A new upload's directory and data file are made durable with the chunk: after the
    /// fdatasync, the directory and its parent are fsynced too (fsync(2) of a new file
    /// does not persist its name), so a recorded first chunk survives a power loss.
    pub async fn open(dir: &Path, offset: u64, digest: RunningDigest) -> std::io::Result<ChunkWriter> {
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
        let (mut md5, mut sha256) = digest.split();
        let (md5_tx, mut md5_rx) = mpsc::channel::<Arc<Frame>>(QUEUE_FRAMES);
        let (write_tx, mut write_rx) = mpsc::channel::<Arc<Frame>>(QUEUE_FRAMES);
        let md5 = tokio::task::spawn_blocking(move || {
            while let Some(frame) = md5_rx.blocking_recv() {
                md5.update(&frame.bytes);
            }
            md5
        });
        let write = tokio::task::spawn_blocking(move || {
            let mut at = offset;
            let mut kicked = offset;
            while let Some(frame) = write_rx.blocking_recv() {
                sha256.update(&frame.bytes);
                file.write_all_at(&frame.bytes, at)?;
                at += frame.bytes.len() as u64;
                if at - kicked >= WRITEBACK_STEP {
                    start_writeback(&file, kicked, at - kicked);
                    kicked = at;
                }
            }
            file.sync_data()?;
            if at - offset >= DROP_BEHIND_MIN {
                drop_behind(&file, offset, at - offset);
            }
            if fresh {
                ferry_shared::staging::sync_dir(&dir)?;
                if let Some(parent) = dir.parent() {
                    ferry_shared::staging::sync_dir(parent)?;
                }
            }
            Ok(sha256)
        });
        let budget = Arc::new(Semaphore::new(REQUEST_BUFFER as usize));
        Ok(ChunkWriter { budget, md5_tx, write_tx, md5, write })
    }

    /// Hands `bytes` to the two threads once the budgets have room for them (a frame
    /// larger than a budget takes all of it).
    pub async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        let closed = |_| std::io::Error::other("upload buffer closed");
        let size = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let request = self.budget.clone().acquire_many_owned(size.min(REQUEST_BUFFER)).await.map_err(closed)?;
        let process = PROCESS_BUDGET.clone().acquire_many_owned(size.min(PROCESS_BUFFER)).await.map_err(closed)?;
        let frame = Arc::new(Frame { bytes, _request: request, _process: process });
        // A closed channel means the thread stopped: the writer's error comes out of
        // `finish` (the md5 thread only stops when its channel closes).
        let sent = self.md5_tx.send(frame.clone()).await.is_ok() && self.write_tx.send(frame).await.is_ok();
        if !sent {
            return Err(std::io::Error::other("staging writer stopped"));
        }
        Ok(())
    }

    /// Waits for every byte to be on disk (fdatasync) and returns the digest advanced
    /// over the chunk.
    pub async fn finish(self) -> std::io::Result<RunningDigest> {
        let ChunkWriter { md5_tx, write_tx, md5, write, .. } = self;
        drop((md5_tx, write_tx));
        let sha256 = write.await.map_err(std::io::Error::other)??;
        let md5 = md5.await.map_err(std::io::Error::other)?;
        Ok(RunningDigest::join(md5, sha256))
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
