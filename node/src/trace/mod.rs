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
//!
//! [`correlation_view`] and [`stats_view`] turn the tracker's records into the
//! HTTP API's JSON shapes ([`crate::api`]), so every `NodeApi` implementation
//! answers with the same fields.

#[cfg(feature = "server")]
pub mod otel;
pub mod tracker;

use crate::api::{
    CorrelationView, LatencySummaryView, StageTimeView, TrackerStatsView, TxTimelineView,
};
use tracker::{CorrelationTracker, LatencySummary, Timeline};
use uuid::Uuid;

impl From<Timeline> for TxTimelineView {
    fn from(t: Timeline) -> Self {
        TxTimelineView {
            correlation_id: t.correlation_id,
            tx_hash: t.tx_hash,
            height: t.height,
            outcome: t.outcome,
            completed: t.completed,
            stages: t
                .stages
                .into_iter()
                .map(|s| StageTimeView {
                    stage: s.stage.as_str().to_owned(),
                    at_unix_us: s.at_unix_us,
                })
                .collect(),
        }
    }
}

impl From<LatencySummary> for LatencySummaryView {
    fn from(l: LatencySummary) -> Self {
        LatencySummaryView {
            count: l.count,
            p50: l.p50,
            p95: l.p95,
            p99: l.p99,
            max: l.max,
        }
    }
}

/// What `tracker` holds under `id`, as node `node` (validator `validator`)
/// answers `GET /api/v1/correlation/{id}`. `entries` is empty when the id is
/// unknown; the caller decides that this is a 404.
pub fn correlation_view(
    tracker: &CorrelationTracker,
    node: String,
    validator: u16,
    id: Uuid,
) -> CorrelationView {
    CorrelationView {
        node,
        validator,
        correlation_id: id,
        entries: tracker.get(&id).into_iter().map(Into::into).collect(),
    }
}

/// `tracker`'s counters and latency percentiles, as node `node` (validator
/// `validator`) answers `GET /api/v1/correlation/stats`.
pub fn stats_view(tracker: &CorrelationTracker, node: String, validator: u16) -> TrackerStatsView {
    let s = tracker.stats();
    TrackerStatsView {
        node,
        validator,
        active: s.active,
        completed: s.completed,
        tracked_total: s.tracked_total,
        completed_total: s.completed_total,
        evicted_capacity_total: s.evicted_capacity_total,
        evicted_age_total: s.evicted_age_total,
        max_entries: s.max_entries,
        max_age_ms: s.max_age_ms,
        stage_latency_us: s
            .stage_latency_us
            .into_iter()
            .map(|(stage, l)| (stage.to_owned(), l.into()))
            .collect(),
    }
}

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
    use super::tracker::{Origin, Stage, TrackerConfig};
    use super::*;
    use bitcraps_crypto::Hash32;

    #[test]
    fn unix_now_us_is_after_2020_and_moves_forward() {
        // 2020-01-01T00:00:00Z in microseconds.
        const JAN_2020_US: u64 = 1_577_836_800_000_000;
        let a = unix_now_us();
        let b = unix_now_us();
        assert!(a > JAN_2020_US, "{a}");
        assert!(b >= a);
    }

    #[test]
    fn views_serialize_exactly_like_the_tracker_types() {
        // The API views mirror the tracker's types field for field; the
        // JSON must be the same so either can be documented as the shape.
        let t = CorrelationTracker::new(TrackerConfig::default());
        let id = Uuid::from_bytes([9; 16]);
        let tx = Hash32([3; 32]);
        t.begin(id, tx, Origin::default(), Stage::Received, 1_000);
        t.record(&tx, Stage::Certified, 1_500);
        t.record(&tx, Stage::Executed, 2_000);
        t.set_block(&tx, 7);
        t.set_outcome(&tx, "accepted");

        let timelines = t.get(&id);
        let view = correlation_view(&t, "val2".into(), 2, id);
        assert_eq!(
            serde_json::to_value(&view.entries).unwrap(),
            serde_json::to_value(&timelines).unwrap()
        );
        assert_eq!(view.node, "val2");
        assert_eq!(view.validator, 2);
        assert_eq!(view.entries[0].stages[1].stage, "certified");
        assert_eq!(view.entries[0].height, Some(7));
        assert!(correlation_view(&t, "val2".into(), 2, Uuid::nil())
            .entries
            .is_empty());

        let stats = stats_view(&t, "val2".into(), 2);
        let mut want = serde_json::to_value(t.stats()).unwrap();
        want["node"] = "val2".into();
        want["validator"] = 2.into();
        assert_eq!(serde_json::to_value(&stats).unwrap(), want);
        assert_eq!(stats.stage_latency_us["executed"].max, 1_000);
        assert_eq!(stats.completed, 1);
    }
}
