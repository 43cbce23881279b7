//! `bitcraps localnet`: the one command a newcomer runs. It initialises a
//! testnet under `--dir`, starts every validator as its own `bitcraps start`
//! process on 127.0.0.1 (real QUIC, real redb), drives simulated players
//! through the HTTP API, shows live progress, and ends with a summary that
//! checks every node reached the same state root at the same height.
//!
//! Pieces, each reusable on its own:
//! * [`cluster`]: the process controller ([`Cluster`]), also used by
//!   process-level tests (kill -9, restart, late joiners).
//! * [`client`]: a typed client for one node's HTTP API.
//! * [`house`]: house accounts open the tables the players play at.
//! * [`players`]: funding, the open-loop load of bets and the commit
//!   watcher; [`load`] holds their pure bookkeeping (schedule, nonces,
//!   windows) and [`strategy`] what a player bets next.
//! * [`observer`]: one shared view of the roll clock, the tables and their
//!   rolls; [`receipts`]: the execution results of the players' bets.
//! * [`stats`], [`report`]: percentiles, tables, progress line, JSON summary.
//!
//! Time: the run reads the wall clock only through [`RunClock`], which wraps
//! the engine's [`SystemClock`] (the one place the node reads the clock).
//!
//! Signers: with `--signer softhsm` the validators' consensus keys are
//! generated inside a SoftHSM2 token made for the run in `<dir>/softhsm/`
//! (`home_pkcs11`), every node signs through PKCS#11, and the run checks that
//! each node's `/status` says so (`signer.backend = "pkcs11"`, healthy).
//! With `--signer keystore` each consensus key is an encrypted keystore
//! unlocked at start-up (`signer.backend = "keystore"`).

pub mod args;
pub mod client;
pub mod cluster;
pub mod error;
pub mod house;
pub mod load;
pub mod observer;
pub mod players;
pub mod receipts;
pub mod report;
pub mod stats;
pub mod strategy;

pub use args::{parse_duration_ms, LocalnetArgs, LocalnetSigner};
pub use client::{NodeClient, SubmitOutcome};
pub use cluster::{Cluster, NodeSpec};
pub use error::LocalnetError;
pub use report::{LocalnetSummary, NodeSummary};

use crate::engine::{Clock, SystemClock};
use crate::home_pkcs11::SoftHsmTokens;
use cluster::join_all;
use load::Schedule;
use observer::{HistoryTotals, Observer};
use players::{Counters, LoadCtx, Watcher};
use receipts::ReceiptChecker;
use report::{ms_to_s, Progress, Table};
use serde::{Deserialize, Serialize};
use stats::{per_second, RateWindow};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// How long every validator gets to answer `/readyz` after start.
pub const READY_TIMEOUT_MS: u64 = 30_000;
/// How long the end of the run waits for every node to reach the final height.
pub const CONVERGE_TIMEOUT_MS: u64 = 10_000;
/// Lines of a failing node's log printed to the terminal.
pub const LOG_TAIL_LINES: usize = 20;
/// Progress refresh when stdout is a terminal (rewritten in place with `\r`).
const PROGRESS_TTY_MS: u64 = 1_000;
/// Progress interval when stdout is a file or pipe (one line each).
const PROGRESS_PLAIN_MS: u64 = 5_000;
/// Poll interval while waiting for nodes to converge.
const CONVERGE_POLL_MS: u64 = 200;
/// The file in `--dir` that records the localnet (for `--keep`), and marks
/// the directory as ours.
pub const MANIFEST_FILE: &str = "localnet.json";

/// Milliseconds since the run started, from the engine's clock (wall clock,
/// clamped so it never goes back).
#[derive(Debug, Clone)]
pub struct RunClock {
    clock: Arc<dyn Clock>,
    start_ms: u64,
}

impl RunClock {
    pub fn new(clock: Arc<dyn Clock>) -> RunClock {
        let start_ms = clock.now_ms();
        RunClock { clock, start_ms }
    }

    /// Milliseconds since [`RunClock::new`].
    pub fn elapsed_ms(&self) -> u64 {
        self.clock.now_ms().saturating_sub(self.start_ms)
    }
}

/// What `--keep` needs to find the localnet again: written next to the
/// genesis. Paths are rebuilt from `--dir`, so the directory can be moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    chain_id: String,
    /// Node names (their homes are `<dir>/<name>`) and addresses.
    nodes: Vec<ManifestNode>,
    /// Where the consensus keys are (manifests without it: `memory`).
    #[serde(default)]
    signer: LocalnetSigner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestNode {
    name: String,
    p2p_addr: std::net::SocketAddr,
    http_addr: std::net::SocketAddr,
}

/// The localnet on disk.
#[derive(Debug, Clone)]
struct Layout {
    genesis_path: PathBuf,
    faucet_key_path: PathBuf,
    nodes: Vec<NodeSpec>,
}

