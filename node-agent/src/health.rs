//! How the node reports itself: `GET /health` for the monitor's probes (free and total
//! bytes of the storage root's filesystem, which need not be `/`), and the `/readyz`
//! check.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    fn space_of_a_missing_directory_fails() {
        let missing = std::env::temp_dir().join(format!("ferry-missing-{}", FileId::new()));
        assert!(space(&missing).is_err());
    }
}
