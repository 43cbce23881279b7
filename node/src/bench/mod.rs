//! `bitcraps bench`: an open-loop throughput and latency benchmark of a real
//! local cluster.
//!
//! It initialises a testnet (in `--out-dir` or a fresh temporary directory),
//! starts every validator as its own `bitcraps start` process over QUIC with
//! localnet's [`Cluster`], waits until all are ready, funds the bench
//! accounts from the faucet (a warm-up that is not measured), then offers
//! signed transfers at a fixed rate through all validators and measures
//! what commits, stops the nodes and reports (text, and JSON with
//! `--json`).
//!
//! Pieces:
//! * [`args`]: the command line and its caps.
//! * [`schedule`]: intended send times `t0 + i / rate`, generator lag.
//! * [`signer`]: a thread signing ahead of the schedule into a bounded queue.
//! * [`submit`]: one sender per validator with bounded in-flight requests
//!   (one transaction each, or with `--batch` what is queued, up to N);
//!   outcomes, and re-sends that fill nonce gaps.
//! * [`pending`]: the bounded map of sent, not yet committed transactions.
//! * [`follower`]: follows committed blocks, turns them into latencies.
//! * [`step`]: one measured window (generator, drain, figures).
//! * [`stats`]: per-step records and figures (localnet's percentiles).
//! * [`procfs`], [`sampler`]: validator CPU% and RSS from `/proc`.
//! * [`saturate`]: the `--saturate` search.
//! * [`report`]: the text and JSON report.
//!
//! Latency of a transaction = the moment the follower saw it in a committed
//! block minus its intended send time, so a sender that falls behind makes
//! latency worse instead of hiding it (no coordinated omission). Consensus
//! latency of a block = the moment it was seen committed minus its
//! proposer's timestamp.

pub mod args;
pub mod follower;
pub mod otlp_sink;
pub mod pending;
pub mod procfs;
pub mod report;
pub mod sampler;
pub mod saturate;
pub mod schedule;
pub mod signer;
pub mod stats;
pub mod step;
pub mod submit;

pub use args::BenchArgs;
pub use report::BenchReport;

use crate::engine::{Clock, SystemClock};
use crate::localnet::args::node_log_args;
use crate::localnet::client::ClientError;
use crate::localnet::{Cluster, LocalnetError, NodeClient, Shutdown, READY_TIMEOUT_MS};
use follower::Follower;
use procfs::RssTrack;
use report::{kib_to_mib, NodeReport, Repairs, SaturateStep, SignerFigures};
use stats::{RunCounters, Shared, StepResult};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use step::Runner;
use submit::Senders;
use tokio::sync::watch;

/// Chips the faucet gives each bench account: transfers of 1 chip in a
/// ring keep balances flat, so this never runs out.
pub const ACCOUNT_FUNDS: u64 = 1_000_000;
/// Per-client HTTP limit (requests/s and burst) the bench sets on its own
/// validators, unless `--stock-http-limits`.
pub const RAISED_HTTP_LIMIT: u32 = 1_000_000;
/// Budget for signing ahead before the load starts, per transaction (µs;
/// one costs ~15 here), plus two seconds: a slow machine starts late rather
/// than never.
const PREFILL_US_PER_TX: u64 = 60;

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Localnet(#[from] LocalnetError),
    #[error(transparent)]
    Http(#[from] ClientError),
    #[error("bench failed: {0}")]
    Failed(String),
}

impl BenchError {
    fn io(context: impl Into<String>, e: std::io::Error) -> BenchError {
        BenchError::Localnet(LocalnetError::io(context, e))
    }
}

/// Resolves once `stop` is set (never, if its sender is gone without
/// setting it).
pub(crate) async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Where the testnet lives.
#[derive(Debug)]
struct Workdir {
    path: PathBuf,
    /// Made by us under the temp dir: removed at the end unless `--keep`.
    temporary: bool,
}

fn workdir(args: &BenchArgs, clock: &dyn Clock) -> Result<Workdir, BenchError> {
    let (path, temporary) = match &args.out_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "bitcraps-bench-{}-{}",
                std::process::id(),
                clock.now_ms()
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&path)
        .map_err(|e| BenchError::io(format!("creating {}", path.display()), e))?;
    Ok(Workdir { path, temporary })
}

