//! `bitcraps-chaos`: run fault-injection campaigns against the consensus.
#![forbid(unsafe_code)]

use bitcraps_chaos::{plan::Behavior, run_campaign, Campaign};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "bitcraps-chaos",
    version,
    about = "Fault injection for BitCraps consensus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Deterministic simulation: many seeds, each a cluster under faults, checked
    /// for safety, liveness and determinism. Exits 1 if any check fails.
    Sim {
        /// Validators per cluster.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Byzantine validators (at most (n-1)/3 unless --unsafe-beyond-threshold).
        #[arg(long, default_value_t = 1)]
        byzantine: usize,
        /// Number of seeds to run.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// Run exactly this seed (replay).
        #[arg(long)]
        seed: Option<u64>,
        /// First seed of the range (ignored with --seed).
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// Let each seed choose the fault mix and rates (and print it).
        #[arg(long)]
        swarm: bool,
        /// Allow f >= n/3 byzantine validators (the checker should then find violations).
        #[arg(long)]
        unsafe_beyond_threshold: bool,
        /// Force every byzantine validator to this behavior (e.g. twin, equivocate).
        #[arg(long)]
        behavior: Option<Behavior>,
        /// Run every k-th seed twice and compare trace hashes (0 disables).
        #[arg(long, default_value_t = 10)]
        determinism_every: u64,
        /// Worker threads (seeds are independent; results are ordered by seed).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Print one line per seed.
        #[arg(long, short)]
        verbose: bool,
    },
}

fn main() -> ExitCode {
    let Command::Sim {
        validators,
        byzantine,
        seeds,
        seed,
        first_seed,
        swarm,
        unsafe_beyond_threshold,
        behavior,
        determinism_every,
        threads,
        json,
        verbose,
    } = Cli::parse().command;
    let campaign = Campaign {
        validators,
        byzantine,
        first_seed: seed.unwrap_or(first_seed),
        seeds: if seed.is_some() { 1 } else { seeds },
        swarm,
        unsafe_beyond_threshold,
        behavior,
        determinism_every: if seed.is_some() { 1 } else { determinism_every },
        threads,
        verbose: verbose || seed.is_some() || swarm,
    };
    let report = match run_campaign(&campaign) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for f in &report.failing_seeds {
        println!("FAIL seed {} [{}]: {}", f.seed, f.kind, f.detail);
        println!("  replay: {}", f.replay);
    }
    println!(
        "seeds_run={} safety_violations={} liveness_failures={} determinism_mismatches={} seeds_without_commit={} min_committed_height={} recovery_ms_p50={} recovery_ms_max={} evidence={} garbage_rejected={}",
        report.seeds_run,
        report.safety_violations,
        report.liveness_failures,
        report.determinism_mismatches,
        report.seeds_without_commit,
        report.min_committed_height,
        report.recovery_ms_p50,
        report.recovery_ms_max,
        report.evidence_reported,
        report.garbage_frames_rejected
    );
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot encode report: {e}");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let failed = report.safety_violations
        + report.liveness_failures
        + report.determinism_mismatches
        + report.seeds_without_commit;
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