fn layout_from_manifest(dir: &Path, m: &Manifest) -> Layout {
    Layout {
        genesis_path: dir.join("genesis.json"),
        faucet_key_path: dir.join("faucet.key"),
        nodes: m
            .nodes
            .iter()
            .map(|n| NodeSpec {
                name: n.name.clone(),
                home: dir.join(&n.name),
                p2p_addr: n.p2p_addr,
                http_addr: n.http_addr,
            })
            .collect(),
    }
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, LocalnetError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LocalnetError::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        LocalnetError::Args(format!(
            "{} is not a localnet manifest ({e}); drop --keep to start afresh",
            path.display()
        ))
    })
}

/// With `--keep`, the manifest of the localnet in `args.dir` (if there is
/// one), checked against the arguments.
fn kept_manifest(args: &LocalnetArgs) -> Result<Option<Manifest>, LocalnetError> {
    if !args.keep {
        return Ok(None);
    }
    let dir = &args.dir;
    let Some(m) = read_manifest(dir)? else {
        return Ok(None);
    };
    if m.nodes.len() != usize::from(args.validators) {
        return Err(LocalnetError::Args(format!(
            "--keep: the localnet in {} has {} validators, not {}; pass --validators {} or drop --keep",
            dir.display(),
            m.nodes.len(),
            args.validators,
            m.nodes.len()
        )));
    }
    if m.signer != args.signer {
        return Err(LocalnetError::Args(format!(
            "--keep: the localnet in {} was made with --signer {}, not {}; pass --signer {} or drop --keep",
            dir.display(),
            m.signer.as_str(),
            args.signer.as_str(),
            m.signer.as_str()
        )));
    }
    Ok(Some(m))
}

/// Labels of a localnet's SoftHSM2 tokens, one per validator (`{i}`: the
/// validator's index; see `home_pkcs11` for why one each).
pub const SOFTHSM_TOKEN_LABELS: &str = "bitcraps-localnet-val{i}";

/// With `--signer softhsm`: the run's SoftHSM2 tokens (made afresh, or the
/// kept ones), with `SOFTHSM2_CONF` set in this process's environment.
///
/// Why the variable is set here, and why that is safe: SoftHSM2 reads
/// `SOFTHSM2_CONF` with `getenv` inside `C_Initialize`, which happens at
/// the first PKCS#11 call of this process, the key generation in
/// [`prepare`]; the module offers no other way to be told. `set_var` is
/// only unsound while another thread reads the environment through libc
/// (Rust's own readers take std's lock). This runs at the top of [`run`],
/// before anything is spawned on the runtime (the signal task, HTTP
/// clients and validator processes all come later) and before any PKCS#11
/// module is loaded: tokio's worker threads are idle and nothing else in the
/// process reads the environment. It is set once per process, to a path
/// that is not secret. The validators get it through [`Cluster::set_env`].
fn softhsm_token(
    args: &LocalnetArgs,
    kept: Option<&Manifest>,
) -> Result<Option<SoftHsmTokens>, LocalnetError> {
    let dir = args.dir.join(crate::home_pkcs11::SOFTHSM_DIR);
    if args.signer != LocalnetSigner::Softhsm {
        if kept.is_none() {
            // A fresh memory localnet: the tokens of an earlier softhsm run
            // in this directory hold keys whose homes are about to be wiped.
            crate::home_pkcs11::remove_token_dir(&dir)
                .map_err(|e| LocalnetError::Testnet(format!("SoftHSM2 tokens: {e}")))?;
        }
        return Ok(None);
    }
    let token = if kept.is_some() {
        SoftHsmTokens::open(&dir, SOFTHSM_TOKEN_LABELS)
    } else {
        SoftHsmTokens::create(&dir, SOFTHSM_TOKEN_LABELS, usize::from(args.validators))
    }
    .map_err(|e| LocalnetError::Testnet(format!("SoftHSM2 tokens: {e}")))?;
    std::env::set_var("SOFTHSM2_CONF", token.conf_path());
    Ok(Some(token))
}

