//! The upload intake's slots: chunk bodies this process streams at once
//! (`api.max_concurrent_uploads`), of which one user holds at most
//! `api.max_concurrent_uploads_per_user`, so one account cannot take every slot and
//! turn everyone else away (docs/SECURITY.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ferry_shared::types::UserId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot of the process is taken.
    Full,
    /// The user already holds their share.
    UserShare(usize),
}

/// The process's slots and who holds them.
pub struct IntakeSlots {
    total: Arc<Semaphore>,
    per_user: usize,
    held: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// One slot, given back on drop.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    user: UserId,
    held: Arc<Mutex<HashMap<UserId, usize>>>,
}

impl IntakeSlots {
    /// `total` slots, at most `per_user` of them (at least 1) held by one user.
    pub fn new(total: usize, per_user: usize) -> Self {
        IntakeSlots {
            total: Arc::new(Semaphore::new(total)),
            per_user: per_user.max(1),
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `user` at once, or why not; never waits.
    pub fn try_acquire(&self, user: UserId) -> Result<Slot, Refused> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(&user).is_some_and(|count| *count >= self.per_user) {
            return Err(Refused::UserShare(self.per_user));
        }
        let permit = self.total.clone().try_acquire_owned().map_err(|_| Refused::Full)?;
        *held.entry(user).or_insert(0) += 1;
        Ok(Slot { _permit: permit, user, held: self.held.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_user_holds_at_most_their_share_and_others_still_get_slots() {
        let slots = IntakeSlots::new(4, 2);
        let (alice, bob) = (UserId(1), UserId(2));
        let a1 = slots.try_acquire(alice).expect("first");
        let _a2 = slots.try_acquire(alice).expect("second");
        assert_eq!(slots.try_acquire(alice).err(), Some(Refused::UserShare(2)));
        let _b1 = slots.try_acquire(bob).expect("bob's first");
        let _b2 = slots.try_acquire(bob).expect("bob's second");
        assert_eq!(slots.try_acquire(UserId(3)).err(), Some(Refused::Full));
        drop(a1);
        let _a3 = slots.try_acquire(alice).expect("a slot given back is free again");
        assert_eq!(slots.held.lock().map(|h| h.len()).unwrap_or(0), 2);
    }
}
