//! The open-loop send schedule and what the generator's own delay was.
//!
//! The i-th transaction of a step has the intended send time
//! `t0 + i / rate`, fixed before the step starts. Its latency is measured
//! from that instant, not from when the request actually left: a sender
//! that is held up (by a full in-flight window, a slow signer, or its own
//! scheduling) makes the recorded latency larger instead of hiding the
//! delay. That is how the bench avoids coordinated omission.
//!
//! Times are microseconds on the bench's monotonic clock
//! ([`crate::engine::Clock::now_us`]).

/// A send is counted as late when it leaves this much after its intended
/// time: a millisecond of timer granularity plus scheduling noise is
/// normal, ten is the generator falling behind.
pub const LATE_THRESHOLD_US: u64 = 10_000;

/// Intended send times of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Intended time of transaction 0 (µs).
    pub t0_us: u64,
    /// Transactions per second (> 0).
    pub rate: u64,
    /// Transactions in the step: `rate * duration`.
    pub total: u64,
}

impl Schedule {
    /// `rate` per second for `duration_ms`, starting at `t0_us`.
    pub fn new(t0_us: u64, rate: u64, duration_ms: u64) -> Schedule {
        let rate = rate.max(1);
        let total = u128::from(rate) * u128::from(duration_ms) / 1_000;
        Schedule {
            t0_us,
            rate,
            total: u64::try_from(total).unwrap_or(u64::MAX),
        }
    }

    /// Intended send time of transaction `i` (µs): `t0 + i * 1e6 / rate`,
    /// rounded down, without overflow.
    pub fn intended_us(&self, i: u64) -> u64 {
        let offset = u128::from(i) * 1_000_000 / u128::from(self.rate);
        self.t0_us
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// When the schedule ends (the intended time of transaction `total`).
    pub fn end_us(&self) -> u64 {
        self.intended_us(self.total)
    }
}

/// How far behind its schedule the sender was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Largest delay between an intended time and the moment (µs).
    pub max_us: u64,
    /// Sends at least [`LATE_THRESHOLD_US`] late.
    pub late: u64,
}

impl Lag {
    /// Records a send intended at `intended_us` that happened at `now_us`.
    pub fn record(&mut self, intended_us: u64, now_us: u64) {
        let lag = now_us.saturating_sub(intended_us);
        self.max_us = self.max_us.max(lag);
        if lag >= LATE_THRESHOLD_US {
            self.late += 1;
        }
    }

    /// Adds another sender's lag.
    pub fn merge(&mut self, other: &Lag) {
        self.max_us = self.max_us.max(other.max_us);
        self.late += other.late;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_follow_the_rate() {
        let s = Schedule::new(1_000, 200, 5_000);
        assert_eq!(s.total, 1_000);
        assert_eq!(s.intended_us(0), 1_000);
        assert_eq!(s.intended_us(1), 6_000);
        assert_eq!(s.intended_us(200), 1_001_000);
        assert_eq!(s.end_us(), 5_001_000);
        // Rates that do not divide a second: no drift, floor per slot.
        let s = Schedule::new(0, 3, 1_000);
        assert_eq!(s.total, 3);
        assert_eq!(
            (0..4).map(|i| s.intended_us(i)).collect::<Vec<_>>(),
            vec![0, 333_333, 666_666, 1_000_000]
        );
        let s = Schedule::new(0, 7, 60_000);
        assert_eq!(s.total, 420);
        assert_eq!(s.intended_us(420), 60_000_000);
        // Monotonic, and never overflowing at the caps.
        let s = Schedule::new(u64::MAX - 10, 1_000_000, 86_400_000);
        assert_eq!(s.intended_us(s.total), u64::MAX);
        let s = Schedule::new(0, 0, 1_000);
        assert_eq!(s.rate, 1);
        assert_eq!(s.total, 1);
    }

    #[test]
    fn lag_counts_late_sends() {
        let mut lag = Lag::default();
        lag.record(1_000, 900); // early: no lag
        lag.record(1_000, 1_500);
        assert_eq!(
            lag,
            Lag {
                max_us: 500,
                late: 0
            }
        );
        lag.record(1_000, 1_000 + LATE_THRESHOLD_US);
        lag.record(0, 50_000);
        assert_eq!(
            lag,
            Lag {
                max_us: 50_000,
                late: 2
            }
        );
        let mut other = Lag {
            max_us: 70_000,
            late: 1,
        };
        other.merge(&lag);
        assert_eq!(
            other,
            Lag {
                max_us: 70_000,
                late: 3
            }
        );
    }
}