/// Initialises a fresh localnet in `args.dir` (its consensus keys in
/// `token` if there is one), or with `--keep` reuses the one there.
/// `testnet init --force` removes only what it wrote before (genesis,
/// faucet key, `valN/`), so other files in the directory survive.
fn prepare(
    args: &LocalnetArgs,
    kept: Option<&Manifest>,
    token: Option<&SoftHsmTokens>,
) -> Result<Layout, LocalnetError> {
    let dir = &args.dir;
    if let Some(m) = kept {
        return Ok(layout_from_manifest(dir, m));
    }
    let opts = crate::home::TestnetOptions {
        validators: usize::from(args.validators),
        out_dir: dir.clone(),
        force: true,
        signer: args.signer.testnet_signer(token),
        ..crate::home::TestnetOptions::default()
    };
    let testnet =
        crate::home::testnet_init(&opts).map_err(|e| LocalnetError::Testnet(e.to_string()))?;
    let manifest = Manifest {
        chain_id: opts.chain_id.clone(),
        nodes: testnet
            .nodes
            .iter()
            .map(|n| ManifestNode {
                name: n.name.clone(),
                p2p_addr: n.p2p_addr,
                http_addr: n.http_addr,
            })
            .collect(),
        signer: args.signer,
    };
    let path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    std::fs::write(&path, json)
        .map_err(|e| LocalnetError::io(format!("writing {}", path.display()), e))?;
    Ok(Layout {
        genesis_path: testnet.genesis_path.clone(),
        faucet_key_path: testnet.faucet_key_path.clone(),
        nodes: testnet.nodes.iter().map(NodeSpec::from).collect(),
    })
}

/// Ctrl-C and SIGTERM, turned into a `watch` flag every phase can select on
/// (also used by `bitcraps bench`).
pub(crate) struct Shutdown {
    pub(crate) rx: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Shutdown {
    pub(crate) fn install() -> Result<Shutdown, LocalnetError> {
        use tokio::signal::unix::{signal, SignalKind};
        let (tx, rx) = watch::channel(false);
        // Registered here, synchronously, before any validator is spawned: a
        // Ctrl-C from then on is ours to handle (and never kills the
        // controller while its children keep running).
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| LocalnetError::io("installing the SIGINT handler", e))?;
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| LocalnetError::io("installing the SIGTERM handler", e))?;
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let _ = tx.send(true);
        });
        Ok(Shutdown { rx, task })
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a localnet as `args` says. Returns the summary when every node
/// reached the same state root and transactions were committed; otherwise
/// an error saying why (the summary is printed, and written with `--json`,
/// either way).
pub async fn run(args: LocalnetArgs) -> Result<LocalnetSummary, LocalnetError> {
    if args.validators == 0 || args.validators > args::MAX_VALIDATORS {
        return Err(LocalnetError::Args(format!(
            "--validators must be 1..={}",
            args::MAX_VALIDATORS
        )));
    }
    if args.players == 0 || args.players > args::MAX_PLAYERS {
        return Err(LocalnetError::Args(format!(
            "--players must be 1..={}",
            args::MAX_PLAYERS
        )));
    }
    let bin =
        std::env::current_exe().map_err(|e| LocalnetError::io("finding the bitcraps binary", e))?;
    // First: SOFTHSM2_CONF must be set before anything else runs (see
    // softhsm_token).
    let kept = kept_manifest(&args)?;
    let softhsm = softhsm_token(&args, kept.as_ref())?;
    let shutdown = Shutdown::install()?;
    let layout = prepare(&args, kept.as_ref(), softhsm.as_ref())?;
    print_validators(&args, &layout, softhsm.as_ref());

    let node_args = args::node_log_args(args.node_log_level.as_deref());
    let mut cluster = Cluster::from_nodes(&bin, layout.nodes.clone(), &node_args)?;
    if let Some(token) = &softhsm {
        cluster.set_env("SOFTHSM2_CONF", token.conf_path());
    }
    let outcome = match cluster.start_all() {
        Ok(()) => drive(&args, &layout, &cluster, shutdown.rx.clone()).await,
        Err(e) => Err(e),
    };
    println!("stopping {} ...", plural(cluster.node_count(), "validator"));
    let exits = cluster.stop_all();
    for (i, exit) in exits.iter().enumerate() {
        if let Some(status) = exit {
            if !status.success() {
                println!(
                    "  {} exited with {status}; see {}",
                    cluster.name(i),
                    cluster.log_path(i).display()
                );
            }
        }
    }
    drop(shutdown);
    let (summary, signers) = outcome?;
    if !signers.healthy {
        return Err(LocalnetError::Unhealthy(format!(
            "a validator's signer stopped working: {}",
            signers.lines.join(", ")
        )));
    }
    match summary.failure_reason() {
        None => {
            println!("localnet OK");
            Ok(summary)
        }
        Some(reason) => Err(LocalnetError::Unhealthy(reason)),
    }
}

