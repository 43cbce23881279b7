//! Token buckets for per-peer inbound rate limits (messages/s and bytes/s).
//!
//! A validator that floods us must not starve the others or grow our queues:
//! what exceeds its budget is dropped and counted, and persistent excess adds to
//! its penalty score (see `peer.rs`). Pure: callers pass the time in.

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket holding `burst` tokens, refilled at `per_second`.
    pub(crate) fn new(per_second: u64, burst: u64, now: Instant) -> Self {
        let capacity = burst.max(1) as f64;
        TokenBucket {
            capacity,
            per_second: per_second as f64,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed_s = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed_s * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// Whether `cost` tokens are available now; takes them if so. A cost above
    /// the capacity needs a full bucket (so a burst smaller than one maximum
    /// message can never lock that message out forever).
    pub(crate) fn has(&mut self, cost: u64, now: Instant) -> bool {
        self.refill(now);
        (cost as f64).min(self.capacity) <= self.tokens
    }

    /// Takes `cost` tokens (call after [`Self::has`] said yes).
    pub(crate) fn take(&mut self, cost: u64) {
        self.tokens = (self.tokens - (cost as f64).min(self.capacity)).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_limits_and_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        for _ in 0..5 {
            assert!(b.has(1, t0));
            b.take(1);
        }
        assert!(!b.has(1, t0));
        let t1 = t0 + Duration::from_millis(200); // 2 tokens back
        assert!(b.has(2, t1));
        b.take(2);
        assert!(!b.has(1, t1));
        // Oversized cost needs a full bucket, then passes.
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.has(1_000, t2));
        b.take(1_000);
        assert!(!b.has(1, t2));
    }
}
