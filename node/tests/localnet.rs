//! `bitcraps localnet`, the newcomer's command, end to end as a real process,
//! checked through its `--json` summary and the process table. (Cluster
//! behaviour under `kill -9`, late joiners and rogue peers is in
//! `cluster.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/homes.rs"]
mod homes;

use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");

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
    // The players played craps: bets were accepted, the beacon rolled the
    // dice, bets were decided, and no chip was created or lost on any node.
    assert!(summary["rolls"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(summary["bets_placed"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(summary["bets_settled"].as_u64().unwrap() > 0, "{summary:#}");
    assert_eq!(summary["chips_conserved"], true, "{summary:#}");
    assert!(summary["tables"].as_u64().unwrap() >= 2, "{summary:#}");
    homes::assert_one_state_root(&summary);
    for n in summary["nodes"].as_array().unwrap() {
        assert_eq!(n["supply_conserved"], true, "{summary:#}");
    }
    assert_eq!(summary["validators"], 4, "{summary:#}");
    assert_eq!(summary["players"], 8, "{summary:#}");
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 4, "{summary:#}");
    assert!(stdout.contains("state roots EQUAL"), "{stdout}");
    assert!(
        stdout.contains("chips       conserved on all 4 nodes"),
        "{stdout}"
    );
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
