//! Writing chunk bytes to the staging volume. Each upload has one file,
//! `<staging>/<id>/data`, and every chunk is written in place at its offset, so the
//! completed upload needs no assembly copy. Only the writer holding the upload's lease
//! (see `routes::upload`) writes, which makes two PUTs for one offset take turns. A
//! chunk's bytes are fsynced before the transaction that records it commits; bytes of
//! a chunk that is never recorded lie beyond the recorded offset and are overwritten
//! by the chunk that is.
//!
//! The writing and hashing happen on a blocking thread fed through a bounded channel,
//! so neither disk latency nor hashing stalls the runtime, and memory per request is
//! bounded.

use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use ferry_shared::hashing::RunningDigest;
use tokio::sync::mpsc;

pub use ferry_shared::staging::{data_path, upload_dir};

/// Frames buffered between the network and the disk writer thread; with hyper's
/// frames of at most a few hundred KiB this bounds a request's memory.
const WRITE_QUEUE: usize = 4;

/// Writes one chunk at `offset` of an upload's data file, hashing it on the way
/// (continuing the upload's running digest).
pub struct ChunkWriter {
    tx: mpsc::Sender<Bytes>,
    join: tokio::task::JoinHandle<std::io::Result<RunningDigest>>,
}

impl ChunkWriter {
    /// Opens (creating if needed) the data file in `dir` for writing at `offset`.
    pub async fn open(dir: &Path, offset: u64, digest: RunningDigest) -> std::io::Result<ChunkWriter> {
        tokio::fs::create_dir_all(dir).await?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(data_path(dir))
            .await?
            .into_std()
            .await;
        let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let join = tokio::task::spawn_blocking(move || {
            let (mut digest, mut at) = (digest, offset);
            while let Some(frame) = rx.blocking_recv() {
                digest.update(&frame);
                file.write_all_at(&frame, at)?;
                at += frame.len() as u64;
            }
            file.sync_data()?;
            Ok(digest)
        });
        Ok(ChunkWriter { tx, join })
    }

    pub async fn write(&mut self, frame: Bytes) -> std::io::Result<()> {
        if self.tx.send(frame).await.is_err() {
            // The writer thread stopped: its error comes out of `finish`.
            return Err(std::io::Error::other("staging writer stopped"));
        }
        Ok(())
    }

    /// Waits for every byte to be on disk (fdatasync) and returns the digest advanced
    /// over the chunk.
    pub async fn finish(self) -> std::io::Result<RunningDigest> {
        drop(self.tx);
        self.join.await.map_err(std::io::Error::other)?
    }
}
