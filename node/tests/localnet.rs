//! Process-level tests: real `bitcraps` validator processes on loopback.
//!
//! * `localnet_runs_to_equal_state_roots`: the newcomer's command,
//!   `bitcraps localnet`, end to end, checked through its `--json` summary.
//! * `killed_node_restarts_and_catches_up`: the [`Cluster`] controller with
//!   `kill -9` and restart; the restarted node reaches the others' height and
//!   agrees on the state root.
//! * `late_joiner_syncs_from_genesis`: a node started after the others
//!   committed blocks syncs and agrees.
//!
//! Every wait is bounded; a failure prints the nodes' log tails. The
//! [`Cluster`] kills its processes on drop, so a failing test leaks nothing.

use bitcraps_node::home::{testnet_init, Testnet, TestnetOptions};
use bitcraps_node::localnet::Cluster;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");
const READY_MS: u64 = 30_000;
const PROGRESS_MS: u64 = 30_000;
const CATCH_UP_MS: u64 = 60_000;

fn testnet(dir: &Path, validators: usize) -> Testnet {
    testnet_init(&TestnetOptions {
        validators,
        out_dir: dir.join("net"),
        force: false,
        ..TestnetOptions::default()
    })
    .expect("testnet init")
}

fn logs(c: &Cluster) -> String {
    (0..c.node_count())
        .map(|i| format!("--- {} ---\n{}", c.name(i), c.log_tail(i, 30)))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn ready_all(c: &Cluster) {
    if let Err((i, e)) = c.wait_all_ready(READY_MS).await {
        panic!("node {i} not ready: {e}\n{}", logs(c));
    }
}

async fn height(c: &Cluster, i: usize) -> Option<u64> {
    c.status(i).await.ok().map(|s| s.height)
}

/// Polls node `i` until its height reaches `target` (bounded by `timeout_ms`).
async fn wait_height(c: &Cluster, i: usize, target: u64, timeout_ms: u64) {
    let poll = async {
        loop {
            if height(c, i).await.is_some_and(|h| h >= target) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    if tokio::time::timeout(Duration::from_millis(timeout_ms), poll)
        .await
        .is_err()
    {
        panic!(
            "{} did not reach height {target} within {timeout_ms} ms (at {:?})\n{}",
            c.name(i),
            height(c, i).await,
            logs(c)
        );
    }
}

/// The highest height among `nodes`.
async fn max_height(c: &Cluster, nodes: &[usize]) -> u64 {
    let mut best = 0;
    for &i in nodes {
        best = best.max(height(c, i).await.unwrap_or(0));
    }
    best
}

async fn state_root(c: &Cluster, i: usize, h: u64) -> String {
    c.client(i)
        .block(h)
        .await
        .expect("block request")
        .unwrap_or_else(|| panic!("{} has no block {h}", c.name(i)))
        .state_root
        .unwrap_or_else(|| panic!("{} block {h} has no state root", c.name(i)))
}

fn stop_all_cleanly(c: &mut Cluster) {
    let exits = c.stop_all();
    for (i, exit) in exits.iter().enumerate() {
        let status = exit.unwrap_or_else(|| panic!("{} was not running at the end", c.name(i)));
        assert!(
            status.success(),
            "{} exited with {status} on SIGTERM\n{}",
            c.name(i),
            logs(c)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_restarts_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 4);
    let mut c = Cluster::start(Path::new(BIN), &net, &[]).expect("start cluster");
    ready_all(&c).await;

    // Heights rise.
    let h0 = max_height(&c, &[0]).await;
    wait_height(&c, 0, h0 + 3, PROGRESS_MS).await;

    // kill -9 one validator; the other three (a quorum of 4) keep committing.
    c.kill(3);
    assert!(!c.is_running(3));
    let h1 = max_height(&c, &[0, 1, 2]).await;
    wait_height(&c, 0, h1 + 3, PROGRESS_MS).await;

    // Restarted with the same home, it catches up to where the others are.
    c.restart(3).expect("restart");
    assert!(c.is_running(3));
    if let Err(e) = c.wait_ready(3, CATCH_UP_MS).await {
        panic!("restarted node not ready: {e}\n{}", logs(&c));
    }
    let target = max_height(&c, &[0, 1, 2]).await;
    wait_height(&c, 3, target, CATCH_UP_MS).await;
    assert_eq!(
        state_root(&c, 3, target).await,
        state_root(&c, 0, target).await,
        "state roots differ at height {target}"
    );

    stop_all_cleanly(&mut c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_syncs_from_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 4);
    let mut c = Cluster::create(Path::new(BIN), &net, &[]).expect("create cluster");
    for i in 0..3 {
        c.start_node(i).expect("start node");
    }
    for i in 0..3 {
        if let Err(e) = c.wait_ready(i, READY_MS).await {
            panic!("{} not ready: {e}\n{}", c.name(i), logs(&c));
        }
    }
    // Three of four validators are a quorum: they commit without the fourth.
    wait_height(&c, 0, 5, PROGRESS_MS).await;

    c.start_node(3).expect("start late joiner");
    let target = max_height(&c, &[0, 1, 2]).await;
    wait_height(&c, 3, target, CATCH_UP_MS).await;
    assert_eq!(
        state_root(&c, 3, target).await,
        state_root(&c, 1, target).await
    );
    stop_all_cleanly(&mut c);
}

/// Runs `bitcraps localnet` as a newcomer would and checks its JSON summary.
#[test]
fn localnet_runs_to_equal_state_roots() {
    let dir = tempfile::tempdir().unwrap();
    let json: PathBuf = dir.path().join("summary.json");
    let mut child = std::process::Command::new(BIN)
        .args([
            "localnet",
            "--validators",
            "4",
            "--players",
            "8",
            "--duration",
            "15s",
        ])
        .arg("--dir")
        .arg(dir.path().join("ln"))
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bitcraps localnet");
    // 15 s of load plus start-up, funding and shutdown; generous for a
    // loaded 2-core CI machine, but bounded.
    let deadline_polls = 180_000 / 100;
    let mut status = None;
    for _ in 0..deadline_polls {
        if let Some(s) = child.try_wait().expect("try_wait") {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("collect output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = status.unwrap_or_else(|| {
        panic!(
            "bitcraps localnet did not finish within 180 s\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
    });
    assert!(
        status.success(),
        "bitcraps localnet exited with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("summary file")).expect("summary JSON");
    assert_eq!(summary["state_roots_equal"], true, "{summary:#}");
    assert!(summary["committed_tx"].as_u64().unwrap() > 0, "{summary:#}");
    assert_eq!(summary["validators"], 4, "{summary:#}");
    assert_eq!(summary["players"], 8, "{summary:#}");
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 4, "{summary:#}");
    assert!(stdout.contains("state roots EQUAL"), "{stdout}");
    // Every validator process was stopped.
    let leftovers = processes_mentioning(&dir.path().join("ln"));
    assert!(
        leftovers.is_empty(),
        "validators still running: {leftovers:?}"
    );
}

/// Command lines of live processes that mention `path` (validators are
/// started with `--home <path>/valN`).
fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(&needle))
        .collect()
}
