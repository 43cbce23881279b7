//! Command-line arguments of `bitcraps bench` and their bounds.
//!
//! Every knob is capped (clap refuses out-of-range values with exit 2), so a
//! typo cannot start a run that never ends or allocates without bound:
//! duration at most [`MAX_DURATION_MS`], rate at most [`MAX_RATE`], at most
//! [`MAX_ACCOUNTS`] funded accounts, at most [`MAX_IN_FLIGHT`] requests in
//! flight per validator (the node's own concurrency cap), a requested
//! transaction size no larger than the node's [`MAX_TX_BYTES`], and at most
//! [`MAX_SUBMIT_BATCH`] transactions per request (the node's batch limit).

use crate::api::MAX_SUBMIT_BATCH;
use crate::app::tx::MAX_TX_BYTES;
use crate::localnet::args::{parse_duration_ms, MAX_VALIDATORS};
use std::path::PathBuf;

/// Longest `--duration` (and `--step-duration`): one day.
pub const MAX_DURATION_MS: u64 = 24 * 3_600_000;
/// Highest `--rate` (transactions per second, all validators together).
pub const MAX_RATE: u64 = 1_000_000;
/// Most bench accounts: each is funded by the faucet before the run, one
/// transfer at a time.
pub const MAX_ACCOUNTS: u32 = 8_192;
/// Most requests in flight to one validator: the node answers more than
/// its `http.max_concurrent_requests` (1024 by default) with 503.
pub const MAX_IN_FLIGHT: u32 = 1_024;
/// Length of a `--saturate` step without `--step-duration`.
pub const DEFAULT_STEP_MS: u64 = 5_000;
/// Largest `--p99-bound-ms`: a minute.
pub const MAX_P99_BOUND_MS: u64 = 60_000;

/// `bitcraps bench`: an open-loop load test of a real local cluster.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct BenchArgs {
    /// Number of validators, each its own `bitcraps start` process.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_VALIDATORS)))]
    pub validators: u16,
    /// Length of the measured window, e.g. `30s`, `10m` (at most 24h).
    #[arg(long, default_value = "30s", value_parser = parse_bench_duration, value_name = "DURATION")]
    pub duration: u64,
    /// Offered load in signed transactions per second, on a fixed schedule
    /// whatever the cluster does (open loop).
    #[arg(
        long,
        value_name = "TX_PER_S",
        value_parser = clap::value_parser!(u64).range(1..=MAX_RATE),
        required_unless_present = "saturate",
        conflicts_with = "saturate"
    )]
    pub rate: Option<u64>,
    /// Search for the highest rate whose p99 latency stays under
    /// `--p99-bound-ms` with at least 95% of the offered transactions
    /// committed: short steps on the same cluster, doubling then bisecting.
    #[arg(long)]
    pub saturate: bool,
    /// Length of each `--saturate` step (default 5s).
    #[arg(long, value_parser = parse_bench_duration, value_name = "DURATION", conflicts_with = "rate")]
    pub step_duration: Option<u64>,
    /// Requested encoded size of each signed transaction (bytes). The
    /// transaction format has no padding field, so the natural size of a
    /// transfer is used and reported (see BENCHMARKS.md).
    #[arg(long, default_value_t = 256, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=MAX_TX_BYTES as u64))]
    pub tx_size: u64,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Latency bound of `--saturate` (ms): a step passes when its p99 is
    /// below it.
    #[arg(long, default_value_t = 100, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=MAX_P99_BOUND_MS))]
    pub p99_bound_ms: u64,
    /// Funded bench accounts sending transfers. Account k always submits to
    /// validator k % N, so its nonces reach one mempool in order.
    #[arg(long, default_value_t = 512, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_ACCOUNTS)))]
    pub accounts: u32,
    /// Requests in flight to each validator at most; a sender never waits for
    /// an answer before sending the next one, only for a free slot.
    #[arg(long, default_value_t = 128, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_IN_FLIGHT)))]
    pub in_flight: u32,
    /// Transactions per request, at most. 1: one `POST /api/v1/tx` per
    /// transaction. More: a sender with a free in-flight slot takes one
    /// transaction and whatever is already queued behind it (never waiting
    /// for more), up to N, and sends them as one `POST /api/v1/txs`.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_SUBMIT_BATCH as i64))]
    pub batch: u32,
    /// How long after the load ends transactions may still commit before
    /// they count as timed out.
    #[arg(long, default_value = "5s", value_parser = parse_bench_duration, value_name = "DURATION")]
    pub drain: u64,
    /// Directory for the testnet (genesis, keys, `valN/` homes); kept after
    /// the run. Default: a fresh directory under the system temp dir,
    /// removed at the end unless `--keep`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Keep the temporary testnet directory (node logs, chain data).
    #[arg(long)]
    pub keep: bool,
    /// Run the validators with the stock per-client HTTP rate limit
    /// (`http.requests_per_s` 2000, burst 4000). By default the bench raises
    /// it on its own nodes, because all of its load comes from one IP that
    /// stands for many clients.
    #[arg(long)]
    pub stock_http_limits: bool,
    /// Measure what tracing costs: run the same load twice on fresh
    /// clusters, first without OpenTelemetry export, then exporting every
    /// span (all sampled) to a local OTLP sink, and report both and the
    /// throughput ratio.
    #[arg(long, conflicts_with = "saturate")]
    pub tracing_overhead: bool,
    /// Log filter for every validator process (`--log-level` of their
    /// `start`), e.g. `info,bitcraps_node::engine=debug`. Default: info.
    /// Use with `--keep` or `--out-dir` to read the logs afterwards.
    #[arg(long, value_name = "FILTER", value_parser = crate::logs::parse_level)]
    pub node_log_level: Option<String>,
    /// Run the validators with `[node] index_receipts = false`: no receipt
    /// stored per transaction, as a validator that serves no lookups runs.
    #[arg(long)]
    pub no_receipt_index: bool,
}