fn print_validators(args: &LocalnetArgs, layout: &Layout, softhsm: Option<&SoftHsmTokens>) {
    println!(
        "localnet: {}, {}, {} in {}",
        plural(layout.nodes.len(), "validator"),
        plural(
            usize::try_from(args.players).unwrap_or(usize::MAX),
            "player"
        ),
        if args.duration == 0 {
            "until Ctrl-C".to_string()
        } else {
            format!("for {}", args::format_duration_ms(args.duration))
        },
        args.dir.display()
    );
    let mut t = Table::new(["validator", "QUIC address", "HTTP", "log"]);
    for n in &layout.nodes {
        t.row([
            n.name.clone(),
            n.p2p_addr.to_string(),
            format!("http://{}", n.http_addr),
            n.home.join(cluster::LOG_FILE).display().to_string(),
        ]);
    }
    print!("{}", t.render());
    match softhsm {
        Some(token) => println!(
            "signer: validators sign through SoftHSM2 (PKCS#11 tokens {:?} in {}; PINs in 0600 files there)",
            token.label_template(),
            token.dir().display()
        ),
        None => println!("signer: {}", args.signer.describe()),
    }
}

/// What the nodes said about their signers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignerCheck {
    /// The backend every node reported (`memory`, `pkcs11`, ...).
    backend: String,
    /// Every node answered, and its last test signature worked.
    healthy: bool,
    /// `val0 pkcs11 healthy 180 us`, one per node.
    lines: Vec<String>,
}

/// Asks every node's `/status` which backend signs and whether it works.
/// Fails if a node reports another backend than `--signer` asks for.
async fn check_signers(
    cluster: &Cluster,
    signer: LocalnetSigner,
) -> Result<SignerCheck, LocalnetError> {
    let expected = signer.node_backend();
    let statuses = join_all((0..cluster.node_count()).map(|i| cluster.status(i))).await;
    let mut check = SignerCheck {
        backend: expected.to_owned(),
        healthy: true,
        lines: Vec::with_capacity(statuses.len()),
    };
    for (i, status) in statuses.into_iter().enumerate() {
        let name = cluster.name(i);
        let s = match status {
            Ok(s) => s.signer,
            Err(e) => {
                check.healthy = false;
                check.lines.push(format!("{name} no status: {e}"));
                continue;
            }
        };
        if s.backend != expected {
            return Err(LocalnetError::Unhealthy(format!(
                "{name} signs with backend {:?}, but --signer {} needs {expected:?}; see {}",
                s.backend,
                signer.as_str(),
                cluster.log_path(i).display()
            )));
        }
        check.healthy &= s.healthy;
        let state = match (&s.last_error, s.healthy) {
            (_, true) => "healthy".to_owned(),
            (Some(e), false) => format!("UNHEALTHY ({e})"),
            (None, false) => "UNHEALTHY".to_owned(),
        };
        let latency = s
            .sign_latency_us
            .map(|us| format!(" {us} us"))
            .unwrap_or_default();
        check
            .lines
            .push(format!("{name} {} {state}{latency}", s.backend));
    }
    Ok(check)
}

/// The `--json` summary: the summary's fields, then the signer's.
#[derive(Serialize)]
struct SummaryJson<'a> {
    #[serde(flatten)]
    summary: &'a LocalnetSummary,
    /// The backend every node reported (`memory`, `keystore` or `pkcs11`).
    signer_backend: &'a str,
    /// Every node's signer was healthy at the end of the run.
    signers_healthy: bool,
}

fn summary_json(summary: &LocalnetSummary, signers: &SignerCheck) -> String {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string_pretty(&SummaryJson {
        summary,
        signer_backend: &signers.backend,
        signers_healthy: signers.healthy,
    })
    .unwrap_or_default()
}

