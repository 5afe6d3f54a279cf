//! A node's storage root and the one kind of path under it a command may name:
//! `<root>/<first two hex digits of the id>/<id>` (the layout the node agent serves).

use std::path::Path;

use uuid::Uuid;

use crate::Denied;

/// A storage root: absolute, normalised (no `.`/`..` components, no doubled or
/// trailing slash), not `/` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoot(String);

impl NodeRoot {
    /// Checks `path` (a trailing slash is dropped).
    ///
    /// # Errors
    /// [`Denied`] when the path is relative, `/`, or not normalised.
    pub fn new(path: &str) -> Result<NodeRoot, Denied> {
        let trimmed = path.trim_end_matches('/');
        let normal = trimmed.starts_with('/')
            && trimmed.len() > 1
            && trimmed[1..].split('/').all(|part| !part.is_empty() && part != "." && part != "..");
        if !normal {
            return Err(Denied::new(format!(
                "storage root {path:?} must be an absolute, normalised path other than /"
            )));
        }
        Ok(NodeRoot(trimmed.to_owned()))
    }

    /// The root without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<root>/<xx>/<id>`: where the node keeps file `id`.
    pub fn file(&self, id: Uuid) -> String {
        format!("{}/{}", self.0, relpath(id))
    }

    /// Whether `path` names the root itself (with or without one trailing slash).
    pub fn is_root(&self, path: &str) -> bool {
        path.strip_suffix('/').unwrap_or(path) == self.0
    }

    /// The id of `path` when it is exactly `<root>/<xx>/<id><suffix>` with `xx` the
    /// id's first two characters and the id in lowercase hyphenated form.
    ///
    /// # Errors
    /// [`Denied`] for any other path.
    pub fn parse_file(&self, path: &str, suffix: &str) -> Result<Uuid, Denied> {
        let refuse = || Denied::new(format!("path {path:?} is not ROOT/<2 hex>/<uuid>{suffix}"));
        let rest = path.strip_prefix(&self.0).and_then(|r| r.strip_prefix('/')).ok_or_else(refuse)?;
        let rest = rest.strip_suffix(suffix).ok_or_else(refuse)?;
        parse_relpath(rest).ok_or_else(refuse)
    }
}

/// `<xx>/<id>`: a file's path relative to the root.
pub fn relpath(id: Uuid) -> String {
    let id = id.as_hyphenated().to_string();
    format!("{}/{id}", &id[..2])
}

/// The id of a relative path `<xx>/<id>` (the inverse of [`relpath`]).
pub fn parse_relpath(rel: &str) -> Option<Uuid> {
    let (shard, id) = rel.split_once('/')?;
    let parsed = Uuid::parse_str(id).ok()?;
    (id.len() == 36 && relpath(parsed) == format!("{shard}/{id}")).then_some(parsed)
}

/// Checks on the node's filesystem that a file path the parser accepted stays under
/// the root: its shard directory, if it exists, resolves to `<real root>/<xx>`, and
/// the path itself is not a symbolic link.
///
/// # Errors
/// [`Denied`] when a symlink leads out of the root.
pub fn confine(root: &NodeRoot, path: &str) -> Result<(), Denied> {
    let path = Path::new(path);
    if let Some(shard) = path.parent() {
        if shard.symlink_metadata().is_ok() {
            let real_root = std::fs::canonicalize(root.as_str())
                .map_err(|e| Denied::new(format!("storage root {}: {e}", root.as_str())))?;
            let real_shard =
                std::fs::canonicalize(shard).map_err(|e| Denied::new(format!("{}: {e}", shard.display())))?;
            if real_shard.parent() != Some(real_root.as_path()) || real_shard.file_name() != shard.file_name() {
                return Err(Denied::new(format!("{} leaves the storage root", shard.display())));
            }
        }
    }
    if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Denied::new(format!("{} is a symbolic link", path.display())));
    }
    Ok(())
}

/// Checks on the node's filesystem that shard directory `<root>/<shard>`, if it
/// exists, is a directory directly under the real root (not a symlink out of it).
///
/// # Errors
/// [`Denied`] when it resolves elsewhere.
pub fn confine_shard(root: &NodeRoot, shard: &str) -> Result<(), Denied> {
    let path = Path::new(root.as_str()).join(shard);
    if path.symlink_metadata().is_err() {
        return Ok(());
    }
    let real_root = std::fs::canonicalize(root.as_str())
        .map_err(|e| Denied::new(format!("storage root {}: {e}", root.as_str())))?;
    let real = std::fs::canonicalize(&path).map_err(|e| Denied::new(format!("{}: {e}", path.display())))?;
    if real.parent() != Some(real_root.as_path()) || real.file_name() != path.file_name() {
        return Err(Denied::new(format!("{} leaves the storage root", path.display())));
    }
    Ok(())
}

