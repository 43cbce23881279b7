//! What one measured step records while it runs ([`StepStats`]), what it
//! amounts to afterwards ([`StepResult`]), and the state every bench task
//! shares ([`Shared`]).
//!
//! Percentiles come from localnet's [`LatencySamples`] (nearest rank over
//! a bounded reservoir). Transaction latencies are kept in microseconds and
//! reported in milliseconds with one decimal; block latencies in ms.

use super::pending::Pending;
use super::schedule::Lag;
use crate::engine::Clock;
use crate::localnet::stats::{per_second, LatencySamples};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Latency samples kept per step (a reservoir beyond that): 8 MiB.
pub const SAMPLE_CAPACITY: usize = 1_000_000;
/// Distinct rejection codes counted; others are counted as `other`.
pub const MAX_CODES: usize = 32;
/// Share of the offered transactions that must commit for a step to pass.
pub const MIN_COMMITTED_RATIO: f64 = 0.95;

/// Locks a mutex even if a panicking task poisoned it (counters stay
/// meaningful).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts `code` in `codes`, with at most [`MAX_CODES`] distinct keys.
pub fn count_code(codes: &mut BTreeMap<String, u64>, code: &str) {
    let key = if codes.len() < MAX_CODES || codes.contains_key(code) {
        code
    } else {
        "other"
    };
    *codes.entry(key.to_string()).or_insert(0) += 1;
}

/// Live record of one step.
#[derive(Debug)]
pub struct StepStats {
    /// Transactions sent after this instant (µs) do not count as committed
    /// within the window.
    pub window_end_us: u64,
    /// Intended-send-to-commit-seen latency of each committed tx (µs).
    pub latency_us: LatencySamples,
    /// Commit seen minus the block's proposer timestamp (ms), per block.
    pub consensus_ms: LatencySamples,
    /// Actual send minus intended send (µs), per request.
    pub send_lag_us: LatencySamples,
    /// Transactions the generator handed to a sender.
    pub sent: u64,
    /// Their encoded bytes.
    pub sent_bytes: u64,
    /// Answered 202 by a node.
    pub accepted: u64,
    /// Bench transactions seen committed (drain included).
    pub committed: u64,
    /// ... of which seen committed before `window_end_us`.
    pub committed_in_window: u64,
    /// Blocks seen during the step, and the transactions they held (bench
    /// transactions or not).
    pub blocks: u64,
    pub block_txs: u64,
    /// Refused by a node, by error code.
    pub rejected: BTreeMap<String, u64>,
    /// Requests that got no answer (connection, timeout, bad body).
    pub errors: BTreeMap<String, u64>,
    /// Sent but never seen committed (timeout, eviction, end of drain).
    pub timed_out: u64,
    /// The generator's delay behind its schedule.
    pub generator_lag: Lag,
    /// The senders' delay (generator plus waiting for an in-flight slot).
    pub send_lag: Lag,
}

impl StepStats {
    pub fn new(window_end_us: u64) -> StepStats {
        StepStats {
            window_end_us,
            latency_us: LatencySamples::new(SAMPLE_CAPACITY),
            consensus_ms: LatencySamples::new(SAMPLE_CAPACITY),
            send_lag_us: LatencySamples::new(SAMPLE_CAPACITY),
            sent: 0,
            sent_bytes: 0,
            accepted: 0,
            committed: 0,
            committed_in_window: 0,
            blocks: 0,
            block_txs: 0,
            rejected: BTreeMap::new(),
            errors: BTreeMap::new(),
            timed_out: 0,
            generator_lag: Lag::default(),
            send_lag: Lag::default(),
        }
    }

    /// A bench transaction intended at `intended_us` was seen committed at
    /// `now_us`: its latency counts from the intended time, however late it
    /// was actually sent.
    pub fn record_commit(&mut self, intended_us: u64, now_us: u64) {
        self.latency_us.record(now_us.saturating_sub(intended_us));
        self.committed += 1;
        if now_us <= self.window_end_us {
            self.committed_in_window += 1;
        }
    }

