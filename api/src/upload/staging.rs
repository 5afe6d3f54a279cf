//! Writing chunk bytes to the staging volume, crash-safely: bytes go to a temp file,
//! which is fsynced, then renamed into place only once the database agreed to record
//! the chunk (and the directory is fsynced). A temp file whose request failed is
//! removed by its `Drop` guard.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_shared::hashing::RunningDigest;
use tokio::sync::mpsc;

/// Frames buffered between the network and the disk writer thread; with hyper's
/// frames of at most a few hundred KiB this bounds a request's memory.
const WRITE_QUEUE: usize = 8;

pub use ferry_shared::staging::{part_path, upload_dir};

/// A temp file being filled; removed on drop unless [`TempPart::persist`] ran.
pub struct TempPart {
    path: Option<PathBuf>,
}

impl TempPart {
    /// Renames the temp file to `dest` and fsyncs the directory.
    pub async fn persist(mut self, dest: PathBuf) -> std::io::Result<()> {
        let src = self.path.take().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            std::fs::rename(&src, &dest)?;
            if let Some(dir) = dest.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

impl Drop for TempPart {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Sink that writes frames on a blocking thread, hashing them on the way (md5 and
/// sha256, continuing the upload's running digest), so neither disk latency nor
/// hashing stalls the runtime. `finish` fsyncs and returns the temp file and digest.
pub struct PartWriter {
    tx: mpsc::Sender<Bytes>,
    join: tokio::task::JoinHandle<std::io::Result<RunningDigest>>,
    part: TempPart,
}

impl PartWriter {
    pub async fn create(dir: &Path, digest: RunningDigest) -> std::io::Result<PartWriter> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&path).await?.into_std().await;
        let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let join = tokio::task::spawn_blocking(move || {
            let (mut file, mut digest) = (file, digest);
            while let Some(frame) = rx.blocking_recv() {
                digest.update(&frame);
                file.write_all(&frame)?;
            }
            file.sync_data()?;
            Ok(digest)
        });
        Ok(PartWriter { tx, join, part: TempPart { path: Some(path) } })
    }

    pub async fn write(&mut self, frame: Bytes) -> std::io::Result<()> {
        if self.tx.send(frame).await.is_err() {
            // The writer thread stopped: its error comes out of `finish`.
            return Err(std::io::Error::other("staging writer stopped"));
        }
        Ok(())
    }

    /// Waits for every byte to be on disk (fsync) and hands over the temp file and
    /// the digest advanced over its bytes.
    pub async fn finish(self) -> std::io::Result<(TempPart, RunningDigest)> {
        drop(self.tx);
        let digest = self.join.await.map_err(std::io::Error::other)??;
        Ok((self.part, digest))
    }
}