/// Sets up a node's config for the bench. Unless `--stock-http-limits`,
/// raises `http.requests_per_s` and `http.burst`: all of the bench's
/// requests come from 127.0.0.1, one client IP standing for the many
/// clients a real deployment has, so the stock per-IP limit (2000
/// requests/s) would measure the limiter rather than the cluster. With
/// `--no-receipt-index`, turns `[node] index_receipts` off.
fn tune_config(home: &Path, args: &BenchArgs) -> Result<(), BenchError> {
    let path = home.join("config.toml");
    let mut config = crate::config::Config::load(&path)
        .map_err(|e| BenchError::Failed(format!("{}: {e}", path.display())))?;
    if !args.stock_http_limits {
        config.http.requests_per_s = RAISED_HTTP_LIMIT;
        config.http.burst = RAISED_HTTP_LIMIT;
    }
    config.node.index_receipts = !args.no_receipt_index;
    std::fs::write(&path, config.to_toml())
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

/// Runs the benchmark `args` describes, prints the report (and writes it
/// with `--json`). Fails when the cluster did not start or nothing
/// committed.
pub async fn run(args: BenchArgs) -> Result<BenchReport, BenchError> {
    let shutdown = Shutdown::install()?;
    let report = if args.tracing_overhead {
        println!("bench: tracing overhead, run 1 of 2: no trace export");
        let off = run_cluster(&args, &[], &shutdown).await?;
        print!("\n{}", off.render());
        let sink = otlp_sink::OtlpSink::start()
            .await
            .map_err(|e| BenchError::io("starting the OTLP sink", e))?;
        println!(
            "\nbench: tracing overhead, run 2 of 2: every span exported to {}",
            sink.endpoint()
        );
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), sink.endpoint()),
            // Every request sampled: the worst case for the validators.
            (
                "OTEL_TRACES_SAMPLER".to_owned(),
                "parentbased_always_on".to_owned(),
            ),
        ];
        let mut on = run_cluster(&args, &env, &shutdown).await?;
        let counters = &sink.counters;
        on.mode = "tracing_overhead".into();
        on.tracing_overhead = Some(report::TracingOverhead::compare(
            &off.headline,
            &on.headline,
            counters.requests.load(std::sync::atomic::Ordering::Relaxed),
            counters.bytes.load(std::sync::atomic::Ordering::Relaxed),
        ));
        on
    } else {
        run_cluster(&args, &[], &shutdown).await?
    };
    drop(shutdown);
    print!("\n{}", report.render());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json() + "\n")
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
        println!("report written to {}", path.display());
    }
    if report.headline.committed == 0 {
        return Err(BenchError::Failed(
            "no bench transaction was committed; see the validators' logs (--keep keeps them)"
                .into(),
        ));
    }
    Ok(report)
}

/// One cluster: testnet, validators (with `env` set in theirs), load,
/// stop, report (not printed).
async fn run_cluster(
    args: &BenchArgs,
    env: &[(String, String)],
    shutdown: &Shutdown,
) -> Result<BenchReport, BenchError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let bin =
        std::env::current_exe().map_err(|e| BenchError::io("finding the bitcraps binary", e))?;
    let dir = workdir(args, &*clock)?;
    let testnet = crate::home::testnet_init(&crate::home::TestnetOptions {
        validators: usize::from(args.validators),
        out_dir: dir.path.clone(),
        force: true,
        ..crate::home::TestnetOptions::default()
    })
    .map_err(|e| LocalnetError::Testnet(e.to_string()))?;
    for n in &testnet.nodes {
        tune_config(&n.home, args)?;
    }
    println!(
        "bench: {} validators in {}; {}",
        testnet.nodes.len(),
        dir.path.display(),
        match args.rate {
            Some(r) => format!("{r} tx/s for {} s", args.duration as f64 / 1_000.0),
            None => format!(
                "searching the highest rate with p99 < {} ms ({} s steps)",
                args.p99_bound_ms,
                args.step_duration() as f64 / 1_000.0
            ),
        }
    );
    let node_args = node_log_args(args.node_log_level.as_deref());
    let mut cluster = Cluster::create(&bin, &testnet, &node_args)?;
    for (name, value) in env {
        cluster.set_env(name, value);
    }
    let outcome = match cluster.start_all() {
        Ok(()) => drive(args, &testnet, &cluster, &clock, shutdown.rx.clone()).await,
        Err(e) => Err(e.into()),
    };
    println!("stopping {} validators ...", cluster.node_count());
    for (i, exit) in cluster.stop_all().iter().enumerate() {
        if let Some(status) = exit.filter(|s| !s.success()) {
            println!(
                "  {} exited with {status}; see {}",
                cluster.name(i),
                cluster.log_path(i).display()
            );
        }
    }
    let kept = !dir.temporary || args.keep;
    if !kept {
        // Best effort: a leftover temp dir is not worth failing the run.
        let _ = std::fs::remove_dir_all(&dir.path);
    }
    let mut report = outcome?;
    report.dir = dir.path.display().to_string();
    report.dir_kept = kept;
    Ok(report)
}

