//! How the node reports itself: `GET /health` for the monitor's probes (free and total
//! bytes of the storage root's filesystem, which need not be `/`, and whether a file can
//! be written there), and the `/readyz` check.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use ferry_shared::health::NodeHealth;
use ferry_shared::ops::ReadyCheck;
use ferry_shared::types::ByteSize;
#[cfg(test)]
use ferry_shared::types::FileId;

use crate::error::ServeError;
use crate::state::NodeState;

/// `(free, total)` bytes of the filesystem holding `root`, from statvfs. `f_frsize` is
/// the unit of the block counts (not `f_bsize`, which merely equals it on most Linux
/// file systems); `f_bavail` leaves out the blocks reserved for root.
pub fn space(root: &Path) -> nix::Result<(u64, u64)> {
    let stats = nix::sys::statvfs::statvfs(root)?;
    let unit = stats.fragment_size();
    Ok((stats.blocks_available().saturating_mul(unit), stats.blocks().saturating_mul(unit)))
}

/// The file the write check creates at the root and removes again. The orphan sweep
/// lists only `<root>/<xx>/<id>` (`find -mindepth 2`), so a check cut short by a crash
/// leaves nothing it would misread.
pub const WRITE_CHECK_FILE: &str = ".ferry-write-check";

/// How long a write check's outcome answers `/health` before the next check starts: the
/// route is public, so whatever the request rate the root sees at most one check per
/// this period.
pub const WRITE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// A write check still running after this long is reported as the failure itself (a
/// disk that does not finish a one-line write and its `fdatasync` takes no copies).
pub const WRITE_CHECK_STALL: Duration = Duration::from_secs(10);

/// Creates [`WRITE_CHECK_FILE`] at `root`, writes a line to it, `fdatasync`s and removes
/// it: what a copy needs of the filesystem, short of its space. Blocking.
///
/// # Errors
/// Which step failed and the OS's reason (`Read-only file system`, `Operation not
/// permitted`, an I/O error), never the root's path: `/health` answers anyone.
pub fn write_check(root: &Path) -> Result<(), String> {
    use std::io::Write;
    let path = root.join(WRITE_CHECK_FILE);
    let step = |what: &'static str| move |e: std::io::Error| format!("cannot {what} in the storage root: {e}");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(step("create a file"))?;
    file.write_all(b"ferry write check\n").map_err(step("write a file"))?;
    file.sync_data().map_err(step("fdatasync a file"))?;
    drop(file);
    std::fs::remove_file(&path).map_err(step("remove a file"))
}

pub async fn health(State(state): State<Arc<NodeState>>) -> Result<Json<NodeHealth>, ServeError> {
    let root = state.root().to_path_buf();
    // statvfs can block for a long time on a sick disk or a network mount.
    let stats = tokio::task::spawn_blocking(move || space(&root)).await;
    match stats {
        Ok(Ok((free_bytes, total_bytes))) => Ok(Json(NodeHealth {
            status: "ok".to_owned(),
            free_bytes: ByteSize(free_bytes),
            total_bytes: ByteSize(total_bytes),
            corrupt: state.corrupt(),
            write_error: state.write_error(),
        })),
        Ok(Err(errno)) => {
            tracing::warn!(error = %errno, root = %state.root().display(), "statvfs of the storage root failed");
            Err(ServeError::RootUnavailable)
        }
        Err(e) => Err(ServeError::Internal { context: "statvfs task", source: std::io::Error::other(e) }),
    }
}

/// Ready when the root is a directory this process can list: a missing mount or a
/// permissions mistake shows up before any download fails.
pub fn ready_check(root: PathBuf) -> ReadyCheck {
    Arc::new(move || {
        let root = root.clone();
        Box::pin(async move {
            match tokio::fs::read_dir(&root).await {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("storage root {} is not a readable directory: {e}", root.display())),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_of_an_existing_directory() {
        let (free, total) = space(&std::env::temp_dir()).expect("statvfs of the temp dir");
        assert!(total > 0);
        assert!(free <= total);
    }

    #[test]
    fn the_write_check_leaves_nothing_behind_and_names_the_failing_step() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        write_check(dir.path())?;
        assert!(!dir.path().join(WRITE_CHECK_FILE).exists());
        let missing = dir.path().join("gone");
        let error = write_check(&missing).err().unwrap_or_default();
        assert!(error.starts_with("cannot create a file in the storage root: "), "{error}");
        assert!(!error.contains(&*missing.to_string_lossy()), "the root's path reached the answer: {error}");
        Ok(())
    }

    #[test]
    fn space_of_a_missing_directory_fails() {
        let missing = std::env::temp_dir().join(format!("ferry-missing-{}", FileId::new()));
        assert!(space(&missing).is_err());
    }
}
