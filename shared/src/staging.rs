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
