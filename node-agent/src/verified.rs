//! Copies whose whole bytes were recently checked against their signed sha256.
//!
//! Hashing every whole-file read costs a core per stream and caps a download at the
//! hash's speed. A copy is immutable once renamed into place, so after one successful
//! check, later whole reads of the *same* copy within the re-verify interval are served
//! without hashing. "Same" means same id, device, inode, size, mtime and ctime, and the
//! same expected checksum: repair or any rewrite in place gives a new inode or new
//! times, and ctime cannot be set back by `touch`, so a changed file is never taken
//! for the one checked.
//!
//! What this cannot see is rot that changes no metadata (a bad sector): that is found
//! by the next check after the interval, and by the monitor's periodic scrub (`verify`
//! jobs hashing every present replica on its node), which stays the backstop.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_shared::types::{FileId, Sha256};

/// How many verified copies are remembered. An entry is about 100 bytes, so the record
/// stays under ~7 MiB; when full, expired entries go first, then the oldest.
pub const MAX_VERIFIED: usize = 65_536;

/// The identity of one copy on disk, from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyKey {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl CopyKey {
    pub fn of(meta: &std::fs::Metadata) -> CopyKey {
        CopyKey {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

#[derive(Clone, Copy)]
struct Entry {
    key: CopyKey,
    sha: Sha256,
    at: Instant,
}

/// The record, shared by all requests.
pub struct VerifiedCopies {
    interval: Duration,
    cap: usize,
    entries: Mutex<HashMap<FileId, Entry>>,
}

impl VerifiedCopies {
    /// Remembers checks for `interval`; `Duration::ZERO` remembers nothing, so every
    /// whole-file read is hashed.
    pub fn new(interval: Duration) -> VerifiedCopies {
        VerifiedCopies::with_cap(interval, MAX_VERIFIED)
    }

    pub fn with_cap(interval: Duration, cap: usize) -> VerifiedCopies {
        VerifiedCopies { interval, cap: cap.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// The re-verify interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileId, Entry>> {
        // Entries are plain values; a panic mid-update cannot leave one half-written.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this copy of `id` matched `sha` within the interval.
    pub fn is_fresh(&self, id: FileId, key: CopyKey, sha: &Sha256) -> bool {
        if self.interval.is_zero() {
            return false;
        }
        self.lock().get(&id).is_some_and(|e| e.key == key && e.sha == *sha && e.at.elapsed() < self.interval)
    }

    /// Records that this copy of `id` was just read whole and matched `sha`.
    pub fn record(&self, id: FileId, key: CopyKey, sha: Sha256) {
        if self.interval.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.cap && !entries.contains_key(&id) {
            entries.retain(|_, e| e.at.elapsed() < self.interval);
            if entries.len() >= self.cap {
                // O(cap), but only when a check (a whole file hashed) adds to a full
                // record, which costs far more.
                if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.at).map(|(id, _)| *id) {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(id, Entry { key, sha, at: Instant::now() });
    }

    /// Forgets `id`, e.g. once its copy was found corrupt.
    pub fn forget(&self, id: FileId) {
        self.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64) -> CopyKey {
        CopyKey { dev: 1, ino, len: 10, mtime: (5, 0), ctime: (5, 0) }
    }

    #[test]
    fn a_recorded_copy_is_fresh_only_while_nothing_changed() {
        let record = VerifiedCopies::new(Duration::from_secs(3600));
        let (id, sha) = (FileId::new(), Sha256([1; 32]));
        assert!(!record.is_fresh(id, key(1), &sha));
        record.record(id, key(1), sha);
        assert!(record.is_fresh(id, key(1), &sha));
        assert!(!record.is_fresh(id, key(2), &sha), "another inode");
        assert!(!record.is_fresh(id, CopyKey { len: 11, ..key(1) }, &sha), "another size");
        assert!(!record.is_fresh(id, CopyKey { mtime: (5, 1), ..key(1) }, &sha), "another mtime");
        assert!(!record.is_fresh(id, CopyKey { ctime: (6, 0), ..key(1) }, &sha), "another ctime");
        assert!(!record.is_fresh(id, key(1), &Sha256([2; 32])), "another checksum");
        assert!(!record.is_fresh(FileId::new(), key(1), &sha), "another file");
        record.forget(id);
        assert!(!record.is_fresh(id, key(1), &sha));
    }

    #[test]
    fn entries_expire_and_zero_means_always_verify() {
        let record = VerifiedCopies::new(Duration::from_millis(20));
        let (id, sha) = (FileId::new(), Sha256([1; 32]));
        record.record(id, key(1), sha);
        std::thread::sleep(Duration::from_millis(30));
        assert!(!record.is_fresh(id, key(1), &sha));

        let never = VerifiedCopies::new(Duration::ZERO);
        never.record(id, key(1), sha);
        assert!(!never.is_fresh(id, key(1), &sha));
        assert!(never.is_empty());
    }

    #[test]
    fn the_record_is_bounded_and_drops_the_oldest() {
        let record = VerifiedCopies::with_cap(Duration::from_secs(3600), 3);
        let sha = Sha256([1; 32]);
        let ids: Vec<FileId> = (0..4).map(|_| FileId::new()).collect();
        for (i, id) in ids.iter().enumerate() {
            record.record(*id, key(i as u64), sha);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(record.len(), 3);
        assert!(!record.is_fresh(ids[0], key(0), &sha), "the oldest went");
        assert!(record.is_fresh(ids[3], key(3), &sha));
        // Re-recording a known id does not evict anything.
        record.record(ids[3], key(3), sha);
        assert_eq!(record.len(), 3);
    }
}
