//! Slots of a bounded resource with a share per key: at most `total` held at once, at
//! most `per_key` of them by one key, so one holder cannot take them all and turn
//! everyone else away (docs/SECURITY.md). The API's upload intake uses it per user,
//! the node agent's downloads per client address and per link.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot of the process is taken.
    Full,
    /// The key already holds its share (the share is given).
    KeyShare(usize),
}

type Held<K> = Arc<Mutex<HashMap<K, usize>>>;

/// The slots and who holds them. Memory is one map entry per key holding a slot.
pub struct KeyedSlots<K> {
    total: Arc<Semaphore>,
    per_key: usize,
    held: Held<K>,
}

/// One slot, given back on drop.
pub struct Slot<K: Eq + Hash> {
    _permit: OwnedSemaphorePermit,
    key: K,
    held: Held<K>,
}

impl<K: Eq + Hash + Clone> KeyedSlots<K> {
    /// `total` slots, at most `per_key` of them (at least 1) held by one key.
    pub fn new(total: usize, per_key: usize) -> Self {
        KeyedSlots {
            total: Arc::new(Semaphore::new(total)),
            per_key: per_key.max(1),
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `key` at once, or why not; never waits.
    pub fn try_acquire(&self, key: K) -> Result<Slot<K>, Refused> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(&key).is_some_and(|count| *count >= self.per_key) {
            return Err(Refused::KeyShare(self.per_key));
        }
        let permit = self.total.clone().try_acquire_owned().map_err(|_| Refused::Full)?;
        *held.entry(key.clone()).or_insert(0) += 1;
        Ok(Slot { _permit: permit, key, held: self.held.clone() })
    }
}

impl<K: Eq + Hash> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UserId;

    #[test]
    fn one_user_holds_at_most_their_share_and_others_still_get_slots() {
        let slots = KeyedSlots::new(4, 2);
        let (alice, bob) = (UserId(1), UserId(2));
        let a1 = slots.try_acquire(alice).expect("first");
        let _a2 = slots.try_acquire(alice).expect("second");
        assert_eq!(slots.try_acquire(alice).err(), Some(Refused::KeyShare(2)));
        let _b1 = slots.try_acquire(bob).expect("bob's first");
        let _b2 = slots.try_acquire(bob).expect("bob's second");
        assert_eq!(slots.try_acquire(UserId(3)).err(), Some(Refused::Full));
        drop(a1);
        let _a3 = slots.try_acquire(alice).expect("a slot given back is free again");
        assert_eq!(slots.held.lock().map(|h| h.len()).unwrap_or(0), 2);
    }
}