    /// A request intended at `intended_us` left at `now_us`.
    pub fn record_send(&mut self, intended_us: u64, now_us: u64) {
        self.send_lag.record(intended_us, now_us);
        self.send_lag_us.record(now_us.saturating_sub(intended_us));
    }
}

/// Totals of the whole run (every step), for what outlives a step.
#[derive(Debug, Default)]
pub struct RunCounters {
    /// Refused or unanswered transactions re-sent to fill their account's
    /// nonce gap.
    pub repairs_started: AtomicU64,
    /// ... that a node then held (accepted, duplicate or already committed).
    pub repairs_done: AtomicU64,
    /// ... given up at the end of the run.
    pub repairs_abandoned: AtomicU64,
    /// Not started because [`super::submit::MAX_REPAIRS`] were running: the
    /// account stays stuck behind the gap.
    pub repairs_dropped: AtomicU64,
    /// Submit requests sent (first tries, single or batch).
    pub requests_sent: AtomicU64,
    /// Transactions in them.
    pub txs_sent: AtomicU64,
}

impl RunCounters {
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Counts one submit request carrying `txs` transactions.
    pub fn request(&self, txs: usize) {
        self.requests_sent.fetch_add(1, Ordering::Relaxed);
        self.txs_sent.fetch_add(txs as u64, Ordering::Relaxed);
    }

    /// Average transactions per request sent (0 before any).
    pub fn tx_per_request(&self) -> f64 {
        let requests = Self::get(&self.requests_sent);
        if requests == 0 {
            return 0.0;
        }
        Self::get(&self.txs_sent) as f64 / requests as f64
    }
}

/// What the generator, the senders and the commit follower share.
#[derive(Debug)]
pub struct Shared {
    pub clock: Arc<dyn Clock>,
    pub pending: Mutex<Pending>,
    pub step: Mutex<StepStats>,
    pub run: RunCounters,
}

impl Shared {
    pub fn new(clock: Arc<dyn Clock>, pending_capacity: usize) -> Shared {
        Shared {
            clock,
            pending: Mutex::new(Pending::new(pending_capacity)),
            step: Mutex::new(StepStats::new(0)),
            run: RunCounters::default(),
        }
    }

    /// Starts a fresh step record; returns the previous one.
    pub fn begin_step(&self, window_end_us: u64) -> StepStats {
        std::mem::replace(&mut *lock(&self.step), StepStats::new(window_end_us))
    }
}

/// Rounds to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn us_to_ms(us: Option<u64>) -> Option<f64> {
    us.map(|v| round1(v as f64 / 1_000.0))
}

/// The figures of one finished step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    /// Offered rate (tx/s) the schedule asked for.
    pub rate: u64,
    /// Length of the measured window (s).
    pub duration_s: f64,
    /// Transactions sent in the window.
    pub offered: u64,
    /// `offered` over the time the generator took (at least the window).
    pub offered_tps: f64,
    /// Bench transactions seen committed, drain included.
    pub committed: u64,
    /// Bench transactions seen committed within the window, per second.
    pub committed_tps: f64,
    /// `committed / offered`.
    pub committed_ratio: f64,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub latency_ms_max: Option<f64>,
    pub latency_samples: u64,
    pub consensus_latency_ms_p50: Option<u64>,
    pub consensus_latency_ms_p99: Option<u64>,
    pub blocks: u64,
    /// Transactions per block seen during the step (all of them).
    pub txs_per_block: f64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_code: BTreeMap<String, u64>,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub timed_out: u64,
    pub generator_lag_ms_max: f64,
    /// Transactions the generator handed over 10 ms or more behind schedule.
    pub generator_late: u64,
    pub send_lag_ms_p99: Option<f64>,
    pub send_lag_ms_max: f64,
    /// Mean encoded size of the transactions sent (bytes).
    pub tx_size_bytes: u64,
    /// CPU% of each validator over the window (100 = one core).
    pub cpu_percent_per_node: Vec<Option<f64>>,
    /// Their sum.
    pub cpu_percent: f64,
    /// CPU% of the bench process itself (signer, HTTP, follower).
    pub client_cpu_percent: Option<f64>,
}

