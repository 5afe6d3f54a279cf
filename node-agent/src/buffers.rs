//! Read buffers for response bodies, reused across requests.
//!
//! Serving a step used to mean a fresh `vec![0u8; 1 MiB]`: the allocator hands out
//! freshly mapped pages for a block that size, so every step paid for a memset and for
//! page faults on first touch (about a tenth of the CPU of a Range benchmark). Here a
//! buffer is zeroed once, when it is first made, and afterwards only overwritten by the
//! reads, so reusing it needs no `unsafe` read into uninitialised memory.
//!
//! A filled buffer becomes a [`Bytes`] through [`Bytes::from_owner`]; when hyper (and a
//! hasher, if any) drop the last reference, the buffer goes back to the pool.
//!
//! Memory bound: at most [`BufferPool::capacity`] buffers exist at once, read into or
//! not yet sent, across all connections; a request that needs one more waits for one
//! to come back (fair, first come first served), so a burst of downloads slows down
//! rather than growing the heap. At most `retain` idle buffers are kept for reuse.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pool of equally sized byte buffers with a cap on how many exist at once.
pub struct BufferPool {
    size: usize,
    capacity: usize,
    retain: usize,
    idle: Mutex<Vec<Box<[u8]>>>,
    permits: Arc<Semaphore>,
}

impl BufferPool {
    /// Buffers of `size` bytes; at most `capacity` in use at once, `retain` kept idle.
    pub fn new(size: usize, capacity: usize, retain: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            size,
            capacity,
            retain: retain.min(capacity),
            idle: Mutex::new(Vec::with_capacity(retain.min(capacity))),
            permits: Arc::new(Semaphore::new(capacity)),
        })
    }

    /// Bytes in each buffer: the most one read can fill.
    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// How many buffers may exist at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Idle buffers kept for reuse right now.
    pub fn idle(&self) -> usize {
        self.lock_idle().len()
    }

    /// A buffer to read into, waiting while [`capacity`](Self::capacity) are in use.
    pub async fn take(self: &Arc<Self>) -> Buffer {
        // The semaphore is never closed, so acquiring only fails if that changes; a
        // fresh unbounded permit would be wrong, so fall back to an extra buffer that
        // is simply not counted (and say so in the log) rather than failing a download.
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!("buffer pool semaphore closed; allocating an uncounted buffer");
                None
            }
        };
        self.wrap(permit)
    }

    /// A buffer if one is free right now, without waiting: a read ahead is only worth
    /// it when it does not hold up the bytes already read.
    pub fn try_take(self: &Arc<Self>) -> Option<Buffer> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(self.wrap(Some(permit)))
    }

    fn wrap(self: &Arc<Self>, permit: Option<OwnedSemaphorePermit>) -> Buffer {
        let reused = self.lock_idle().pop();
        let data = reused.unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice());
        Buffer { data: Some(data), pool: self.clone(), _permit: permit }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Box<[u8]>>> {
        // A panic while holding the lock leaves a valid Vec; keep using it.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn give_back(&self, data: Box<[u8]>) {
        let mut idle = self.lock_idle();
        if idle.len() < self.retain {
            idle.push(data);
        }
    }
}

/// A pooled buffer; returns to its pool when dropped.
pub struct Buffer {
    /// Always `Some` until drop.
    data: Option<Box<[u8]>>,
    pool: Arc<BufferPool>,
    /// Released after the data went back to the idle list (fields drop after `drop`).
    _permit: Option<OwnedSemaphorePermit>,
}

impl Buffer {
    /// The whole buffer, to read into. Its contents are whatever an earlier read left.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.data.as_deref_mut().unwrap_or_default()
    }

    /// The first `len` bytes (at most the buffer's size) as [`Bytes`] without copying;
    /// the buffer returns to the pool when the last clone is dropped.
    pub fn freeze(self, len: usize) -> Bytes {
        let len = len.min(self.pool.size);
        Bytes::from_owner(self).slice(..len)
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self.data.as_deref().unwrap_or_default()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            self.pool.give_back(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_are_reused_not_reallocated() {
        let pool = BufferPool::new(16, 4, 2);
        let mut buffer = pool.take().await;
        buffer.as_mut_slice().copy_from_slice(&[7; 16]);
        let first = buffer.as_ref().as_ptr();
        let bytes = buffer.freeze(3);
        assert_eq!(&bytes[..], &[7, 7, 7]);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(pool.idle(), 0, "still referenced by a clone");
        drop(clone);
        assert_eq!(pool.idle(), 1);
        let again = pool.take().await;
        assert_eq!(again.as_ref().as_ptr(), first, "the same memory comes back");
        assert_eq!(again.as_ref(), &[7; 16], "and is not zeroed again");
    }

    #[tokio::test]
    async fn at_most_capacity_buffers_exist_and_at_most_retain_are_kept() {
        let pool = BufferPool::new(8, 3, 2);
        let held: Vec<Buffer> = vec![pool.take().await, pool.take().await, pool.take().await];
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), pool.take()).await;
        assert!(waiting.is_err(), "a fourth buffer waits");
        assert!(pool.try_take().is_none(), "and is not handed out without waiting either");
        drop(held);
        assert_eq!(pool.idle(), 2);
        let fourth = tokio::time::timeout(std::time::Duration::from_secs(5), pool.take()).await;
        assert!(fourth.is_ok(), "a returned buffer is handed out again");
    }

    #[tokio::test]
    async fn freezing_past_the_end_is_clamped() {
        let pool = BufferPool::new(4, 1, 1);
        assert_eq!(pool.take().await.freeze(100).len(), 4);
    }
}
