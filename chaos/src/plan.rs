//! Fault plans: what goes wrong, where and when, in one simulated run.
//!
//! A plan has a *fault phase* `[0, heal_at_ms)` with network faults, partitions,
//! clock faults and crashes, then a *healed phase* (GST in the partial-synchrony
//! model): links are reliable with bounded delay, partitions end and crashed
//! nodes are back. Byzantine validators misbehave in both phases. Every plan is
//! derived from the seed, so the seed alone replays the run.

use crate::rng::SimRng;
use serde::Serialize;

/// How a byzantine validator misbehaves (commonware-style mocks plus Twins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Behavior {
    /// As leader, sends conflicting proposals to different halves of the peers.
    Equivocate,
    /// Also votes for a made-up block, and finalizes and nullifies the same view.
    DoubleVote,
    /// Corrupts the signature on everything it sends.
    InvalidSignatures,
    /// Never sends its votes (still proposes).
    Withhold,
    /// Also sends random bytes and oversized frames.
    Garbage,
    /// Floods peers with junk votes, certificates and block requests.
    Spam,
    /// Runs twice with the same key (Twins); partitions decide who sees which.
    Twin,
    /// Sends nothing at all.
    Silent,
}

impl std::str::FromStr for Behavior {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL_BEHAVIORS
            .iter()
            .find(|b| format!("{b:?}").eq_ignore_ascii_case(s))
            .copied()
            .ok_or_else(|| {
                let names: Vec<String> = ALL_BEHAVIORS.iter().map(|b| format!("{b:?}")).collect();
                format!("unknown behavior '{s}' (one of: {})", names.join(", "))
            })
    }
}

pub const ALL_BEHAVIORS: [Behavior; 8] = [
    Behavior::Equivocate,
    Behavior::DoubleVote,
    Behavior::InvalidSignatures,
    Behavior::Withhold,
    Behavior::Garbage,
    Behavior::Spam,
    Behavior::Twin,
    Behavior::Silent,
];

/// Link faults during the fault phase.
#[derive(Debug, Clone, Serialize)]
pub struct NetFaults {
    pub delay_min_ms: u64,
    pub delay_max_ms: u64,
    pub jitter_ms: u64,
    pub loss: f64,
    pub duplicate: f64,
}

/// Who cannot reach whom. Instances are simulated processes; a Twin's second
/// instance has an id >= n.
#[derive(Debug, Clone, Serialize)]
pub enum Partition {
    /// Instances in different groups cannot talk; unlisted instances form their own group.
    Symmetric { groups: Vec<Vec<usize>> },
    /// Messages from `from` to `to` are dropped; the reverse direction works.
    OneWay { from: Vec<usize>, to: Vec<usize> },
    /// Whoever leads the current view is cut off from everyone.
    IsolateLeader,
    /// Two overlapping majorities: only `a` and `b` cannot talk to each other.
    Overlapping { a: usize, b: usize },
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionWindow {
    pub start_ms: u64,
    pub end_ms: u64,
    pub partition: Partition,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClockFault {
    pub instance: usize,
    pub offset_ms: i64,
    pub drift_ppm: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrashFault {
    pub instance: usize,
    pub at_ms: u64,
    pub down_ms: u64,
}

/// Everything that will go wrong in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub validators: usize,
    /// (validator index, behavior) for each byzantine validator.
    pub byzantine: Vec<(usize, Behavior)>,
    pub net: NetFaults,
    pub partitions: Vec<PartitionWindow>,
    pub clocks: Vec<ClockFault>,
    pub crashes: Vec<CrashFault>,
    pub heal_at_ms: u64,
    /// After healing, every honest node must commit new blocks within this bound.
    pub liveness_bound_ms: u64,
}

impl Plan {
    /// Instance ids of twins' second copies, `(instance, index)`.
    pub fn twin_instances(&self) -> Vec<(usize, usize)> {
        let mut next = self.validators;
        let mut out = Vec::new();
        for (idx, b) in &self.byzantine {
            if *b == Behavior::Twin {
                out.push((next, *idx));
                next += 1;
            }
        }
        out
    }

    pub fn is_byzantine(&self, index: usize) -> bool {
        self.byzantine.iter().any(|(i, _)| *i == index)
    }

    pub fn behavior(&self, index: usize) -> Option<Behavior> {
        self.byzantine
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| *b)
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.validators)
            .filter(|i| !self.is_byzantine(*i))
            .collect()
    }

