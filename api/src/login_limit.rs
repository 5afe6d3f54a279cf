//! Login rate limits: per client address and per username, checked before the user is
//! looked up or a password hashed, so a guessing flood is refused cheaply (429 with
//! `Retry-After`) instead of costing argon2 time that honest logins wait behind.
//!
//! Not a lockout weapon: nothing is locked; each key has a bucket (GCRA, the governor
//! crate) that refills continuously, and a username's bucket is larger than an
//! address's, so one address alone can never empty it: shutting a user out takes
//! several addresses flooding at once, and lasts only as long as the flood (plus at
//! most a minute). Both buckets count every attempt, right or wrong. See
//! docs/SECURITY.md.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys remembered before idle ones are dropped: bounds the memory a flood of made-up
/// usernames or addresses can take (one bucket is a few dozen bytes).
const MAX_KEYS: usize = 100_000;

/// The two buckets of every login.
pub struct LoginLimiter {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<String>,
}

impl LoginLimiter {
    /// `per_address` and `per_user` attempts a minute (each also the burst); 0 is read
    /// as 1.
    pub fn new(per_address: u32, per_user: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            per_address: RateLimiter::keyed(quota(per_address)),
            per_user: RateLimiter::keyed(quota(per_user)),
        }
    }

    /// Takes one attempt from `address`'s and `username`'s buckets (usernames compare
    /// case-insensitively); `Err` holds how long until the next attempt is allowed.
    pub fn check(&self, address: IpAddr, username: &str) -> Result<(), Duration> {
        if self.per_address.len() > MAX_KEYS || self.per_user.len() > MAX_KEYS {
            self.per_address.retain_recent();
            self.per_user.retain_recent();
        }
        let now = DefaultClock::default().now();
        self.per_address.check_key(&address).map_err(|not_until| not_until.wait_time_from(now))?;
        self.per_user.check_key(&username.to_lowercase()).map_err(|not_until| not_until.wait_time_from(now))
    }
}

/// Whole seconds to put in `Retry-After`, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_runs_out_before_a_username_and_others_are_unaffected() {
        let limiter = LoginLimiter::new(3, 5);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(limiter.check(a, "alice").is_ok());
        }
        let wait = limiter.check(a, "alice").expect_err("a's fourth attempt in the minute");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20), "{wait:?}");
        // The same user from another address still gets in: a's flood did not empty
        // alice's bucket.
        assert!(limiter.check(b, "ALICE").is_ok());
        assert!(limiter.check(b, "bob").is_ok());
        // Several addresses together do empty it (5 a minute), case-insensitively.
        assert!(limiter.check(IpAddr::from([10, 0, 0, 3]), "Alice").is_ok());
        assert!(limiter.check(IpAddr::from([10, 0, 0, 4]), "Alice").is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }
}
