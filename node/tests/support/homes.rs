//! Running validator homes as real processes, for the signer-backend
//! tests (`hsm_localnet.rs`, `keystore_localnet.rs`) and `localnet.rs`:
//! bounded runs of the binary, file modes, "start these homes and check they
//! commit and report their signer", and localnet summary checks.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");

/// Runs `cmd` to completion within `limit`, killing it after that.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bitcraps");
    let polls = limit.as_millis() / 100;
    let mut finished = false;
    for _ in 0..polls {
        if child.try_wait().expect("try_wait").is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !finished {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("collect output");
    assert!(
        finished,
        "did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Starts `bitcraps start` for homes `net/val0..val{count}` (with `env` in
/// their environment), waits (bounded) until the first node reaches height
/// 2, stops them, and checks every node's `/status` reports a healthy
/// `backend` signer.
pub fn start_homes_and_check_signer(
    net: &Path,
    count: usize,
    urls: &[String],
    env: &[(&str, &Path)],
    backend: &str,
) {
    let mut nodes: Vec<std::process::Child> = (0..count)
        .map(|i| {
            Command::new(BIN)
                .arg("--home")
                .arg(net.join(format!("val{i}")))
                .arg("start")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let status = |url: &str| {
        let out = Command::new(BIN)
            .args(["status", "--json", "--node", url])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
    };
    let mut committed = false;
    for _ in 0..150 {
        std::thread::sleep(Duration::from_millis(100));
        if status(&urls[0]).is_some_and(|s| s["height"].as_u64().unwrap_or(0) >= 2) {
            committed = true;
            break;
        }
    }
    let finals: Vec<Option<serde_json::Value>> = urls.iter().map(|u| status(u)).collect();
    for node in &mut nodes {
        let _ = node.kill();
        let _ = node.wait();
    }
    assert!(committed, "no blocks committed; statuses: {finals:?}");
    for s in finals {
        let s = s.expect("a status");
        assert_eq!(s["signer"]["backend"], backend, "{s:#}");
        assert_eq!(s["signer"]["healthy"], true, "{s:#}");
    }
}

/// Runs a `bitcraps localnet` command (bounded by `limit`) that writes its
/// summary to `json`, and checks it succeeded with blocks and transactions
/// committed, equal state roots on all 4 nodes, and every node's signer on
/// `backend` and healthy. Returns its stdout, stderr and the summary.
pub fn run_localnet_and_check(
    cmd: Command,
    limit: Duration,
    json: &Path,
    backend: &str,
) -> (String, String, serde_json::Value) {
    let out = run_bounded(cmd, limit);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "bitcraps localnet exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json).expect("summary file")).expect("summary JSON");
    assert!(
        summary["committed_blocks"].as_u64().unwrap() > 0,
        "{summary:#}"
    );
    assert!(summary["committed_tx"].as_u64().unwrap() > 0, "{summary:#}");
    assert_eq!(summary["state_roots_equal"], true, "{summary:#}");
    assert_eq!(summary["signer_backend"], backend, "{summary:#}");
    assert_eq!(summary["signers_healthy"], true, "{summary:#}");
    assert_eq!(summary["validators"], 4, "{summary:#}");
    assert_one_state_root(&summary);
    (stdout, stderr, summary)
}

/// Every node in a localnet JSON summary reports the same state root.
pub fn assert_one_state_root(summary: &serde_json::Value) {
    let roots: std::collections::BTreeSet<&str> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n["state_root"]
                .as_str()
                .expect("every node has a state root")
        })
        .collect();
    assert_eq!(roots.len(), 1, "state roots differ: {summary:#}");
}