    /// A fixed, moderate plan: the same fault types every seed, placed by the seed.
    pub fn standard(rng: &mut SimRng, n: usize, f: usize, forced: Option<Behavior>) -> Plan {
        let byzantine = pick_byzantine(rng, n, f, |i| {
            forced.unwrap_or(ALL_BEHAVIORS[i % ALL_BEHAVIORS.len()])
        });
        let mut plan = Plan {
            validators: n,
            byzantine,
            net: NetFaults {
                delay_min_ms: 2,
                delay_max_ms: 20,
                jitter_ms: 10,
                loss: 0.02,
                duplicate: 0.02,
            },
            partitions: Vec::new(),
            clocks: Vec::new(),
            crashes: Vec::new(),
            heal_at_ms: 6_000,
            liveness_bound_ms: 20_000,
        };
        let honest = plan.honest();
        if let Some(&victim) = rng.pick(&honest) {
            let start = rng.range(500, 2_500);
            plan.partitions.push(PartitionWindow {
                start_ms: start,
                end_ms: start + rng.range(500, 2_000),
                partition: Partition::Symmetric {
                    groups: vec![vec![victim]],
                },
            });
        }
        if let Some(&victim) = rng.pick(&honest) {
            plan.crashes.push(CrashFault {
                instance: victim,
                at_ms: rng.range(1_000, 4_000),
                down_ms: rng.range(200, 1_500),
            });
        }
        for i in 0..n {
            plan.clocks.push(ClockFault {
                instance: i,
                offset_ms: rng.range(0, 400) as i64 - 200,
                drift_ppm: rng.range(0, 2_000) as i64 - 1_000,
            });
        }
        plan.add_twin_split(rng);
        plan
    }

    /// Swarm testing: the seed chooses which faults happen and how hard.
    pub fn swarm(rng: &mut SimRng, n: usize, f: usize, forced: Option<Behavior>) -> Plan {
        let mut byz = pick_byzantine(rng, n, f, |_| ALL_BEHAVIORS[0]);
        for b in byz.iter_mut() {
            let drawn = *rng.pick(&ALL_BEHAVIORS).unwrap_or(&Behavior::Silent);
            b.1 = forced.unwrap_or(drawn);
        }
        let delay_min_ms = rng.range(1, 10);
        let mut plan = Plan {
            validators: n,
            byzantine: byz,
            net: NetFaults {
                delay_min_ms,
                delay_max_ms: delay_min_ms + rng.range(0, 40),
                jitter_ms: rng.range(0, 20),
                loss: if rng.chance(0.6) {
                    rng.unit() * 0.15
                } else {
                    0.0
                },
                duplicate: if rng.chance(0.5) {
                    rng.unit() * 0.1
                } else {
                    0.0
                },
            },
            partitions: Vec::new(),
            clocks: Vec::new(),
            crashes: Vec::new(),
            heal_at_ms: rng.range(3_000, 8_000),
            liveness_bound_ms: 20_000,
        };
        let honest = plan.honest();
        let all: Vec<usize> = (0..n).collect();
        for _ in 0..rng.range(0, 3) {
            let start = rng.range(0, plan.heal_at_ms.saturating_sub(500));
            let end = (start + rng.range(300, 3_000)).min(plan.heal_at_ms);
            let partition = match rng.range(0, 3) {
                0 => {
                    let mut shuffled = all.clone();
                    rng.shuffle(&mut shuffled);
                    let cut = rng.range(1, (n - 1) as u64) as usize;
                    Partition::Symmetric {
                        groups: vec![shuffled[..cut].to_vec()],
                    }
                }
                1 => {
                    let mut shuffled = all.clone();
                    rng.shuffle(&mut shuffled);
                    let cut = rng.range(1, (n - 1) as u64) as usize;
                    Partition::OneWay {
                        from: shuffled[..cut].to_vec(),
                        to: shuffled[cut..].to_vec(),
                    }
                }
                2 => Partition::IsolateLeader,
                _ => {
                    let a = rng.range(0, n as u64 - 1) as usize;
                    let b = (a + rng.range(1, n as u64 - 1) as usize) % n;
                    Partition::Overlapping { a, b }
                }
            };
            plan.partitions.push(PartitionWindow {
                start_ms: start,
                end_ms: end,
                partition,
            });
        }
        if rng.chance(0.6) {
            for i in 0..n {
                plan.clocks.push(ClockFault {
                    instance: i,
                    offset_ms: rng.range(0, 1_200) as i64 - 600,
                    drift_ppm: rng.range(0, 4_000) as i64 - 2_000,
                });
            }
        }
        for _ in 0..rng.range(0, 2) {
            if let Some(&victim) = rng.pick(&honest) {
                let at_ms = rng.range(0, plan.heal_at_ms.saturating_sub(200));
                let down_ms = rng.range(100, plan.heal_at_ms - at_ms);
                plan.crashes.push(CrashFault {
                    instance: victim,
                    at_ms,
                    down_ms,
                });
            }
        }
        plan.add_twin_split(rng);
        plan
    }

