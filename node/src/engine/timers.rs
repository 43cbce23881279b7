//! The timer queue: `ScheduleTimeout` effects wait here until their local time.
//!
//! The core ignores stale timeouts, so nothing is ever cancelled; the queue is
//! bounded only by what the core schedules (a few timers per view).

use bitcraps_consensus::{TimeoutKind, View};
use std::collections::BTreeMap;

/// Pending timeouts ordered by (deadline, insertion order).
#[derive(Debug, Default)]
pub struct Timers {
    queue: BTreeMap<(u64, u64), (View, TimeoutKind)>,
    seq: u64,
}

impl Timers {
    pub fn schedule(&mut self, at_ms: u64, view: View, kind: TimeoutKind) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), (view, kind));
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns every timer due at or before `now_ms`, earliest first.
    pub fn pop_due(&mut self, now_ms: u64) -> Vec<(View, TimeoutKind)> {
        let later = self.queue.split_off(&(now_ms.saturating_add(1), 0));
        let due = std::mem::replace(&mut self.queue, later);
        due.into_values().collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_due_in_order() {
        let mut t = Timers::default();
        t.schedule(30, 3, TimeoutKind::View);
        t.schedule(10, 1, TimeoutKind::Retry);
        t.schedule(10, 2, TimeoutKind::View);
        assert_eq!(t.next_deadline(), Some(10));
        assert!(t.pop_due(9).is_empty());
        assert_eq!(
            t.pop_due(10),
            vec![(1, TimeoutKind::Retry), (2, TimeoutKind::View)]
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(100), vec![(3, TimeoutKind::View)]);
        assert!(t.is_empty());
    }
}