/// Everything between "processes started" and "stop them": readiness,
/// funding, load, convergence and the summary.
async fn drive(
    args: &LocalnetArgs,
    layout: &Layout,
    cluster: &Cluster,
    mut stop: watch::Receiver<bool>,
) -> Result<(LocalnetSummary, SignerCheck), LocalnetError> {
    println!(
        "waiting for {} to be ready ...",
        plural(cluster.node_count(), "validator")
    );
    let ready = tokio::select! {
        r = cluster.wait_all_ready(READY_TIMEOUT_MS) => r,
        _ = stop.changed() => return Err(LocalnetError::Interrupted),
    };
    if let Err((i, e)) = ready {
        cluster.print_not_ready(i, &e);
        return Err(e);
    }
    println!("all validators ready");
    let signers = check_signers(cluster, args.signer).await?;
    match args.signer {
        LocalnetSigner::Softhsm => println!(
            "validators sign through SoftHSM2 (PKCS#11): {}",
            signers.lines.join(", ")
        ),
        LocalnetSigner::Memory | LocalnetSigner::Keystore => {
            println!("signers: {}", signers.lines.join(", "))
        }
    }
    if !signers.healthy {
        return Err(LocalnetError::Unhealthy(format!(
            "a validator's signer does not work: {}",
            signers.lines.join(", ")
        )));
    }

    let spec = crate::chainspec::ChainSpec::load(&layout.genesis_path)
        .map_err(|e| LocalnetError::Genesis(e.to_string()))?;
    let faucet = crate::home::read_key_file(&layout.faucet_key_path)
        .map_err(|e| LocalnetError::Key(e.to_string()))?;
    let mut keys = Vec::with_capacity(usize::try_from(args.players).unwrap_or(0));
    for _ in 0..args.players {
        keys.push(
            bitcraps_crypto::Keypair::generate()
                .map_err(|e| LocalnetError::Key(format!("generating a player key: {e}")))?,
        );
    }
    let clients: Vec<NodeClient> = (0..cluster.node_count())
        .map(|i| cluster.client(i))
        .collect();
    let clock = RunClock::new(Arc::new(SystemClock::new()));
    let ctx = Arc::new(LoadCtx::new(
        clock,
        spec.consensus.chain_id.clone(),
        keys,
        clients,
        faucet.public(),
    ));
    let start_height = cluster.status(0).await?.height;

    // The watcher and the progress line run from funding to the end.
    let (bg_stop_tx, bg_stop_rx) = watch::channel(false);
    let watcher =
        tokio::spawn(Watcher::new(Arc::clone(&ctx), start_height + 1).run(bg_stop_rx.clone()));

    let houses: Vec<bitcraps_crypto::Keypair> = (0..house::HOUSES)
        .map(|_| {
            bitcraps_crypto::Keypair::generate()
                .map_err(|e| LocalnetError::Key(format!("generating a house key: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let table_count = house::table_count(ctx.player_count());
    let mut recipients: Vec<(bitcraps_crypto::PublicKey, u64)> = ctx
        .publics()
        .iter()
        .map(|p| (*p, players::PLAYER_FUNDS))
        .collect();
    for (h, key) in houses.iter().enumerate() {
        recipients.push((key.public(), house::house_funds(h, table_count)));
    }
    println!(
        "funding {} and {} houses from the faucet ...",
        plural(ctx.player_count(), "player"),
        houses.len()
    );
    let setup = async {
        let Some(c) = ctx.clients().first() else {
            return Err(LocalnetError::NoSuchNode(0));
        };
        players::fund(ctx.chain_id(), &faucet, &recipients, c, &mut stop).await?;
        println!("opening {} ...", plural(table_count, "table"));
        house::open_tables(ctx.chain_id(), &houses, table_count, c, &mut stop).await
    };
    let tables = match setup.await {
        Ok(t) => t,
        Err(e) => {
            let _ = bg_stop_tx.send(true);
            let _ = watcher.await;
            return Err(e);
        }
    };
    ctx.set_tables(tables.clone());
    let mut observer = Observer::new(Arc::clone(&ctx.game), ctx.clients().to_vec(), &tables);
    // One look before the first bet, so players start from the real phase.
    let _ = observer.poll_once().await;
    let observing = tokio::spawn(observer.run(bg_stop_rx.clone()));
    let checker = tokio::spawn(ReceiptChecker::new(Arc::clone(&ctx)).run(bg_stop_rx.clone()));
    let load_start_ms = ctx.clock.elapsed_ms();
    println!(
        "players funded and tables {} open in {:.1} s; playing at {} (Ctrl-C ends the run)",
        join_ids(&tables),
        ms_to_s(load_start_ms),
        if args.rate == 0 {
            "as fast as the in-flight windows allow".to_string()
        } else {
            format!("{} tx/s", args.rate)
        }
    );
    let progress = tokio::spawn(progress_loop(Arc::clone(&ctx), load_start_ms, bg_stop_rx));
    players::drive_load(
        Arc::clone(&ctx),
        Schedule::new(args.rate),
        args.duration,
        stop.clone(),
    )
    .await;
    let load_end_ms = ctx.clock.elapsed_ms();
    let _ = bg_stop_tx.send(true);
    let _ = progress.await;
    let _ = observing.await;
    println!(
        "\nload stopped after {:.1} s; checking that all nodes agree ...",
        ms_to_s(load_end_ms.saturating_sub(load_start_ms))
    );

    let convergence = converge(cluster).await;
    let mut watcher = watcher
        .await
        .map_err(|e| LocalnetError::Funding(format!("commit watcher failed: {e}")))?;
    if !watcher
        .catch_up(convergence.height, CONVERGE_TIMEOUT_MS)
        .await
    {
        println!(
            "  (commit watcher stopped at height {} of {})",
            watcher.next_height().saturating_sub(1),
            convergence.height
        );
    }
    let mut checker = checker
        .await
        .map_err(|e| LocalnetError::Funding(format!("receipt checker failed: {e}")))?;
    if !checker.drain(CONVERGE_TIMEOUT_MS).await {
        println!("  ({} bet results not read in time)", ctx.receipts.len());
    }
    let history = history_at(cluster, &tables, convergence.height).await;
    let summary = summarize(args, &ctx, convergence, history, load_end_ms);
    // Again at the end: a token that stopped working during the run shows here.
    let signers = check_signers(cluster, args.signer).await?;
    print!("\n{}", summary.render());
    println!(
        "signer      {} on all {} nodes{}",
        signers.backend,
        summary.validators,
        if signers.healthy {
            String::new()
        } else {
            format!(" (NOT all healthy: {})", signers.lines.join(", "))
        }
    );
    let codes = ctx
        .reject_codes
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    if !codes.is_empty() {
        let list: Vec<String> = codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("submissions refused  {}", list.join(", "));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, summary_json(&summary, &signers) + "\n")
            .map_err(|e| LocalnetError::io(format!("writing {}", path.display()), e))?;
        println!("summary written to {}", path.display());
    }
    Ok((summary, signers))
}

/// `1, 2, 3`.
fn join_ids(ids: &[u64]) -> String {
    let v: Vec<String> = ids.iter().map(u64::to_string).collect();
    v.join(", ")
}

/// The roll history of `tables` up to `height`, from the first node that
/// serves it (every node that reached `height` has the same history).
/// Zeros, with a note, if none does.
async fn history_at(cluster: &Cluster, tables: &[u64], height: u64) -> HistoryTotals {
    let mut last_error = String::from("no validator");
    for i in 0..cluster.node_count() {
        let client = cluster.client(i);
        match client.status().await {
            Ok(s) if s.height >= height => {}
            Ok(s) => {
                last_error = format!("{} is at height {}", cluster.name(i), s.height);
                continue;
            }
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        }
        match observer::roll_history(&client, tables, height).await {
            Ok(h) => {
                if h.truncated {
                    println!(
                        "  (roll history longer than {} rolls a table: counted in part)",
                        observer::MAX_HISTORY_ROLLS
                    );
                }
                return h;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    println!("  (could not read the roll history: {last_error})");
    HistoryTotals::default()
}

/// The state of every node at the end of the run.
#[derive(Debug)]
struct Convergence {
    /// The compared height: the highest any node reported when the load
    /// stopped.
    height: u64,
    nodes: Vec<NodeSummary>,
    equal: bool,
}

/// Waits (bounded) for every node to reach the highest height any node
/// reported, then compares their state roots at that height.
async fn converge(cluster: &Cluster) -> Convergence {
    let n = cluster.node_count();
    let statuses = join_all((0..n).map(|i| cluster.status(i))).await;
    let height = statuses
        .iter()
        .filter_map(|s| s.as_ref().ok().map(|s| s.height))
        .max()
        .unwrap_or(0);
    let wait_all = async {
        loop {
            let s = join_all((0..n).map(|i| cluster.status(i))).await;
            if s.iter()
                .all(|s| s.as_ref().is_ok_and(|s| s.height >= height))
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(CONVERGE_POLL_MS)).await;
        }
    };
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(CONVERGE_TIMEOUT_MS),
        wait_all,
    )
    .await;

    let finals = join_all((0..n).map(|i| async move {
        let client = cluster.client(i);
        (
            client.status().await,
            client.block(height).await,
            // The supply is only served at the node's latest height; the
            // conservation invariant holds at every height, so reading it
            // right after the roots checks the same chain.
            client.supply().await,
        )
    }))
    .await;
    let mut nodes = Vec::with_capacity(n);
    for (i, (status, block, supply)) in finals.into_iter().enumerate() {
        let mut node = NodeSummary {
            name: cluster.name(i).to_string(),
            height: 0,
            state_root: None,
            peers_connected: 0,
            committed_tx: 0,
            error: None,
            supply_conserved: supply.ok().map(|s| s.conserved),
        };
        match status {
            Ok(s) => {
                node.height = s.height;
                node.peers_connected = s.peers_connected;
                node.committed_tx = s.committed_tx;
            }
            Err(e) => node.error = Some(format!("no status: {e}")),
        }
        match block {
            Ok(Some(b)) => {
                node.state_root = b.state_root;
                if node.state_root.is_none() {
                    node.error = Some(format!("block {height} has no state root"));
                }
            }
            Ok(None) => {
                node.error = Some(format!("stuck below height {height} (at {})", node.height));
            }
            Err(e) => {
                if node.error.is_none() {
                    node.error = Some(format!("block {height}: {e}"));
                }
            }
        }
        nodes.push(node);
    }
    let first = nodes.first().and_then(|n| n.state_root.clone());
    let equal = first.is_some()
        && nodes
            .iter()
            .all(|n| n.state_root == first && n.error.is_none());
    Convergence {
        height,
        nodes,
        equal,
    }
}

fn summarize(
    args: &LocalnetArgs,
    ctx: &LoadCtx,
    convergence: Convergence,
    history: HistoryTotals,
    load_end_ms: u64,
) -> LocalnetSummary {
    let c = &ctx.counters;
    let committed_tx = Counters::get(&c.committed_tx);
    let (p50, p99, samples) = match ctx.latency.lock() {
        Ok(l) => {
            let ps = l.percentiles(&[50.0, 99.0]);
            (
                ps.first().copied().flatten(),
                ps.get(1).copied().flatten(),
                l.count(),
            )
        }
        Err(_) => (None, None, 0),
    };
    LocalnetSummary {
        committed_tx,
        committed_blocks: Counters::get(&c.committed_blocks),
        tps: round1(per_second(committed_tx, load_end_ms)),
        latency_ms_p50: p50,
        latency_ms_p99: p99,
        state_roots_equal: convergence.equal,
        validators: convergence.nodes.len(),
        players: ctx.player_count(),
        duration_s: round1(ms_to_s(load_end_ms)),
        offered_tx: Counters::get(&c.offered),
        rejected_tx: Counters::get(&c.rejected),
        throttled_tx: if args.rate == 0 {
            0
        } else {
            Counters::get(&c.throttled)
        },
        lost_tx: Counters::get(&c.lost),
        latency_samples: samples,
        compared_height: convergence.height,
        tables: ctx.tables().len(),
        rolls: history.rolls,
        bets_offered: Counters::get(&c.bets_offered),
        bets_placed: Counters::get(&c.bets_placed),
        bets_settled: history.settled,
        bets_won: history.won,
        bets_lost: history.lost,
        bets_pushed: history.pushed,
        chips_won: history.chips_won,
        withdrawals: Counters::get(&c.withdraws_done),
        game_tx_rejected: Counters::get(&c.exec_rejected),
        execution_rejections: ctx
            .exec_rejections
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default(),
        game_tx_unchecked: Counters::get(&c.game_unchecked),
        chips_conserved: !convergence.nodes.is_empty()
            && convergence
                .nodes
                .iter()
                .all(|n| n.supply_conserved == Some(true)),
        nodes: convergence.nodes,
    }
}

/// `1 validator`, `4 validators`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Polls every node's `/status` and prints the progress line until `stop`.
async fn progress_loop(ctx: Arc<LoadCtx>, load_start_ms: u64, mut stop: watch::Receiver<bool>) {
    let tty = std::io::stdout().is_terminal();
    let every_ms = if tty {
        PROGRESS_TTY_MS
    } else {
        PROGRESS_PLAIN_MS
    };
    let mut rate = RateWindow::default();
    let mut since_print_ms = 0;
    // Bounded by `stop`, which the run sends when the load ends.
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(PROGRESS_TTY_MS)) => {}
            _ = stop.changed() => break,
        }
        let statuses = join_all(
            ctx.clients()
                .iter()
                .map(|c| async move { c.status().await.ok() }),
        )
        .await;
        if let Ok(mut s) = ctx.statuses.lock() {
            s.clone_from(&statuses);
        }
        since_print_ms += PROGRESS_TTY_MS;
        if since_print_ms < every_ms {
            continue;
        }
        since_print_ms = 0;
        let line = progress_of(&ctx, &statuses, load_start_ms, &mut rate).render();
        let mut out = std::io::stdout().lock();
        if tty {
            // \x1b[K clears what a longer previous line left behind.
            let _ = write!(out, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

fn progress_of(
    ctx: &LoadCtx,
    statuses: &[Option<crate::api::StatusView>],
    load_start_ms: u64,
    rate: &mut RateWindow,
) -> Progress {
    let now_ms = ctx.clock.elapsed_ms();
    let committed_tx = Counters::get(&ctx.counters.committed_tx);
    let live: Vec<&crate::api::StatusView> = statuses.iter().flatten().collect();
    let height = live
        .iter()
        .map(|s| s.height)
        .max()
        .unwrap_or(0)
        .max(Counters::get(&ctx.counters.height));
    let (rolls, won_chips) = match ctx.game.rolls.lock() {
        Ok(mut r) => {
            let won = r.take_window();
            (r.clone(), won)
        }
        Err(_) => (observer::RollStats::default(), 0),
    };
    let latency_p50_ms = {
        let window = ctx.window_latency.lock().ok().and_then(|mut w| {
            let p = w.percentile(50.0);
            w.clear();
            p
        });
        window.or_else(|| ctx.latency.lock().ok().and_then(|l| l.percentile(50.0)))
    };
    Progress {
        elapsed_ms: now_ms.saturating_sub(load_start_ms),
        height,
        committed_tx,
        tps: rate.rate(committed_tx, now_ms, load_start_ms),
        latency_p50_ms,
        // A node that did not answer counts as having no peers.
        peers_min: if live.is_empty() {
            None
        } else if live.len() < statuses.len() {
            Some(0)
        } else {
            live.iter().map(|s| s.peers_connected).min()
        },
        peers_total: live.iter().map(|s| s.peers_total).max().unwrap_or(0),
        mempool: live.iter().map(|s| s.mempool_len).sum(),
        rejected_tx: Counters::get(&ctx.counters.rejected),
        rolls: rolls.rolls,
        last_roll: rolls.last.map(|(_, r)| r),
        won_chips,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_rebuilds_paths_from_dir() {
        let m = Manifest {
            chain_id: "c".into(),
            nodes: vec![ManifestNode {
                name: "val0".into(),
                p2p_addr: "127.0.0.1:9000".parse().unwrap(),
                http_addr: "127.0.0.1:9001".parse().unwrap(),
            }],
            signer: LocalnetSigner::Memory,
        };
        // Manifests written before --signer existed are memory localnets.
        let old: Manifest = serde_json::from_str(r#"{"chain_id":"c","nodes":[]}"#).unwrap();
        assert_eq!(old.signer, LocalnetSigner::Memory);
        let l = layout_from_manifest(Path::new("/x/ln"), &m);
        assert_eq!(l.genesis_path, Path::new("/x/ln/genesis.json"));
        assert_eq!(l.faucet_key_path, Path::new("/x/ln/faucet.key"));
        assert_eq!(l.nodes[0].home, Path::new("/x/ln/val0"));
        assert_eq!(l.nodes[0].http_addr.port(), 9001);
    }

    /// `run`'s order, for a memory localnet.
    fn prep(args: &LocalnetArgs) -> Result<Layout, LocalnetError> {
        let kept = kept_manifest(args)?;
        prepare(args, kept.as_ref(), None)
    }

    #[test]
    fn keep_without_manifest_inits_and_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = LocalnetArgs::defaults();
        args.dir = dir.path().join("ln");
        args.validators = 2;
        args.keep = true;
        let first = prep(&args).unwrap();
        assert_eq!(first.nodes.len(), 2);
        assert!(first.genesis_path.exists());
        assert!(first.nodes[1].home.join("config.toml").exists());
        // Kept: same addresses, nothing rewritten.
        let again = prep(&args).unwrap();
        assert_eq!(again.nodes, first.nodes);
        // A kept localnet must be run with the signer it was made with.
        args.signer = LocalnetSigner::Softhsm;
        match prep(&args) {
            Err(LocalnetError::Args(m)) => assert!(m.contains("--signer memory"), "{m}"),
            other => panic!("{other:?}"),
        }
        args.signer = LocalnetSigner::Memory;
        args.validators = 3;
        assert!(matches!(prep(&args), Err(LocalnetError::Args(_))));
        // Without --keep: wiped and re-initialised (new ports, new genesis),
        // other files untouched.
        std::fs::write(args.dir.join("notes.txt"), "mine").unwrap();
        args.keep = false;
        let fresh = prep(&args).unwrap();
        assert_eq!(fresh.nodes.len(), 3);
        assert!(args.dir.join("notes.txt").exists());
    }

    #[test]
    fn progress_from_statuses() {
        let ctx = LoadCtx::new(
            RunClock::new(Arc::new(SystemClock::new())),
            "c".into(),
            Vec::new(),
            Vec::new(),
            bitcraps_crypto::Keypair::from_seed(&[1; 32]).public(),
        );
        let status = |h: u64, peers: usize, mempool: usize| crate::api::StatusView {
            node_id: "val0".into(),
            validator_index: 0,
            chain_id: "c".into(),
            version: "0".into(),
            height: h,
            view: h,
            committed_id: String::new(),
            state_root: String::new(),
            catching_up: false,
            sync_rate_blocks_per_s: 0.0,
            peers_connected: peers,
            peers_total: 3,
            mempool_len: mempool,
            committed_tx: 0,
            // From JSON, so fields the signer view gains (with serde
            // defaults) do not break this test.
            signer: serde_json::from_value(
                serde_json::json!({"backend": "memory", "healthy": true}),
            )
            .unwrap(),
            uptime_ms: 0,
            fatal: None,
        };
        let mut rate = RateWindow::default();
        let p = progress_of(
            &ctx,
            &[Some(status(10, 3, 5)), Some(status(12, 2, 7))],
            0,
            &mut rate,
        );
        assert_eq!(p.height, 12);
        assert_eq!(p.peers_min, Some(2));
        assert_eq!(p.peers_total, 3);
        assert_eq!(p.mempool, 12);
        let p = progress_of(&ctx, &[Some(status(10, 3, 5)), None], 0, &mut rate);
        assert_eq!(p.peers_min, Some(0));
        let p = progress_of(&ctx, &[None, None], 0, &mut rate);
        assert_eq!(p.peers_min, None);
    }
}