/// Everything between "processes started" and "stop them".
async fn drive(
    args: &BenchArgs,
    testnet: &crate::home::Testnet,
    cluster: &Cluster,
    clock: &Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) -> Result<BenchReport, BenchError> {
    let ready = tokio::select! {
        r = cluster.wait_all_ready(READY_TIMEOUT_MS) => r,
        () = until_stopped(&mut stop) => return Err(LocalnetError::Interrupted.into()),
    };
    if let Err((i, e)) = ready {
        cluster.print_not_ready(i, &e);
        return Err(e.into());
    }
    let spec = crate::chainspec::ChainSpec::load(&testnet.genesis_path)
        .map_err(|e| LocalnetError::Genesis(e.to_string()))?;
    let chain_id = spec.consensus.chain_id.clone();
    let faucet = crate::home::read_key_file(&testnet.faucet_key_path)
        .map_err(|e| LocalnetError::Key(e.to_string()))?;
    let keys: Vec<bitcraps_crypto::Keypair> = (0..args.accounts)
        .map(|_| {
            bitcraps_crypto::Keypair::generate()
                .map_err(|e| LocalnetError::Key(format!("generating a bench key: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let clients: Vec<NodeClient> = (0..cluster.node_count())
        .map(|i| cluster.client(i))
        .collect();
    let Some(first) = clients.first() else {
        return Err(LocalnetError::NoSuchNode(0).into());
    };
    println!(
        "all validators ready; funding {} accounts from the faucet (not measured) ...",
        keys.len()
    );
    let recipients: Vec<_> = keys.iter().map(|k| (k.public(), ACCOUNT_FUNDS)).collect();
    crate::localnet::players::fund(&chain_id, &faucet, &recipients, first, &mut stop).await?;
    let start_height = first.status().await?.height;

    let shared = Arc::new(Shared::new(
        Arc::clone(clock),
        pending::DEFAULT_PENDING_CAPACITY,
    ));
    let (bg_stop_tx, bg_stop) = watch::channel(false);
    let follower = tokio::spawn(
        Follower::new(Arc::clone(&shared), clients.clone(), start_height + 1).run(bg_stop.clone()),
    );
    let pids: Vec<Option<u32>> = (0..cluster.node_count()).map(|i| cluster.pid(i)).collect();
    let planned_ms = if args.saturate {
        0 // steps of unknown number: no second-half fit
    } else {
        args.duration
    };
    let tracks = Arc::new(Mutex::new(vec![RssTrack::for_run(planned_ms); pids.len()]));
    let sampling = tokio::spawn(sampler::run(
        pids.clone(),
        Arc::clone(&tracks),
        Arc::clone(clock),
        bg_stop.clone(),
    ));
    let (senders, sender_tasks) = Senders::start(
        Arc::clone(&shared),
        &clients,
        usize::try_from(args.in_flight).unwrap_or(1),
        usize::try_from(args.batch).unwrap_or(1),
        bg_stop.clone(),
    );
    let top_rate = args.rate.unwrap_or(args::MAX_RATE);
    // A fixed-rate run is signed ahead as far as the queue allows; a
    // saturation search (rates unknown in advance) signs as it goes.
    let ahead_ms = args.rate.map(|_| args.duration);
    let queue = signer::queue_capacity(top_rate, ahead_ms);
    let (signed, signer_thread) = signer::spawn(
        chain_id,
        Arc::new(keys),
        queue,
        signer::sign_limit(top_rate, ahead_ms),
        Arc::clone(clock),
    )
    .map_err(|e| BenchError::io("starting the signing thread", e))?;
    let mut runner = Runner {
        shared: Arc::clone(&shared),
        senders,
        signed,
        pids: pids.clone(),
        clients,
        drain_ms: args.drain,
        interrupted: false,
    };
    // Let the signer get ahead of the schedule before the clock starts: all
    // of a fixed-rate run, half the queue otherwise.
    let prefill = if ahead_ms.is_some() { queue } else { queue / 2 };
    let prefill_deadline_us =
        clock.now_us() + PREFILL_US_PER_TX * u64::try_from(prefill).unwrap_or(u64::MAX) + 2_000_000;
    while runner.signed.len() < prefill && clock.now_us() < prefill_deadline_us {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let signed_ahead = runner.signed.len();
    let loadavg_start = procfs::read_loadavg();
    println!("load starts");
    let outcome = match args.rate {
        Some(rate) => runner
            .run_step(rate, args.duration, &mut stop)
            .await
            .map(|r| (r, Vec::new(), None)),
        None => saturate(args, &mut runner, &mut stop).await,
    };
    let loadavg_end = procfs::read_loadavg();
    let _ = bg_stop_tx.send(true);
    let interrupted = runner.interrupted;
    drop(runner);
    for t in sender_tasks {
        let _ = t.await;
    }
    let _ = follower.await;
    let _ = sampling.await;
    let signer_report = tokio::task::spawn_blocking(move || signer_thread.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let (headline, steps, best_rate) = outcome?;

    let tracks = stats::lock(&tracks).clone();
    let nodes: Vec<NodeReport> = tracks
        .iter()
        .enumerate()
        .map(|(i, t)| NodeReport {
            name: cluster.name(i).to_string(),
            pid: pids.get(i).copied().flatten(),
            cpu_percent: headline.cpu_percent_per_node.get(i).copied().flatten(),
            rss_mb_max: kib_to_mib(t.max_kib),
            rss_slope_mb_per_min: t
                .slope_mib_per_min()
                .map(|s| (s * 1_000.0).round() / 1_000.0),
            rss_late_slope_mb_per_min: t
                .late_slope_mib_per_min()
                .map(|s| (s * 1_000.0).round() / 1_000.0),
            rss_samples: t.samples,
        })
        .collect();
    let run = &shared.run;
    let tx_size_note = (headline.tx_size_bytes != args.tx_size).then(|| {
        format!(
            "--tx-size {} asked, but signed transfers are {} bytes: the transaction format has no padding field (see BENCHMARKS.md)",
            args.tx_size, headline.tx_size_bytes
        )
    });
    Ok(BenchReport {
        mode: if args.saturate { "saturate" } else { "rate" }.into(),
        validators: cluster.node_count(),
        tx_size_requested: args.tx_size,
        tx_size_note,
        accounts: args.accounts,
        in_flight_per_validator: args.in_flight,
        batch: args.batch,
        tx_per_request: stats::round1(run.tx_per_request()),
        drain_s: args.drain as f64 / 1_000.0,
        rss_mb_max: nodes.iter().map(|n| n.rss_mb_max).fold(0.0, f64::max),
        rss_slope_mb_per_min: nodes
            .iter()
            .filter_map(|n| n.rss_slope_mb_per_min)
            .reduce(f64::max),
        rss_late_slope_mb_per_min: nodes
            .iter()
            .filter_map(|n| n.rss_late_slope_mb_per_min)
            .reduce(f64::max),
        nodes,
        signer: SignerFigures {
            signed: signer_report.signed,
            signed_ahead: u64::try_from(signed_ahead).unwrap_or(u64::MAX),
            cpu_percent: stats::round1(signer_report.cpu_percent()),
            us_per_tx: stats::round1(signer_report.us_per_tx()),
        },
        signer_cpu_percent: stats::round1(signer_report.cpu_percent()),
        repairs: Repairs {
            started: RunCounters::get(&run.repairs_started),
            done: RunCounters::get(&run.repairs_done),
            abandoned: RunCounters::get(&run.repairs_abandoned),
            dropped: RunCounters::get(&run.repairs_dropped),
        },
        http_rate_limit_raised: !args.stock_http_limits,
        receipt_index: !args.no_receipt_index,
        loadavg_start,
        loadavg_end,
        p99_bound_ms: args.saturate.then_some(args.p99_bound_ms),
        best_rate,
        steps,
        tracing_overhead: None,
        interrupted,
        dir: String::new(),
        dir_kept: false,
        headline,
    })
}

/// The `--saturate` search on the running cluster. Returns the headline
/// step (the best pass, else the slowest step), every step, and the best
/// rate.
async fn saturate(
    args: &BenchArgs,
    runner: &mut Runner,
    stop: &mut watch::Receiver<bool>,
) -> Result<(StepResult, Vec<SaturateStep>, Option<u64>), BenchError> {
    let mut search = saturate::Search::new(saturate::START_RATE, args::MAX_RATE);
    let mut steps: Vec<SaturateStep> = Vec::new();
    while let Some(rate) = search.next_rate() {
        if runner.interrupted {
            break;
        }
        let result = runner.run_step(rate, args.step_duration(), stop).await?;
        let passed = result.passes(args.p99_bound_ms);
        search.record(rate, passed);
        let step = SaturateStep { passed, result };
        println!(
            "{}",
            report::step_line(steps.len() + 1, &step, args.p99_bound_ms)
        );
        steps.push(step);
        let waiting = runner.settle(stop).await;
        if waiting > 0 {
            println!("  ({waiting} transactions still in the mempools after the step)");
        }
    }
    let best = search.best();
    let headline = steps
        .iter()
        .filter(|s| s.passed && Some(s.result.rate) == best)
        .chain(steps.iter().filter(|s| !s.passed))
        .min_by_key(|s| (!s.passed, s.result.rate))
        .map(|s| s.result.clone())
        .ok_or_else(|| BenchError::Failed("no saturate step ran".into()))?;
    Ok((headline, steps, best))
}
