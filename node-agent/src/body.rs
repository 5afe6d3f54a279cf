//! The response body of a download: bytes streamed from the file in bounded steps,
//! optionally hashed on the way out to catch a copy that rotted on disk.
//!
//! Three things overlap for each connection, each on its own thread: hyper sends step
//! `n` from a runtime thread, step `n + 1` is read ahead with `pread` on the blocking
//! pool, and (for a whole-file read being verified) step `n` is hashed on another
//! blocking thread. So a stream runs at the speed of its slowest stage, not of their
//! sum, and the runtime's threads never wait on the disk or the hash.
//!
//! Memory per connection: at most three [`READ_STEP`] buffers (being sent, read ahead,
//! being hashed), all drawn from the node's [`BufferPool`](crate::buffers::BufferPool),
//! which caps the total over all connections. A read ahead is only started when a
//! buffer is free at once, so under memory pressure a stream loses its overlap but
//! never holds back bytes it already has.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use ferry_shared::types::{FileId, Sha256};
use sha2::Digest;
use tokio::task::JoinHandle;

use crate::buffers::Buffer;
use crate::state::{DownloadSlots, NodeState};
use crate::verified::CopyKey;

pub use crate::state::READ_STEP;

/// A whole-file read to check against the checksum the API signed into the link.
pub struct Verify {
    pub expected: Sha256,
    pub id: FileId,
    pub path: PathBuf,
    /// The copy's identity when it was opened: recorded as verified if it matches.
    pub key: CopyKey,
    pub state: Arc<NodeState>,
}

/// Reads `want` bytes at `offset` into `buffer`, on a blocking thread. A file shorter
/// than its size at open (truncated meanwhile) is an error, never a short body padded
/// with stale buffer contents.
pub fn fill(file: &File, mut buffer: Buffer, offset: u64, want: usize) -> io::Result<Bytes> {
    let slice = buffer.as_mut_slice();
    let want = want.min(slice.len());
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut slice[filled..want], offset + filled as u64) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while served")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buffer.freeze(want))
}

/// `count` bytes of `file` from `start`. `first`, if given, is the first step already
/// read (the handler reads it together with opening the file, so a range of up to
/// [`READ_STEP`] costs a single trip to the blocking pool).
///
/// `slots` are held until the body is dropped (sent, or its connection closed).
///
/// With `verify`, the bytes are hashed as they go. The last step is only handed to
/// hyper after the verdict: on a mismatch it is replaced by an error, so the client
/// sees a truncated body instead of a "complete" corrupt file, and the copy is moved
/// aside and reported (see [`withdraw`]).
pub fn stream(
    state: Arc<NodeState>,
    file: File,
    start: u64,
    count: u64,
    first: Option<Bytes>,
    verify: Option<Verify>,
    slots: Option<DownloadSlots>,
) -> Body {
    let first = first.filter(|b| !b.is_empty() && b.len() as u64 <= count);
    let read = first.as_ref().map_or(0, |b| b.len() as u64);
    let pipeline = Pipeline {
        file: Arc::new(file),
        state,
        next: start + read,
        unread: count - read,
        unsent: count,
        ready: first,
        reading: None,
        hashing: verify.map(|verify| Hashing { verify, hasher: Hasher::Idle(sha2::Sha256::new()) }),
        _slots: slots,
    };
    Body::from_stream(futures::stream::unfold(pipeline, Pipeline::step))
}

struct Pipeline {
    file: Arc<File>,
    state: Arc<NodeState>,
    /// Offset of the next read to start, and the bytes not yet asked of the disk.
    next: u64,
    unread: u64,
    /// Bytes not yet handed to hyper.
    unsent: u64,
    /// A step read and not yet sent.
    ready: Option<Bytes>,
    /// The read ahead in flight, if any.
    reading: Option<JoinHandle<io::Result<Bytes>>>,
    hashing: Option<Hashing>,
    /// The client's and the link's download slots, given back when the body is dropped.
    _slots: Option<DownloadSlots>,
}