    /// Twins: if any validator is twinned, split honest validators in two
    /// groups and put one copy of every twin in each, for part of the fault phase.
    fn add_twin_split(&mut self, rng: &mut SimRng) {
        let twins = self.twin_instances();
        if twins.is_empty() {
            return;
        }
        let mut honest = self.honest();
        rng.shuffle(&mut honest);
        let half = honest.len().div_ceil(2);
        let mut group: Vec<usize> = honest[..half].to_vec();
        // The first copy of each twinned validator joins group A; the second
        // copy (instance >= n) stays with everyone else in group B.
        group.extend(twins.iter().map(|(_, idx)| *idx));
        let start = rng.range(0, self.heal_at_ms / 2);
        self.partitions.push(PartitionWindow {
            start_ms: start,
            end_ms: self.heal_at_ms,
            partition: Partition::Symmetric {
                groups: vec![group],
            },
        });
    }

    /// One-line human summary printed per seed in swarm mode.
    pub fn summary(&self) -> String {
        let byz: Vec<String> = self
            .byzantine
            .iter()
            .map(|(i, b)| format!("{i}:{b:?}"))
            .collect();
        format!(
            "byzantine=[{}] delay={}..{}ms jitter={}ms loss={:.3} dup={:.3} partitions={} clocks={} crashes={} heal_at={}ms",
            byz.join(","),
            self.net.delay_min_ms,
            self.net.delay_max_ms,
            self.net.jitter_ms,
            self.net.loss,
            self.net.duplicate,
            self.partitions.len(),
            self.clocks.len(),
            self.crashes.len(),
            self.heal_at_ms
        )
    }
}

fn pick_byzantine(
    rng: &mut SimRng,
    n: usize,
    f: usize,
    behavior: impl Fn(usize) -> Behavior,
) -> Vec<(usize, Behavior)> {
    let mut idx: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut idx);
    let mut chosen: Vec<usize> = idx.into_iter().take(f.min(n)).collect();
    chosen.sort_unstable();
    // Behaviour choice depends on the seed so every kind is exercised across seeds.
    let offset = rng.range(0, ALL_BEHAVIORS.len() as u64 - 1) as usize;
    chosen
        .into_iter()
        .enumerate()
        .map(|(k, i)| (i, behavior(k + offset)))
        .collect()
}
