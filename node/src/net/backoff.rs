//! Reconnect pacing: jittered exponential backoff and a circuit breaker.
//!
//! Backoff spreads redials out so a restarted validator is not hit by every peer
//! at the same instant; the breaker stops dialing a peer that keeps failing (or
//! that we disconnected for misbehaving) for a cooldown, then lets one attempt
//! through (half-open) to probe whether it is back. Both are pure: callers pass
//! the time in.

use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// A tiny SplitMix64 generator for jitter. Jitter only needs to differ between
/// peers, not to be unpredictable, so it is seeded from the peer pair.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Jitter(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `lo..=hi` (modulo bias is irrelevant for jitter).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Exponential backoff with "equal jitter": the n-th delay is uniform in
/// `[d/2, d]` where `d = min(max_ms, base_ms * 2^n)`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base_ms: u64,
    max_ms: u64,
    attempt: u32,
    jitter: Jitter,
}

impl Backoff {
    pub(crate) fn new(base_ms: u64, max_ms: u64, jitter: Jitter) -> Self {
        Backoff {
            base_ms: base_ms.max(1),
            max_ms: max_ms.max(base_ms.max(1)),
            attempt: 0,
            jitter,
        }
    }

    /// The delay before the next attempt; grows until `max_ms`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.base_ms.saturating_mul(1u64 << self.attempt.min(32));
        let cap = exp.min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(self.jitter.between(cap / 2, cap))
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Circuit breaker state, as reported in stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Normal operation.
    Closed,
    /// Refusing to dial or accept until the cooldown ends.
    Open,
    /// Cooldown over: the next attempt decides between closed and open.
    HalfOpen,
}

/// Opens after `failure_threshold` consecutive failures (or at once when tripped
/// for misbehaviour), stays open for a cooldown, then goes half-open.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    failure_threshold: u32,
    cooldown: Duration,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    half_open: bool,
}

impl Breaker {
    pub(crate) fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            failure_threshold: failure_threshold.max(1),
            cooldown,
            consecutive_failures: 0,
            open_until: None,
            half_open: false,
        }
    }

    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
            None if self.half_open => BreakerState::HalfOpen,
            None => BreakerState::Closed,
        }
    }

    /// How long until an attempt is allowed (`None`: allowed now). Moving from
    /// open to half-open happens here.
    pub(crate) fn wait(&mut self, now: Instant) -> Option<Duration> {
        match self.open_until {
            Some(until) if now < until => Some(until - now),
            Some(_) => {
                self.open_until = None;
                self.half_open = true;
                None
            }
            None => None,
        }
    }

    /// A connection was established.
    pub(crate) fn on_success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
        self.half_open = false;
    }

    /// An attempt failed. A failed half-open probe reopens at once.
    pub(crate) fn on_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.half_open || self.consecutive_failures >= self.failure_threshold {
            self.trip(now, self.cooldown);
        }
    }

    /// Opens for `cooldown` regardless of the failure count (misbehaviour).
    pub(crate) fn trip(&mut self, now: Instant, cooldown: Duration) {
        self.open_until = Some(now + cooldown);
        self.half_open = false;
        self.consecutive_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(100, 1_000, Jitter::new(7));
        let d: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        for (i, ms) in d.iter().enumerate() {
            let cap = (100u64 << i).min(1_000);
            assert!(
                *ms >= cap / 2 && *ms <= cap,
                "attempt {i}: {ms} vs cap {cap}"
            );
        }
        b.reset();
        assert!(b.next_delay().as_millis() <= 100);
        // Different seeds give different schedules.
        let mut a = Backoff::new(1_000, 60_000, Jitter::new(1));
        let mut c = Backoff::new(1_000, 60_000, Jitter::new(2));
        let da: Vec<_> = (0..6).map(|_| a.next_delay()).collect();
        let dc: Vec<_> = (0..6).map(|_| c.next_delay()).collect();
        assert_ne!(da, dc);
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let t0 = Instant::now();
        let mut br = Breaker::new(3, Duration::from_secs(10));
        assert_eq!(br.state(t0), BreakerState::Closed);
        br.on_failure(t0);
        br.on_failure(t0);
        assert_eq!(br.wait(t0), None);
        br.on_failure(t0);
        assert_eq!(br.state(t0), BreakerState::Open);
        assert_eq!(br.wait(t0), Some(Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(11);
        assert_eq!(br.state(later), BreakerState::HalfOpen);
        assert_eq!(br.wait(later), None);
        // A failed probe reopens immediately.
        br.on_failure(later);
        assert_eq!(br.state(later), BreakerState::Open);
        let much_later = later + Duration::from_secs(11);
        assert_eq!(br.wait(much_later), None);
        br.on_success();
        assert_eq!(br.state(much_later), BreakerState::Closed);
        br.trip(much_later, Duration::from_secs(1));
        assert_eq!(br.state(much_later), BreakerState::Open);
    }
}
