//! Layout of the staging volume shared by the API and the workers: one directory per
//! upload, `<staging>/<upload id>/`, holding `data`, into which every chunk is written
//! at its offset; it stays until the file is verified on R nodes.

use std::path::{Path, PathBuf};

use crate::types::FileId;

pub fn upload_dir(staging: &Path, upload: FileId) -> PathBuf {
    staging.join(upload.to_string())
}

/// The upload's bytes.
pub fn data_path(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Makes the entries of directory `dir` durable (`fsync(2)` on the directory): after a
/// file is created or renamed into `dir`, fsyncing the file alone does not persist its
/// name (fsync(2): "an explicit fsync() on a file descriptor for the directory is also
/// needed"). Blocking; call it off the async runtime.
///
/// # Errors
/// The `open(2)` or `fsync(2)` error.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, then fsyncs every directory whose entries
/// changed (each new directory's parent), so the path survives a power loss. Blocking.
///
/// # Errors
/// The first `mkdir(2)`, `open(2)` or `fsync(2)` error.
pub fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(dir)?;
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dir_durable_makes_missing_parents_and_accepts_existing_ones() -> std::io::Result<()> {
        let base = std::env::temp_dir().join(format!("ferry-staging-test-{}", uuid::Uuid::new_v4()));
        let deep = base.join("a").join("b");
        create_dir_durable(&deep)?;
        assert!(deep.is_dir());
        create_dir_durable(&deep)?;
        sync_dir(&base)?;
        assert!(sync_dir(&base.join("missing")).is_err());
        std::fs::remove_dir_all(&base)
    }
}