impl Pipeline {
    async fn step(mut self) -> Option<(io::Result<Bytes>, Pipeline)> {
        if self.unsent == 0 {
            return None;
        }
        match self.advance().await {
            Ok(chunk) => {
                ferry_shared::metrics::BYTES_SERVED.with_label_values(&["node"]).inc_by(chunk.len() as u64);
                Some((Ok(chunk), self))
            }
            // End the stream after the error: hyper closes the connection short of
            // Content-Length and the client knows its copy is incomplete.
            Err(e) => {
                tracing::warn!(error = %e, offset_bytes = self.next, "download aborted");
                self.unsent = 0;
                self.ready = None;
                self.reading = None;
                self.hashing = None;
                Some((Err(e), self))
            }
        }
    }

    /// The next step to send, once it may be sent.
    async fn advance(&mut self) -> io::Result<Bytes> {
        let chunk = match (self.ready.take(), self.reading.take()) {
            (Some(chunk), _) => chunk,
            (None, Some(reading)) => reading.await.map_err(io::Error::other)??,
            (None, None) => {
                let buffer = self.state.buffers().take().await;
                self.start_read(buffer).await.map_err(io::Error::other)??
            }
        };
        // Never more than was promised in Content-Length.
        if chunk.len() as u64 > self.unsent {
            return Err(io::Error::other("read past the end of the response"));
        }
        self.unsent -= chunk.len() as u64;
        // Read the next step while this one is hashed and sent, if a buffer is free.
        if self.unread > 0 {
            if let Some(buffer) = self.state.buffers().try_take() {
                self.reading = Some(self.start_read(buffer));
            }
        }
        if let Some(hashing) = self.hashing.take() {
            self.hashing = hashing.feed(chunk.clone(), self.unsent == 0).await?;
        }
        Ok(chunk)
    }

    /// Starts reading the next step into `buffer` on the blocking pool.
    fn start_read(&mut self, buffer: Buffer) -> JoinHandle<io::Result<Bytes>> {
        let want = self.unread.min(buffer.as_ref().len() as u64);
        let (file, offset) = (self.file.clone(), self.next);
        self.next += want;
        self.unread -= want;
        // `want` is at most a buffer's length, so it fits in usize.
        tokio::task::spawn_blocking(move || fill(&file, buffer, offset, want as usize))
    }
}

/// The running sha256 of a verified read: idle between steps, or busy with one on a
/// blocking thread.
struct Hashing {
    verify: Verify,
    hasher: Hasher,
}

enum Hasher {
    Idle(sha2::Sha256),
    Busy(JoinHandle<sha2::Sha256>),
}

impl Hashing {
    /// Hashes `chunk` on the blocking pool. For every chunk but the last this returns
    /// at once (after the previous chunk's hash finished) and the hash overlaps the
    /// send; for the `last` it waits for the verdict, so the last bytes never leave
    /// before it.
    async fn feed(self, chunk: Bytes, last: bool) -> io::Result<Option<Hashing>> {
        let Hashing { verify, hasher } = self;
        let mut hasher = match hasher {
            Hasher::Idle(hasher) => hasher,
            Hasher::Busy(busy) => busy.await.map_err(io::Error::other)?,
        };
        if !last {
            let busy = tokio::task::spawn_blocking(move || {
                hasher.update(&chunk);
                hasher
            });
            return Ok(Some(Hashing { verify, hasher: Hasher::Busy(busy) }));
        }
        tokio::task::spawn_blocking(move || {
            hasher.update(&chunk);
            let actual: [u8; 32] = hasher.finalize().into();
            if actual == verify.expected.0 {
                verify.state.verified().record(verify.id, verify.key, verify.expected);
                Ok(None)
            } else {
                withdraw(verify);
                Err(io::Error::new(io::ErrorKind::InvalidData, "served copy fails its sha256"))
            }
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Moves a corrupt copy aside (`<id>.corrupt-<unix time>`) so it is never served again,
/// and reports it in `/health` so the monitor marks the replica failed and repair
/// copies the file from a good node. Runs on the blocking pool.
fn withdraw(Verify { id, path, state, .. }: Verify) {
    tracing::error!(file.id = %id, file.path = %path.display(), "served copy does not match its sha256; moving it aside");
    ferry_shared::metrics::CORRUPT_REPLICAS.with_label_values(&["served"]).inc();
    state.verified().forget(id);
    state.report_corrupt(id);
    let aside = path.with_extension(format!("corrupt-{}", chrono::Utc::now().timestamp()));
    if let Err(error) = std::fs::rename(&path, &aside) {
        tracing::error!(%error, file.id = %id, "could not move the corrupt copy aside");
    }
}
