//! The simulated network: per-message delay, jitter (which also reorders), loss,
//! duplication, and partitions that come and heal. All draws come from the
//! network's own RNG stream.

use crate::plan::{NetFaults, Partition, PartitionWindow};
use crate::rng::SimRng;

/// Delivery decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Dropped,
    /// Delivered after these delays (µs); two entries when duplicated.
    Delivered(Vec<u64>),
}

#[derive(Debug)]
pub struct SimNet {
    rng: SimRng,
    faults: NetFaults,
    partitions: Vec<PartitionWindow>,
    heal_at_ms: u64,
    /// Validator index of each instance (twins share one).
    index_of: Vec<usize>,
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl SimNet {
    pub fn new(
        rng: SimRng,
        faults: NetFaults,
        partitions: Vec<PartitionWindow>,
        heal_at_ms: u64,
        index_of: Vec<usize>,
    ) -> Self {
        SimNet {
            rng,
            faults,
            partitions,
            heal_at_ms,
            index_of,
            sent: 0,
            dropped: 0,
            duplicated: 0,
        }
    }

    /// Is the link `from -> to` cut at `now_ms`? `leader` is the validator index
    /// leading the highest view any honest node is in.
    pub fn blocked(&self, from: usize, to: usize, now_ms: u64, leader: usize) -> bool {
        self.partitions
            .iter()
            .filter(|w| w.start_ms <= now_ms && now_ms < w.end_ms)
            .any(|w| match &w.partition {
                Partition::Symmetric { groups } => {
                    let group_of = |x: usize| groups.iter().position(|g| g.contains(&x));
                    group_of(from) != group_of(to)
                }
                Partition::OneWay { from: a, to: b } => a.contains(&from) && b.contains(&to),
                Partition::IsolateLeader => {
                    self.index_of.get(from) == Some(&leader)
                        || self.index_of.get(to) == Some(&leader)
                }
                Partition::Overlapping { a, b } => {
                    (from == *a && to == *b) || (from == *b && to == *a)
                }
            })
    }

    /// Base delay plus jitter; jitter is what reorders messages.
    fn delay_us(&mut self) -> u64 {
        let base = self.rng.range(
            self.faults.delay_min_ms * 1_000,
            self.faults.delay_max_ms * 1_000,
        );
        base + self.rng.range(0, self.faults.jitter_ms * 1_000)
    }

    /// Decides what happens to one message sent at `now_ms`.
    pub fn fate(&mut self, from: usize, to: usize, now_ms: u64, leader: usize) -> Fate {
        self.sent += 1;
        if self.blocked(from, to, now_ms, leader) {
            self.dropped += 1;
            return Fate::Dropped;
        }
        if now_ms >= self.heal_at_ms {
            // After GST: reliable, bounded delay.
            return Fate::Delivered(vec![self.rng.range(1_000, 10_000)]);
        }
        if self.rng.chance(self.faults.loss) {
            self.dropped += 1;
            return Fate::Dropped;
        }
        let mut delays = vec![self.delay_us()];
        if self.rng.chance(self.faults.duplicate) {
            self.duplicated += 1;
            delays.push(self.delay_us());
        }
        Fate::Delivered(delays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(partitions: Vec<PartitionWindow>) -> SimNet {
        SimNet::new(
            SimRng::new(1),
            NetFaults {
                delay_min_ms: 1,
                delay_max_ms: 5,
                jitter_ms: 0,
                loss: 0.0,
                duplicate: 0.0,
            },
            partitions,
            10_000,
            vec![0, 1, 2, 3],
        )
    }

    #[test]
    fn partitions_apply_only_in_their_window() {
        let n = net(vec![PartitionWindow {
            start_ms: 100,
            end_ms: 200,
            partition: Partition::Symmetric {
                groups: vec![vec![0]],
            },
        }]);
        assert!(!n.blocked(0, 1, 50, 9));
        assert!(n.blocked(0, 1, 150, 9));
        assert!(n.blocked(1, 0, 150, 9));
        assert!(!n.blocked(1, 2, 150, 9));
        assert!(!n.blocked(0, 1, 200, 9));
    }

    #[test]
    fn one_way_and_leader_isolation() {
        let n = net(vec![
            PartitionWindow {
                start_ms: 0,
                end_ms: 100,
                partition: Partition::OneWay {
                    from: vec![0],
                    to: vec![1],
                },
            },
            PartitionWindow {
                start_ms: 100,
                end_ms: 200,
                partition: Partition::IsolateLeader,
            },
        ]);
        assert!(n.blocked(0, 1, 10, 9));
        assert!(!n.blocked(1, 0, 10, 9));
        assert!(n.blocked(2, 3, 150, 3));
        assert!(!n.blocked(1, 2, 150, 3));
    }

    #[test]
    fn loss_drops_roughly_the_configured_share() {
        let mut n = net(vec![]);
        n.faults.loss = 0.25;
        let dropped = (0..4000)
            .filter(|_| n.fate(0, 1, 10, 9) == Fate::Dropped)
            .count();
        assert!((800..1200).contains(&dropped), "dropped {dropped}");
    }
}
