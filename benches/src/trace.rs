//! Correlation tracker fixtures: a tracker filled to its bound, and the
//! calls one traced transaction costs its origin validator.

use bitcraps_crypto::Hash32;
use bitcraps_node::trace::tracker::{CorrelationTracker, Origin, Stage, TrackerConfig};
use uuid::Uuid;

/// The `i`-th transaction id (distinct for every `i`).
pub fn tx(i: u64) -> Hash32 {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&i.to_be_bytes());
    h[8] = 0xA5;
    Hash32(h)
}

/// The `i`-th correlation id (a UUIDv7 shape).
pub fn id(i: u64) -> Uuid {
    Uuid::from_u64_pair(0x0190_0000_0000_7000, i | 0x8000_0000_0000_0000)
}

/// A tracker bounded at `entries`, holding `entries` executed transactions
/// `0..entries` (so every latency ring is full and every new `begin` evicts).
pub fn full_tracker(entries: usize) -> CorrelationTracker {
    let t = CorrelationTracker::new(TrackerConfig {
        max_entries: entries,
        ..TrackerConfig::default()
    });
    for i in 0..entries as u64 {
        let at = i * 10;
        t.begin(id(i), tx(i), Origin::default(), Stage::Received, at);
        for (k, stage) in Stage::ALL.into_iter().skip(1).take(9).enumerate() {
            t.record(&tx(i), stage, at + 100 * (k as u64 + 1));
        }
    }
    t
}

/// What the origin validator's engine asks of the tracker for transactions
/// `first..first + n`, submitted 8 to a request: begin and admitted (HTTP),
/// verified, mempool, batched and proposed (its own proposal), then voted,
/// certified, committed and executed at execution. Returns how many
/// completed.
pub fn lifecycle(t: &CorrelationTracker, first: u64, n: u64) -> u64 {
    let mut completed = 0;
    for i in first..first + n {
        let (h, at) = (tx(i), i * 10);
        t.begin(id(i / 8), h, Origin::default(), Stage::Received, at);
        t.record(&h, Stage::Admitted, at + 1);
        t.record(&h, Stage::Verified, at + 2);
        t.record(&h, Stage::Mempool, at + 3);
        t.record_stages(&h, &[(Stage::Batched, at + 4), (Stage::Proposed, at + 5)]);
        let stages = [
            (Stage::Voted, at + 6),
            (Stage::Certified, at + 7),
            (Stage::Committed, at + 8),
            (Stage::Executed, at + 9),
        ];
        if t.executed(&h, &stages, i, "accepted").is_some() {
            completed += 1;
        }
    }
    completed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_tracker_stays_full_and_new_transactions_complete() {
        let t = full_tracker(64);
        assert_eq!(t.stats().active + t.stats().completed, 64);
        assert_eq!(lifecycle(&t, 1_000, 100), 100);
        let s = t.stats();
        assert_eq!(s.completed, 64, "the newest 64 are kept, all executed");
        assert_eq!(t.get(&id(1_088 / 8)).len(), 8);
        assert!(t.get(&id(0)).is_empty(), "evicted");
    }
}
