//! Transaction tracing across the validator set.
//!
//! Every HTTP request gets a correlation id ([`crate::http`]'s
//! `CorrelationId`). A submitted transaction keeps that id while it travels
//! through the node and the cluster: received, admitted, verified, pooled,
//! batched, proposed, voted on, certified, committed, executed and (for bets)
//! settled. Each validator records the time it saw each of those stages in its
//! own [`tracker::CorrelationTracker`], and `GET /api/v1/correlation/{id}`
//! returns that validator's view; `bitcraps trace` merges the views of several
//! nodes into one timeline.
//!
//! The tracker is pure (no clock, no runtime): callers pass the time. The one
//! wall-clock read the tracing code needs lives in [`unix_now_us`], so the
//! rest stays testable with made-up times.

pub mod otel;
pub mod tracker;

/// Microseconds since the Unix epoch, by the wall clock.
///
/// Stage times are compared across validators (`bitcraps trace` merges them),
/// so they must come from a clock the nodes share: the wall clock, not a
/// monotonic one. Returns 0 if the clock is set before 1970 and saturates at
/// `u64::MAX` (year 586 524).
// ARCHITECTURE.md invariant 1 keeps clock reads in runtime code; this is the
// tracing runtime's single read, used by the engine's stage hooks and the
// tracker's cleanup task, never by consensus logic.
#[allow(clippy::disallowed_methods)]
pub fn unix_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_now_us_is_after_2020_and_moves_forward() {
        // 2020-01-01T00:00:00Z in microseconds.
        const JAN_2020_US: u64 = 1_577_836_800_000_000;
        let a = unix_now_us();
        let b = unix_now_us();
        assert!(a > JAN_2020_US, "{a}");
        assert!(b >= a);
    }
}
