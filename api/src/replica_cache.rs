//! A short-lived cache of where a file's verified replicas are, so the download
//! redirect — the hottest path — needs no database round trip on repeated requests.
//!
//! Safe because a stale entry can only point at a node that held a verified copy a
//! moment ago: node health is still checked on every request from the live
//! heartbeats, a node agent only serves bytes it has, and every API process drops a
//! file's entry as soon as any process announces a change to its replicas
//! ([`forget_on_events`]); `ttl` only bounds what a missed notification costs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_shared::types::{FileId, UserId};

/// What a download of one file needs: its signed facts and its verified copies.
#[derive(Debug, Clone)]
pub struct FileSources {
    /// The file's checksum, signed into the URL so the server can verify what it serves.
    pub sha256: Option<ferry_shared::types::Sha256>,
    /// The file's stored name, signed into the URL for `Content-Disposition`.
    pub filename: String,
    /// Present copies on nodes that are not disabled (health is checked per request).
    pub replicas: Vec<ReplicaLocation>,
}

/// A node holding a verified copy (the store's row, as `files::download_sources` reads it).
pub use ferry_store::files::ReplicaLocation;

type Entry = (Instant, Arc<FileSources>);

pub struct ReplicaCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<(FileId, UserId), Entry>>,
}

impl ReplicaCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        ReplicaCache { ttl, capacity, entries: Mutex::new(HashMap::new()) }
    }

    /// The cached sources of `file` owned by `user`, if fresh.
    pub fn get(&self, file: FileId, user: UserId) -> Option<Arc<FileSources>> {
        let entries = self.entries.lock().ok()?;
        let (at, replicas) = entries.get(&(file, user))?;
        (at.elapsed() < self.ttl).then(|| replicas.clone())
    }

    pub fn insert(&self, file: FileId, user: UserId, sources: Arc<FileSources>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= self.capacity {
            // Bounded: drop what has expired, and everything if that was not enough.
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert((file, user), (Instant::now(), sources));
    }

    pub fn invalidate(&self, file: FileId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(f, _), _| *f != file);
        }
    }

    /// Forgets every entry (after missed events).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// Drops a file's cached locations whenever any process announces a change to it on
/// the upload-event channel (`ferry_store::notify`: a replica became present, was
/// retired for a drain or a surplus, removed, or found corrupt), so every API process,
/// not only the one that made the change, stops redirecting to a copy that is going
/// away within one notification, not one `api.replica_cache_ms`. Events missed while
/// the receiver lagged clear the whole cache.
pub async fn forget_on_events(
    state: std::sync::Arc<crate::state::AppState>,
    mut events: tokio::sync::broadcast::Receiver<uuid::Uuid>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(id) => state.replicas.invalidate(FileId(id)),
            Err(RecvError::Lagged(_)) => state.replicas.clear(),
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Arc<FileSources> {
        Arc::new(FileSources {
            sha256: None,
            filename: "f.bin".into(),
            replicas: vec![ReplicaLocation {
                node: ferry_shared::types::NodeId(1),
                public_url: "http://n1".into(),
                lat: 0.0,
                lon: 0.0,
            }],
        })
    }

    #[test]
    fn entries_are_per_owner_expire_and_are_bounded() {
        let cache = ReplicaCache::new(Duration::from_secs(60), 2);
        let (a, b, c) = (FileId::new(), FileId::new(), FileId::new());
        cache.insert(a, UserId(1), loc());
        assert!(cache.get(a, UserId(1)).is_some());
        assert!(cache.get(a, UserId(2)).is_none(), "another user's request never hits");
        cache.insert(b, UserId(1), loc());
        cache.insert(c, UserId(1), loc());
        assert!(cache.entries.lock().expect("lock").len() <= 2);
        cache.invalidate(c);
        assert!(cache.get(c, UserId(1)).is_none());
        let expired = ReplicaCache::new(Duration::from_nanos(1), 10);
        expired.insert(a, UserId(1), loc());
        std::thread::sleep(Duration::from_millis(1));
        assert!(expired.get(a, UserId(1)).is_none());
    }
}
