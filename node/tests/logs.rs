//! The log pipeline in the real binary: `--log-format json --log-level debug`
//! makes every stderr line a JSON object with `timestamp`, `level` and
//! `message`, for a short command and for a running validator stopped with
//! SIGTERM; public keys stay readable and the key files' secrets never appear.
// Test helpers unwrap freely; deadlines are test-harness wall time, not node
// logic, so they may read the clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use bitcraps_node::home::Home;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");

fn bitcraps(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("BITCRAPS_HOME")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Parses every line as a JSON object with string `timestamp`, `level` and
/// `message`; returns them.
fn json_lines(stderr: &str) -> Vec<Value> {
    assert!(!stderr.trim().is_empty(), "no log lines");
    stderr
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n--- stderr\n{stderr}"));
            assert!(v.is_object(), "{line}");
            for key in ["timestamp", "level", "message", "target"] {
                assert!(v[key].is_string(), "{key} missing: {line}");
            }
            let ts = v["timestamp"].as_str().unwrap();
            assert!(
                ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "{ts}"
            );
            v
        })
        .collect()
}

fn secret_seed(path: &Path) -> String {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["secret_seed"].as_str().unwrap().to_owned()
}

/// `init` prints `  consensus key  <hex>`.
fn printed_key(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("{label} missing from {stdout}"))
        .to_owned()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn logs_json_lines_from_a_short_command() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    let root = root.to_str().unwrap();
    let first = bitcraps(&["--home", root, "init"]).output().unwrap();
    assert!(first.status.success(), "{first:?}");
    // `--force` logs a warning before replacing the keys.
    let out = bitcraps(&[
        "--home",
        root,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "init",
        "--force",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines = json_lines(&stderr);
    let warn = lines
        .iter()
        .find(|l| l["message"] == "--force: replacing keys and signing-guard state")
        .unwrap_or_else(|| panic!("no --force warning in {stderr}"));
    assert_eq!(warn["level"], "WARN");
    assert_eq!(warn["target"], "bitcraps::cli::init");
    assert_eq!(warn["home"], root);
    // Stdout stays command output only.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("initialised node home"), "{stdout}");
}

#[test]
fn logs_json_lines_from_a_running_validator() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    let root = root.to_str().unwrap();
    let p2p = format!("127.0.0.1:{}", free_udp_port());
    let http = format!("127.0.0.1:{}", free_tcp_port());
    let init = bitcraps(&[
        "--home",
        root,
        "init",
        "--p2p-listen",
        &p2p,
        "--http-listen",
        &http,
    ])
    .output()
    .unwrap();
    assert!(init.status.success(), "{init:?}");
    let init_stdout = String::from_utf8(init.stdout).unwrap();
    let consensus_key = printed_key(&init_stdout, "consensus key");
    let identity_key = printed_key(&init_stdout, "identity key");

    let mut child = bitcraps(&[
        "--home",
        root,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "start",
    ])
    .spawn()
    .unwrap();
    let collected = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let stderr = child.stderr.take().unwrap();
        let collected = collected.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                collected.lock().unwrap().push(line.unwrap());
            }
        })
    };
    // Run until the node has logged a while at debug level (or give up).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = {
            let lines = collected.lock().unwrap();
            let started = lines.iter().any(|l| l.contains("starting validator"));
            if started && lines.len() >= 20 {
                break;
            }
            lines.len()
        };
        if let Some(status) = child.try_wait().unwrap() {
            panic!("validator exited early ({status}) after {n} lines");
        }
        assert!(Instant::now() < deadline, "only {n} log lines in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > stop_deadline {
            let _ = child.kill();
            panic!("validator did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    assert!(status.success(), "validator exited with {status}");

    let stderr = collected.lock().unwrap().join("\n");
    let lines = json_lines(&stderr);
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "--log-level debug produced no DEBUG line:\n{stderr}"
    );
    let start = lines
        .iter()
        .find(|l| l["message"] == "starting validator")
        .unwrap();
    // Public keys under the node's field names are not redacted.
    assert_eq!(start["consensus_key"], consensus_key.as_str(), "{start}");
    assert_eq!(start["identity_key"], identity_key.as_str(), "{start}");
    assert!(
        lines.iter().any(|l| l["message"] == "validator stopped"),
        "{stderr}"
    );
    let home = Home::new(root);
    for path in [
        home.consensus_key_path(),
        home.identity_key_path(),
        home.faucet_key_path(),
    ] {
        let seed = secret_seed(&path);
        assert_eq!(seed.len(), 64, "{}", path.display());
        assert!(
            !stderr.contains(&seed),
            "{}'s secret seed is in the log",
            path.display()
        );
    }
}