/// Makes the directory entries a receive created durable: fsync(2) of every shard
/// directory `<root>/<2 hex>` whose mtime is at or after `since` (less a second, for
/// the filesystem's coarse clock), then of the root itself (a new shard directory is
/// an entry of the root). Run by the gate after the receiving rsync exits, which
/// fsynced each file before renaming it into place (`--fsync`): together a copy the
/// worker counts survives a power loss. Directories another receive changed meanwhile
/// are synced too, which costs nothing more than their own sync would. Returns how
/// many shard directories were synced.
///
/// # Errors
/// The first I/O error reading the root or syncing a directory.
pub fn sync_changed_shards(root: &NodeRoot, since: std::time::SystemTime) -> std::io::Result<usize> {
    let since = since.checked_sub(std::time::Duration::from_secs(1)).unwrap_or(std::time::UNIX_EPOCH);
    let mut synced = 0;
    for entry in std::fs::read_dir(root.as_str())? {
        let entry = entry?;
        let name = entry.file_name();
        let is_shard =
            name.len() == 2 && name.as_encoded_bytes().iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        // `DirEntry::metadata` does not follow symlinks: a link is never synced through.
        let meta = entry.metadata()?;
        if is_shard && meta.is_dir() && meta.modified()? >= since {
            std::fs::File::open(entry.path())?.sync_all()?;
            synced += 1;
        }
    }
    std::fs::File::open(root.as_str())?.sync_all()?;
    Ok(synced)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ab12cd34-0000-4000-8000-00000000beef";

    #[test]
    fn roots_must_be_absolute_and_normalised() {
        assert_eq!(NodeRoot::new("/srv/ferry/").expect("ok").as_str(), "/srv/ferry");
        for bad in ["srv", "/", "", "/srv/../etc", "/srv/./x", "/srv//x"] {
            assert!(NodeRoot::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_sharded_uuid_paths_parse() {
        let root = NodeRoot::new("/srv/ferry").expect("root");
        let id: Uuid = ID.parse().expect("uuid");
        assert_eq!(root.file(id), format!("/srv/ferry/ab/{ID}"));
        assert_eq!(root.parse_file(&root.file(id), "").expect("ok"), id);
        assert_eq!(root.parse_file(&format!("{}.corrupt-1", root.file(id)), ".corrupt-1").expect("ok"), id);
        for bad in [
            format!("/srv/ferry/cd/{ID}"),
            format!("/srv/ferry/ab/../ab/{ID}"),
            format!("/srv/ferryx/ab/{ID}"),
            format!("/srv/ferry/ab/{}", ID.to_uppercase()),
            format!("/srv/ferry/ab/{}", ID.replace('-', "")),
            format!("/srv/ferry/ab/{ID}/x"),
            "/etc/passwd".to_owned(),
        ] {
            assert!(root.parse_file(&bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let dir = std::env::temp_dir().join(format!("ferry-gate-{}", Uuid::new_v4()));
        let root_dir = dir.join("root");
        std::fs::create_dir_all(root_dir.join("ab")).expect("mkdir");
        std::fs::create_dir_all(dir.join("outside")).expect("mkdir");
        std::os::unix::fs::symlink(dir.join("outside"), root_dir.join("cd")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", root_dir.join("ab").join(ID)).expect("symlink");
        let root = NodeRoot::new(root_dir.to_str().expect("utf-8")).expect("root");
        let other = format!("{}/cd/cd12cd34-0000-4000-8000-00000000beef", root.as_str());
        assert!(confine(&root, &other).is_err());
        assert!(confine(&root, &format!("{}/ab/{ID}", root.as_str())).is_err());
        assert!(confine(&root, &format!("{}/ef/ef12cd34-0000-4000-8000-00000000beef", root.as_str())).is_ok());
        assert!(confine_shard(&root, "cd").is_err());
        assert!(confine_shard(&root, "ab").is_ok());
        assert!(confine_shard(&root, "ef").is_ok(), "a shard not yet created");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_receive_syncs_the_shards_changed_since_it_began_and_no_link() {
        let dir = std::env::temp_dir().join(format!("ferry-sync-{}", Uuid::new_v4()));
        let root_dir = dir.join("root");
        for shard in ["ab", "cd", "ef"] {
            std::fs::create_dir_all(root_dir.join(shard)).expect("mkdir");
        }
        std::fs::create_dir_all(dir.join("outside")).expect("mkdir");
        std::os::unix::fs::symlink(dir.join("outside"), root_dir.join("01")).expect("symlink");
        std::fs::create_dir_all(root_dir.join("not-a-shard")).expect("mkdir");
        let old =
            std::fs::FileTimes::new().set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60));
        for shard in ["ab", "cd", "ef", "not-a-shard"] {
            std::fs::File::open(root_dir.join(shard)).and_then(|f| f.set_times(old)).expect("age");
        }
        let root = NodeRoot::new(root_dir.to_str().expect("utf-8")).expect("root");
        let since = std::time::SystemTime::now();
        std::fs::write(root_dir.join("cd").join(ID), b"x").expect("write");
        std::fs::write(root_dir.join("not-a-shard").join(ID), b"x").expect("write");
        assert_eq!(sync_changed_shards(&root, since).expect("sync"), 1, "only cd changed");
        assert_eq!(
            sync_changed_shards(&root, since - std::time::Duration::from_secs(3600)).expect("sync"),
            3,
            "every shard dir, never the symlink or another name"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
