//! Exponential backoff with full jitter (the delay is uniform in `[0, min(max, base·2^n)]`),
//! so terminals that lost the server together do not come back together.

use std::time::Duration;

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First ceiling.
    pub base: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// Attempts per request before giving up (at least 1).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the delay after failed attempt `n` (0-based).
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay after failed attempt `n`: uniform in `[0, ceiling(n)]`.
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.ceiling(n);
        let mut r = [0u8; 8];
        // Without randomness, wait the whole ceiling: still bounded, just not spread.
        if getrandom::fill(&mut r).is_err() {
            return ceiling;
        }
        let frac = u64::from_le_bytes(r) as f64 / u64::MAX as f64;
        ceiling.mul_f64(frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_grow_and_cap_and_delays_stay_below() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_attempts: 5,
        };
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(10), Duration::from_secs(2));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(2));
        let delays: Vec<_> = (0..200).map(|_| p.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1600)));
        // Jitter: not all the same.
        assert!(delays.iter().any(|d| *d != delays[0]));
    }
}