/// What a step's figures are computed from besides its [`StepStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepContext {
    pub rate: u64,
    pub window_ms: u64,
    /// How long the generator took to hand over the whole schedule (µs).
    pub generator_us: u64,
    pub cpu_percent_per_node: Vec<Option<f64>>,
    pub client_cpu_percent: Option<f64>,
}

impl StepResult {
    pub fn from_stats(s: &StepStats, c: StepContext) -> StepResult {
        let lat = s.latency_us.percentiles(&[50.0, 95.0, 99.0, 100.0]);
        let at = |i: usize| us_to_ms(lat.get(i).copied().flatten());
        let blocks = s.consensus_ms.percentiles(&[50.0, 99.0]);
        let lag = s.send_lag_us.percentile(99.0);
        let busy_ms = c.window_ms.max(c.generator_us / 1_000);
        let rejected = s.rejected.values().sum();
        StepResult {
            rate: c.rate,
            duration_s: round1(c.window_ms as f64 / 1_000.0),
            offered: s.sent,
            offered_tps: round1(per_second(s.sent, busy_ms)),
            committed: s.committed,
            committed_tps: round1(per_second(s.committed_in_window, c.window_ms)),
            committed_ratio: if s.sent == 0 {
                0.0
            } else {
                (s.committed as f64 / s.sent as f64 * 1_000.0).round() / 1_000.0
            },
            latency_ms_p50: at(0),
            latency_ms_p95: at(1),
            latency_ms_p99: at(2),
            latency_ms_max: at(3),
            latency_samples: s.latency_us.count(),
            consensus_latency_ms_p50: blocks.first().copied().flatten(),
            consensus_latency_ms_p99: blocks.get(1).copied().flatten(),
            blocks: s.blocks,
            txs_per_block: if s.blocks == 0 {
                0.0
            } else {
                round1(s.block_txs as f64 / s.blocks as f64)
            },
            accepted: s.accepted,
            rejected,
            rejected_by_code: s.rejected.clone(),
            errors: s.errors.values().sum(),
            errors_by_kind: s.errors.clone(),
            timed_out: s.timed_out,
            generator_lag_ms_max: round1(s.generator_lag.max_us as f64 / 1_000.0),
            generator_late: s.generator_lag.late,
            send_lag_ms_p99: us_to_ms(lag),
            send_lag_ms_max: round1(s.send_lag.max_us as f64 / 1_000.0),
            tx_size_bytes: s.sent_bytes.checked_div(s.sent).unwrap_or(0),
            cpu_percent: round1(c.cpu_percent_per_node.iter().flatten().sum()),
            cpu_percent_per_node: c
                .cpu_percent_per_node
                .iter()
                .map(|p| p.map(round1))
                .collect(),
            client_cpu_percent: c.client_cpu_percent.map(round1),
        }
    }

