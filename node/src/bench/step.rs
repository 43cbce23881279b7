//! One measured step: the open-loop generator at a fixed rate for a fixed
//! window, then a bounded drain, then the step's figures.
//!
//! The generator walks the [`Schedule`]: it sleeps until a transaction's
//! intended time (or not at all when it is already due), takes the next
//! pre-signed transaction, registers it as pending under its intended time
//! and queues it for its account's validator (`account % N`). It never
//! waits for an answer; it blocks only when a validator's sender queue is
//! full, and then the delay is measured (generator lag) and counted in
//! every affected latency.
//!
//! After the window, the step waits up to the drain time for the pending
//! transactions to commit; what is left then is timed out. Node CPU% is
//! measured from the first intended send to the last handover.

use super::follower::IDLE_POLL_MS;
use super::sampler::CpuSnapshot;
use super::schedule::{Lag, Schedule};
use super::signer::Prepared;
use super::stats::{lock, Shared, StepContext, StepResult, StepStats};
use super::submit::{Job, Senders};
use super::{procfs, until_stopped, BenchError};
use crate::localnet::cluster::join_all;
use crate::localnet::NodeClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The first transaction of a step is intended this long after the step
/// starts, so the step begins on schedule rather than already behind.
pub const START_LEAD_US: u64 = 20_000;
/// The generator sleeps only when the next transaction is due at least this
/// far ahead; closer ones are sent at once (timers have ms granularity).
pub const MIN_SLEEP_US: u64 = 500;
/// Longest wait for the mempools to empty between `--saturate` steps.
pub const SETTLE_TIMEOUT_MS: u64 = 30_000;
/// Poll interval of that wait.
const SETTLE_POLL_MS: u64 = 100;

/// Everything a step needs, kept across the steps of one run.
#[derive(Debug)]
pub struct Runner {
    pub shared: Arc<Shared>,
    pub senders: Senders,
    pub signed: mpsc::Receiver<Prepared>,
    /// Validator process ids (`None`: not running).
    pub pids: Vec<Option<u32>>,
    pub clients: Vec<NodeClient>,
    /// How long a step waits for its transactions after the window (ms).
    pub drain_ms: u64,
    /// Set once Ctrl-C cut a step short.
    pub interrupted: bool,
}

/// What the generator did in one step.
#[derive(Debug, Default)]
struct Generated {
    sent: u64,
    bytes: u64,
    evicted: u64,
    lag: Lag,
}

impl Runner {
    /// Runs one step at `rate` tx/s for `window_ms`. Stops early (and says
    /// so in [`Runner::interrupted`]) when `stop` fires.
    pub async fn run_step(
        &mut self,
        rate: u64,
        window_ms: u64,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<StepResult, BenchError> {
        let clock = Arc::clone(&self.shared.clock);
        let t0 = clock.now_us().saturating_add(START_LEAD_US);
        let schedule = Schedule::new(t0, rate, window_ms);
        self.shared.begin_step(schedule.end_us());
        let cpu_before = CpuSnapshot::take(&self.pids, &*clock);
        let self_before = procfs::read_self_cpu_ticks();

        let generated = self.generate(&schedule, stop).await?;

        let end_us = clock.now_us();
        let cpu_after = CpuSnapshot::take(&self.pids, &*clock);
        let client_cpu = match (self_before, procfs::read_self_cpu_ticks()) {
            (Some(a), Some(b)) => Some(procfs::cpu_percent(
                b.saturating_sub(a),
                cpu_after.at_us.saturating_sub(cpu_before.at_us),
            )),
            _ => None,
        };
        {
            let mut s = lock(&self.shared.step);
            s.sent = generated.sent;
            s.sent_bytes = generated.bytes;
            s.timed_out += generated.evicted;
            s.generator_lag = generated.lag;
        }
        self.drain(stop).await;
        let left = lock(&self.shared.pending).clear();
        let mut stats: StepStats = self.shared.begin_step(u64::MAX);
        stats.timed_out += left;
        // A step cut short by Ctrl-C is measured over the time it ran.
        let ran_ms = end_us.saturating_sub(t0) / 1_000;
        let window_ms = if self.interrupted {
            window_ms.min(ran_ms).max(1)
        } else {
            window_ms
        };
        Ok(StepResult::from_stats(
            &stats,
            StepContext {
                rate,
                window_ms,
                generator_us: end_us.saturating_sub(t0),
                cpu_percent_per_node: cpu_before.percent_until(&cpu_after),
                client_cpu_percent: client_cpu,
            },
        ))
    }

    /// The open-loop generator. See the module docs.
    async fn generate(
        &mut self,
        schedule: &Schedule,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Generated, BenchError> {
        let clock = Arc::clone(&self.shared.clock);
        let validators = self.senders.validators().max(1);
        let mut g = Generated::default();
        for i in 0..schedule.total {
            if *stop.borrow() {
                self.interrupted = true;
                break;
            }
            let intended = schedule.intended_us(i);
            let now = clock.now_us();
            if intended > now.saturating_add(MIN_SLEEP_US) {
                let wait = Duration::from_micros(intended - now);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = until_stopped(stop) => continue,
                }
            }
            let prepared = tokio::select! {
                p = self.signed.recv() => p,
                () = until_stopped(stop) => continue,
            };
            let Some(p) = prepared else {
                return Err(BenchError::Failed("the signing thread stopped".into()));
            };
            g.lag.record(intended, clock.now_us());
            g.evicted += lock(&self.shared.pending).insert(p.hash, intended);
            g.sent += 1;
            g.bytes += u64::try_from(p.size).unwrap_or(0);
            let job = Job {
                hash: p.hash,
                hex: p.hex,
                intended_us: intended,
            };
            let queued = tokio::select! {
                ok = self.senders.send(p.account % validators, job) => ok,
                () = until_stopped(stop) => continue,
            };
            if !queued {
                return Err(BenchError::Failed("a sender stopped".into()));
            }
        }
        Ok(g)
    }

    /// Waits until nothing is pending, at most the drain time (or until
    /// `stop`).
    async fn drain(&self, stop: &mut watch::Receiver<bool>) {
        let clock = &self.shared.clock;
        let deadline = clock
            .now_us()
            .saturating_add(self.drain_ms.saturating_mul(1_000));
        while !lock(&self.shared.pending).is_empty() && clock.now_us() < deadline {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(IDLE_POLL_MS * 4)) => {}
                () = until_stopped(stop) => return,
            }
        }
    }

    /// Between `--saturate` steps: waits (bounded) until every validator's
    /// mempool is empty, so a step starts without the previous step's
    /// backlog. Returns the transactions still waiting when it gave up.
    pub async fn settle(&self, stop: &mut watch::Receiver<bool>) -> usize {
        let clock = &self.shared.clock;
        let deadline = clock.now_us().saturating_add(SETTLE_TIMEOUT_MS * 1_000);
        loop {
            let statuses = join_all(self.clients.iter().map(|c| c.status())).await;
            let waiting: usize = statuses
                .iter()
                .map(|s| s.as_ref().map_or(0, |s| s.mempool_len))
                .sum();
            if waiting == 0 || clock.now_us() >= deadline || *stop.borrow() {
                return waiting;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)) => {}
                () = until_stopped(stop) => return waiting,
            }
        }
    }
}