impl BenchArgs {
    /// `bitcraps bench --rate <rate>` with every other option at its default.
    pub fn with_rate(rate: u64) -> BenchArgs {
        BenchArgs {
            validators: 4,
            duration: 30_000,
            rate: Some(rate),
            saturate: false,
            step_duration: None,
            tx_size: 256,
            json: None,
            p99_bound_ms: 100,
            accounts: 512,
            in_flight: 128,
            batch: 1,
            drain: 5_000,
            out_dir: None,
            keep: false,
            stock_http_limits: false,
            tracing_overhead: false,
            node_log_level: None,
            no_receipt_index: false,
        }
    }
}

impl BenchArgs {
    /// Length of each `--saturate` step (ms).
    pub fn step_duration(&self) -> u64 {
        self.step_duration.unwrap_or(DEFAULT_STEP_MS)
    }
}

/// A duration as `localnet` reads it (`30s`, `10m`, `1h`), but positive and
/// at most [`MAX_DURATION_MS`].
pub fn parse_bench_duration(text: &str) -> Result<u64, String> {
    let ms = parse_duration_ms(text)?;
    if ms == 0 {
        return Err("must be longer than 0".into());
    }
    if ms > MAX_DURATION_MS {
        return Err(format!(
            "{text:?} is longer than the {} hour cap",
            MAX_DURATION_MS / 3_600_000
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(
            parse(&["--rate", "200"]).unwrap(),
            BenchArgs::with_rate(200)
        );
        let a = parse(&[
            "--validators",
            "10",
            "--duration",
            "10m",
            "--saturate",
            "--step-duration",
            "3s",
            "--p99-bound-ms",
            "250",
            "--accounts",
            "64",
            "--json",
            "out.json",
            "--tx-size",
            "512",
            "--batch",
            "256",
            "--keep",
        ])
        .unwrap();
        assert!(a.saturate && a.rate.is_none() && a.keep);
        assert_eq!(a.validators, 10);
        assert_eq!(a.duration, 600_000);
        assert_eq!(a.step_duration(), 3_000);
        assert_eq!(BenchArgs::with_rate(1).step_duration(), DEFAULT_STEP_MS);
        assert_eq!(a.p99_bound_ms, 250);
        assert_eq!(a.accounts, 64);
        assert_eq!(a.tx_size, 512);
        assert_eq!(a.batch, 256);
        assert_eq!(parse(&["--rate", "1", "--batch", "8"]).unwrap().batch, 8);
        assert_eq!(a.json, Some(PathBuf::from("out.json")));
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            vec![],
            vec!["--rate", "10", "--saturate"],
            vec!["--rate", "0"],
            vec!["--rate", "1000001"],
            vec!["--rate", "10", "--duration", "0"],
            vec!["--rate", "10", "--duration", "25h"],
            vec!["--rate", "10", "--duration", "soon"],
            vec!["--rate", "10", "--tx-size", "513"],
            vec!["--rate", "10", "--tx-size", "0"],
            vec!["--rate", "10", "--validators", "0"],
            vec!["--rate", "10", "--validators", "21"],
            vec!["--rate", "10", "--accounts", "0"],
            vec!["--rate", "10", "--accounts", "8193"],
            vec!["--rate", "10", "--in-flight", "1025"],
            vec!["--rate", "10", "--p99-bound-ms", "0"],
            vec!["--rate", "10", "--step-duration", "2s"],
            vec!["--rate", "10", "--batch", "0"],
            vec!["--rate", "10", "--batch", "257"],
            vec!["--rate", "10", "--batch", "many"],
        ] {
            let err = parse(&bad).expect_err(&format!("{bad:?} accepted"));
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
        assert_eq!(parse_bench_duration("24h"), Ok(MAX_DURATION_MS));
        let err = parse(&["--rate", "10", "--batch", "257"]).unwrap_err();
        assert!(err.to_string().contains("1..=256"), "{err}");
    }
}
