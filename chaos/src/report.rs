//! Campaigns: many seeds, checked in parallel, summarised in one JSON report.

use crate::plan::Behavior;
use crate::sim::{run_seed, SeedOutcome};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What to run.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub validators: usize,
    pub byzantine: usize,
    /// Seeds `first_seed .. first_seed + seeds`.
    pub first_seed: u64,
    pub seeds: u64,
    pub swarm: bool,
    pub unsafe_beyond_threshold: bool,
    pub behavior: Option<Behavior>,
    /// Every k-th seed runs twice and must produce the same trace hash (0: none).
    pub determinism_every: u64,
    pub threads: usize,
    /// Print one line per seed.
    pub verbose: bool,
}

/// A seed that failed a check, with the command that replays it.
#[derive(Debug, Clone, Serialize)]
pub struct FailingSeed {
    pub seed: u64,
    pub kind: String,
    pub detail: String,
    pub replay: String,
}

/// The JSON report (`--json FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    pub validators: usize,
    pub byzantine: usize,
    pub swarm: bool,
    pub seeds_run: u64,
    /// Seeds with at least one safety violation.
    pub safety_violations: u64,
    pub liveness_failures: u64,
    pub determinism_mismatches: u64,
    /// Seeds whose honest nodes committed nothing.
    pub seeds_without_commit: u64,
    pub min_committed_height: u64,
    pub recovery_ms_p50: u64,
    pub recovery_ms_max: u64,
    pub evidence_reported: u64,
    pub garbage_frames_rejected: u64,
    pub messages: u64,
    pub failing_seeds: Vec<FailingSeed>,
}

impl Campaign {
    pub fn validate(&self) -> Result<(), String> {
        if self.validators == 0 || self.validators > 64 {
            return Err("--validators must be 1..=64".into());
        }
        let f_max = (self.validators - 1) / 3;
        if self.byzantine > f_max && !self.unsafe_beyond_threshold {
            return Err(format!(
                "--byzantine {} exceeds f = {} for n = {} (safety is only promised for f < n/3); pass --unsafe-beyond-threshold to run it anyway",
                self.byzantine, f_max, self.validators
            ));
        }
        if self.byzantine >= self.validators {
            return Err("--byzantine must be smaller than --validators".into());
        }
        if self.seeds == 0 {
            return Err("--seeds must be at least 1".into());
        }
        Ok(())
    }

    pub fn replay_command(&self, seed: u64) -> String {
        let mut cmd = format!(
            "bitcraps-chaos sim --validators {} --byzantine {} --seed {}",
            self.validators, self.byzantine, seed
        );
        if self.swarm {
            cmd.push_str(" --swarm");
        }
        if self.unsafe_beyond_threshold {
            cmd.push_str(" --unsafe-beyond-threshold");
        }
        if let Some(b) = self.behavior {
            cmd.push_str(&format!(" --behavior {b:?}"));
        }
        cmd
    }

    fn one(&self, seed: u64) -> SeedOutcome {
        run_seed(
            self.validators,
            self.byzantine,
            seed,
            self.swarm,
            self.behavior,
        )
    }
}

/// Runs every seed of the campaign (in parallel, results ordered by seed).
pub fn run_campaign(c: &Campaign) -> Result<CampaignReport, String> {
    c.validate()?;
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<(SeedOutcome, Option<bool>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..c.threads.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= c.seeds {
                    break;
                }
                let seed = c.first_seed + k;
                let out = c.one(seed);
                let same = (c.determinism_every > 0 && k.is_multiple_of(c.determinism_every))
                    .then(|| c.one(seed).trace_hash == out.trace_hash);
                if c.verbose {
                    println!(
                        "seed {seed}: height {} recovery {:?} ms violations {} liveness {} | {}",
                        out.min_committed_height,
                        out.recovery_ms,
                        out.safety_violations.len(),
                        if out.liveness_failure.is_some() {
                            "FAIL"
                        } else {
                            "ok"
                        },
                        out.plan
                    );
                }
                if let Ok(mut r) = results.lock() {
                    r.push((out, same));
                }
            });
        }
    });
    let mut results = results.into_inner().map_err(|_| "worker panicked")?;
    results.sort_by_key(|(o, _)| o.seed);
    Ok(summarise(c, &results))
}

fn summarise(c: &Campaign, results: &[(SeedOutcome, Option<bool>)]) -> CampaignReport {
    let mut failing = Vec::new();
    let mut recoveries: Vec<u64> = Vec::new();
    let mut r = CampaignReport {
        validators: c.validators,
        byzantine: c.byzantine,
        swarm: c.swarm,
        seeds_run: results.len() as u64,
        safety_violations: 0,
        liveness_failures: 0,
        determinism_mismatches: 0,
        seeds_without_commit: 0,
        min_committed_height: u64::MAX,
        recovery_ms_p50: 0,
        recovery_ms_max: 0,
        evidence_reported: 0,
        garbage_frames_rejected: 0,
        messages: 0,
        failing_seeds: Vec::new(),
    };
    for (o, same) in results {
        let mut fail = |kind: &str, detail: String| {
            failing.push(FailingSeed {
                seed: o.seed,
                kind: kind.into(),
                detail,
                replay: c.replay_command(o.seed),
            })
        };
        if !o.safety_violations.is_empty() {
            r.safety_violations += 1;
            fail("safety", o.safety_violations.join("; "));
        }
        if let Some(l) = &o.liveness_failure {
            r.liveness_failures += 1;
            fail("liveness", l.clone());
        }
        if *same == Some(false) {
            r.determinism_mismatches += 1;
            fail(
                "determinism",
                "two runs of the seed produced different traces".into(),
            );
        }
        if o.min_committed_height == 0 {
            r.seeds_without_commit += 1;
        }
        r.min_committed_height = r.min_committed_height.min(o.min_committed_height);
        recoveries.extend(o.recovery_ms);
        r.evidence_reported += o.evidence;
        r.garbage_frames_rejected += o.decode_errors;
        r.messages += o.messages;
    }
    if r.min_committed_height == u64::MAX {
        r.min_committed_height = 0;
    }
    recoveries.sort_unstable();
    r.recovery_ms_p50 = recoveries.get(recoveries.len() / 2).copied().unwrap_or(0);
    r.recovery_ms_max = recoveries.last().copied().unwrap_or(0);
    r.failing_seeds = failing;
    r
}
