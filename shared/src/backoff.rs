//! Jittered exponential backoff, shared by every reconnect and retry loop.

use std::time::Duration;

use rand::Rng;

/// `base` scaled by a random factor in [0.5, 1.5): spreads reconnect storms.
pub fn jitter(base: Duration) -> Duration {
    base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}

/// Delay before attempt `attempt` (0-based): `base * 2^attempt`, capped, jittered.
pub fn delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    jitter(base.saturating_mul(1u32 << attempt.min(16)).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_capped_and_jittered_around_the_exponential() {
        for attempt in 0..40 {
            let d = delay(attempt, Duration::from_millis(100), Duration::from_secs(10));
            assert!(d <= Duration::from_secs(15), "attempt {attempt}: {d:?}");
            assert!(d >= Duration::from_millis(50));
        }
    }
}
