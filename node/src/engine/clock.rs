//! The engine's clock: wall-clock milliseconds that never go backwards.
//!
//! The consensus core is pure and takes local time as an argument; this is the
//! one place in the engine that reads the system clock (ARCHITECTURE.md,
//! invariant 1). Tests and alternative runtimes can supply their own [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Local time for the consensus core.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch. Must never decrease between calls.
    fn now_ms(&self) -> u64;

    /// A monotonic microsecond counter for measuring short durations (signer
    /// latency); only differences are meaningful.
    fn now_us(&self) -> u64 {
        self.now_ms().saturating_mul(1_000)
    }
}

/// The operating system's wall clock, clamped so it never steps back (an NTP
/// correction backwards holds time still instead of rewinding timers).
#[derive(Debug)]
pub struct SystemClock {
    last_ms: AtomicU64,
    started: std::time::Instant,
}

impl Default for SystemClock {
    // The monotonic reference for `now_us`: part of the one clock implementation.
    #[allow(clippy::disallowed_methods)]
    fn default() -> Self {
        SystemClock {
            last_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

impl SystemClock {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    // The runtime's single reading of the wall clock: the consensus core needs
    // real time to check proposal timestamps against genesis and to set timers,
    // and everything else in the engine receives time from here.
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let previous = self.last_ms.fetch_max(wall, Ordering::AcqRel);
        previous.max(wall)
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_back() {
        let c = SystemClock::new();
        let a = c.now_ms();
        c.last_ms.store(a + 10_000, Ordering::Release);
        assert!(c.now_ms() >= a + 10_000);
        assert!(a > 1_600_000_000_000);
    }
}