    /// A `--saturate` step passes when its p99 is below `p99_bound_ms` and
    /// at least [`MIN_COMMITTED_RATIO`] of what it offered committed.
    pub fn passes(&self, p99_bound_ms: u64) -> bool {
        self.offered > 0
            && self.committed_ratio >= MIN_COMMITTED_RATIO
            && self.latency_ms_p99.is_some_and(|p| p < p99_bound_ms as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> StepContext {
        StepContext {
            rate: 100,
            window_ms: 10_000,
            generator_us: 10_000_000,
            cpu_percent_per_node: vec![Some(12.34), None, Some(50.0)],
            client_cpu_percent: Some(3.21),
        }
    }

    #[test]
    fn late_response_counts_from_the_intended_time() {
        let mut s = StepStats::new(5_000_000);
        // Intended at 1.000 s; the sender only got it out at 1.200 s (full
        // window), the block was seen at 1.250 s: 250 ms, not 50.
        s.record_send(1_000_000, 1_200_000);
        s.record_commit(1_000_000, 1_250_000);
        // Seen after the window: committed, but not within it.
        s.record_commit(4_990_000, 5_010_000);
        assert_eq!(s.committed, 2);
        assert_eq!(s.committed_in_window, 1);
        assert_eq!(s.latency_us.percentile(0.0), Some(20_000));
        assert_eq!(s.latency_us.percentile(100.0), Some(250_000));
        assert_eq!(s.send_lag.max_us, 200_000);
        assert_eq!(s.send_lag.late, 1);
    }

    #[test]
    fn step_result_figures() {
        let mut s = StepStats::new(u64::MAX);
        for ms in 1..=100u64 {
            s.record_commit(0, ms * 1_000);
        }
        s.sent = 200;
        s.sent_bytes = 200 * 141;
        s.blocks = 4;
        s.block_txs = 102;
        for ms in [10, 20, 30, 40] {
            s.consensus_ms.record(ms);
        }
        count_code(&mut s.rejected, "rate_limited");
        count_code(&mut s.rejected, "rate_limited");
        count_code(&mut s.errors, "transport");
        let r = StepResult::from_stats(&s, ctx());
        assert_eq!(r.latency_ms_p50, Some(50.0));
        assert_eq!(r.latency_ms_p95, Some(95.0));
        assert_eq!(r.latency_ms_p99, Some(99.0));
        assert_eq!(r.latency_ms_max, Some(100.0));
        assert_eq!(r.committed_tps, 10.0);
        assert_eq!(r.offered_tps, 20.0);
        assert_eq!(r.committed_ratio, 0.5);
        assert_eq!(r.consensus_latency_ms_p50, Some(20));
        assert_eq!(r.txs_per_block, 25.5);
        assert_eq!(r.rejected, 2);
        assert_eq!(r.errors, 1);
        assert_eq!(r.tx_size_bytes, 141);
        assert_eq!(r.cpu_percent, 62.3);
        assert_eq!(r.cpu_percent_per_node, vec![Some(12.3), None, Some(50.0)]);
        assert!(!r.passes(1_000), "half committed");
        // A generator that took longer than the window spreads its offer.
        let slow = StepResult::from_stats(
            &s,
            StepContext {
                generator_us: 20_000_000,
                ..ctx()
            },
        );
        assert_eq!(slow.offered_tps, 10.0);
        assert_eq!(
            StepResult::from_stats(&StepStats::new(0), ctx()).latency_ms_p50,
            None
        );
    }

    #[test]
    fn pass_rule() {
        let mut s = StepStats::new(u64::MAX);
        for ms in 1..=100u64 {
            s.record_commit(0, ms * 1_000);
        }
        s.sent = 100;
        let r = StepResult::from_stats(&s, ctx());
        assert!(r.passes(100), "p99 99 ms < 100");
        assert!(!r.passes(99), "p99 99 ms is not under 99");
        s.sent = 106; // 100/106 < 95%
        assert!(!StepResult::from_stats(&s, ctx()).passes(1_000));
        assert!(!StepResult::from_stats(&StepStats::new(0), ctx()).passes(1_000));
    }

    #[test]
    fn codes_are_bounded() {
        let mut codes = BTreeMap::new();
        for i in 0..100 {
            count_code(&mut codes, &format!("c{i}"));
        }
        count_code(&mut codes, "c0");
        assert_eq!(codes.len(), MAX_CODES + 1);
        assert_eq!(codes["c0"], 2);
        assert_eq!(codes["other"], 100 - MAX_CODES as u64);
    }
}
