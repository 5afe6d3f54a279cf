//! Layout of the staging volume shared by the API and the workers:
//! `<staging>/<upload id>/<offset, 20 digits>.part` for received chunks and
//! `<staging>/<upload id>/data` for the assembled file until it is on R nodes.

use std::path::{Path, PathBuf};

use crate::types::FileId;

pub fn upload_dir(staging: &Path, upload: FileId) -> PathBuf {
    staging.join(upload.to_string())
}

/// Final name of the chunk that starts at `offset` (zero-padded so names sort).
pub fn part_path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(format!("{offset:020}.part"))
}

/// The assembled, verified file.
pub fn data_path(dir: &Path) -> PathBuf {
    dir.join("data")
}
