//! No secret reaches a log. Runs a real `bitcraps localnet` (once with
//! plaintext keys signing in memory, once with the consensus keys in a
//! SoftHSM2 token), first at the default log level and then again (`--keep`)
//! with every validator logging at `debug`, then collects every secret the
//! run used and looks for each one in every log and every other file the run
//! wrote.
//!
//! The secrets: each plaintext key file's `secret_seed` (consensus, identity,
//! faucet), each beacon share file's `secret_share` (whole, and its scalar),
//! and the token's user and security officer PINs. The players' and houses'
//! keys are not derivable: the localnet process generates them from OS
//! randomness and never writes them, so they cannot be looked for.
//!
//! Each secret is looked for as raw bytes, lower- and upper-case hex, and as
//! Rust's `Debug` / JSON byte arrays. A negative control checks the scanner
//! finds every one of those forms. Failures name the file, the secret and the
//! form, never the secret's value.
// Test helpers outside #[test] functions panic on purpose.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");
const VALIDATORS: usize = 4;

/// One localnet at a time: each is 4 validator processes on a 2-core machine.
static LOCALNET: Mutex<()> = Mutex::new(());

/// A secret and where it came from (the name is safe to print).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Secret {
    name: String,
    bytes: Vec<u8>,
}

/// The forms a secret could take in a log line.
fn encodings(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let debug = format!("{bytes:?}");
    vec![
        ("raw", bytes.to_vec()),
        ("hex", hex::encode(bytes).into_bytes()),
        ("HEX", hex::encode_upper(bytes).into_bytes()),
        ("debug array", debug.as_bytes().to_vec()),
        ("JSON array", debug.replace(' ', "").into_bytes()),
    ]
}

/// Shortest needle: a 4-byte prefix indexes them all.
const PREFIX: usize = 4;

/// Finds any form of any secret in a byte string in one pass: needles are
/// indexed by their first [`PREFIX`] bytes, so each position of the haystack
/// costs one hash lookup.
struct Scanner {
    by_prefix: HashMap<[u8; PREFIX], Vec<(String, Vec<u8>)>>,
}

impl Scanner {
    fn new(secrets: &[Secret]) -> Scanner {
        let mut by_prefix: HashMap<[u8; PREFIX], Vec<(String, Vec<u8>)>> = HashMap::new();
        for secret in secrets {
            assert!(
                secret.bytes.len() >= PREFIX,
                "{} is too short to look for",
                secret.name
            );
            for (form, needle) in encodings(&secret.bytes) {
                let key: [u8; PREFIX] = needle[..PREFIX].try_into().unwrap();
                by_prefix
                    .entry(key)
                    .or_default()
                    .push((format!("{} ({form})", secret.name), needle));
            }
        }
        Scanner { by_prefix }
    }

    /// What was found in `haystack`: "secret name (form)", each once.
    fn scan(&self, haystack: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        for (i, window) in haystack.windows(PREFIX).enumerate() {
            let key: [u8; PREFIX] = window.try_into().unwrap();
            let Some(candidates) = self.by_prefix.get(&key) else {
                continue;
            };
            for (what, needle) in candidates {
                if haystack[i..].starts_with(needle) && !found.contains(what) {
                    found.push(what.clone());
                }
            }
        }
        found
    }
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Files that hold secrets by design: key files, PIN files, and the token
/// store (SoftHSM2's encrypted objects).
fn is_secret_store(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str());
    matches!(ext, Some("key" | "pin")) || path.components().any(|c| c.as_os_str() == "tokens")
}

/// Every secret in the localnet directory `ln`.
fn collect_secrets(ln: &Path) -> Vec<Secret> {
    let mut secrets: Vec<Secret> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| {
        if !secrets.iter().any(|s| s.bytes == bytes) {
            secrets.push(Secret { name, bytes });
        }
    };
    for path in walk(ln) {
        let name = path.strip_prefix(ln).unwrap().display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("key") => {
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                if let Some(seed) = json["secret_seed"].as_str() {
                    let bytes = hex::decode(seed).unwrap();
                    assert_eq!(bytes.len(), 32, "{name}");
                    add(format!("{name} secret_seed"), bytes);
                } else if let Some(share) = json["secret_share"].as_str() {
                    // u32be index || 32-byte scalar: the scalar is the secret.
                    let bytes = hex::decode(share).unwrap();
                    assert_eq!(bytes.len(), 36, "{name}");
                    add(format!("{name} secret_share scalar"), bytes[4..].to_vec());
                    add(format!("{name} secret_share"), bytes);
                } else {
                    panic!("{name}: a key file with neither secret_seed nor secret_share");
                }
            }
            Some("pin") => {
                let text = std::fs::read_to_string(&path).unwrap();
                let pin = text.trim_end_matches('\n');
                assert!(pin.len() >= 16, "{name}: a random PIN is 32 hex characters");
                add(format!("{name} PIN"), pin.as_bytes().to_vec());
            }
            _ => {}
        }
    }
    secrets
}

/// Runs `bitcraps localnet` to completion (bounded), appending its stdout and
/// stderr to `<out>/localnet.stdout` and `<out>/localnet.stderr`.
fn localnet(out: &Path, ln: &Path, signer: &str, keep: bool) {
    let append = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out.join(name))
            .unwrap()
    };
    let mut cmd = Command::new(BIN);
    cmd.args(["localnet", "--validators", &VALIDATORS.to_string()])
        .args(["--players", "4", "--duration", "3s", "--signer", signer])
        .arg("--dir")
        .arg(ln)
        .arg("--json")
        .arg(out.join("summary.json"))
        .env_remove("SOFTHSM2_CONF")
        .stdout(Stdio::from(append("localnet.stdout")))
        .stderr(Stdio::from(append("localnet.stderr")));
    if keep {
        cmd.arg("--keep");
    }
    let mut child = cmd.spawn().expect("spawn bitcraps localnet");
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let tail = || {
        let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
        format!(
            "{}\nstderr:\n{}",
            read("localnet.stdout"),
            read("localnet.stderr")
        )
    };
    let status = status.unwrap_or_else(|| panic!("localnet did not finish in 60 s:\n{}", tail()));
    assert!(
        status.success(),
        "localnet exited with {status}:\n{}",
        tail()
    );
}

/// Switches every validator of `ln` to `debug` logging (for the `--keep` run).
fn debug_logging(ln: &Path) {
    for i in 0..VALIDATORS {
        let path = ln.join(format!("val{i}/config.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("\nlevel = \"info\"\n").count(), 1, "{text}");
        std::fs::write(
            &path,
            text.replace("\nlevel = \"info\"\n", "\nlevel = \"debug\"\n"),
        )
        .unwrap();
    }
}

/// Two runs of a localnet with `signer`, then the scan. Returns the secrets
/// found, for the per-signer checks.
fn run_and_scan(signer: &str) -> Vec<Secret> {
    let _one_at_a_time = LOCALNET.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let ln = dir.path().join("ln");
    localnet(dir.path(), &ln, signer, false);
    debug_logging(&ln);
    localnet(dir.path(), &ln, signer, true);

    let secrets = collect_secrets(&ln);
    let scanner = Scanner::new(&secrets);

    // The logs: each validator's node.log and the localnet's own output.
    // They must be substantial, or finding nothing in them means nothing.
    let mut logs: Vec<PathBuf> = (0..VALIDATORS)
        .map(|i| ln.join(format!("val{i}/node.log")))
        .collect();
    logs.push(dir.path().join("localnet.stdout"));
    logs.push(dir.path().join("localnet.stderr"));
    for (i, path) in logs.iter().take(VALIDATORS).enumerate() {
        let log = std::fs::read_to_string(path).unwrap();
        assert_eq!(log.matches("validator started").count(), 2, "val{i}");
        assert!(
            log.contains("\"level\":\"DEBUG\""),
            "val{i} logged no debug lines"
        );
        assert!(
            log.len() > 10_000,
            "val{i}'s log is only {} bytes",
            log.len()
        );
    }
    let stdout = std::fs::read_to_string(dir.path().join("localnet.stdout")).unwrap();
    assert_eq!(stdout.matches("localnet OK").count(), 2, "{stdout}");

    let mut leaks = Vec::new();
    let mut scanned_bytes = 0;
    // Every other file the run wrote too (configs, genesis, manifests,
    // databases, guard state), except the files that hold secrets by design.
    let others = walk(&ln)
        .into_iter()
        .filter(|p| !is_secret_store(p) && !logs.contains(p));
    let summary = dir.path().join("summary.json");
    for path in logs.iter().cloned().chain(others).chain([summary]) {
        let bytes = std::fs::read(&path).unwrap();
        scanned_bytes += bytes.len();
        for what in scanner.scan(&bytes) {
            leaks.push(format!("{}: {what}", path.display()));
        }
    }
    assert!(
        scanned_bytes > 100_000,
        "scanned only {scanned_bytes} bytes"
    );
    assert!(
        leaks.is_empty(),
        "secrets found outside their files:\n{}",
        leaks.join("\n")
    );
    secrets
}

#[test]
fn memory_signer_localnet_logs_no_secret() {
    let secrets = run_and_scan("memory");
    let count = |what: &str| secrets.iter().filter(|s| s.name.contains(what)).count();
    // Consensus and identity key per validator, the faucet, the shares.
    assert_eq!(count("consensus.key"), VALIDATORS);
    assert_eq!(count("identity.key"), VALIDATORS);
    assert_eq!(count("faucet.key"), 1);
    assert_eq!(count("secret_share scalar"), VALIDATORS);
    assert_eq!(count("PIN"), 0);
}

#[test]
fn softhsm_signer_localnet_logs_no_secret() {
    let secrets = run_and_scan("softhsm");
    let count = |what: &str| secrets.iter().filter(|s| s.name.contains(what)).count();
    // No consensus key file; the user PIN (the same in every home's
    // keys/pkcs11.pin, so kept once) and the SO PIN.
    assert_eq!(count("consensus.key"), 0);
    assert_eq!(count("identity.key"), VALIDATORS);
    assert_eq!(count("faucet.key"), 1);
    assert_eq!(count("secret_share scalar"), VALIDATORS);
    assert_eq!(count("PIN"), 2, "{:?}", names(&secrets));
    assert_eq!(count("so.pin"), 1);
}

fn names(secrets: &[Secret]) -> Vec<&str> {
    secrets.iter().map(|s| s.name.as_str()).collect()
}

/// The scanner finds every form of a secret, and nothing in a clean log.
#[test]
fn scanner_finds_a_planted_secret() {
    let dir = tempfile::tempdir().unwrap();
    let seed: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let pin = b"0f1e2d3c4b5a69788796a5b4c3d2e1f0".to_vec();
    let secrets = vec![
        Secret {
            name: "planted seed".into(),
            bytes: seed.clone(),
        },
        Secret {
            name: "planted PIN".into(),
            bytes: pin.clone(),
        },
    ];
    let scanner = Scanner::new(&secrets);
    let clean = b"{\"level\":\"INFO\",\"message\":\"validator started\"}\n".repeat(100);
    assert_eq!(scanner.scan(&clean), Vec::<String>::new());
    for secret in &secrets {
        for (form, needle) in encodings(&secret.bytes) {
            let path = dir.path().join("scratch.log");
            let mut log = clean.clone();
            log.extend_from_slice(b"{\"level\":\"DEBUG\",\"message\":\"oops ");
            log.extend_from_slice(&needle);
            log.extend_from_slice(b"\"}\n");
            log.extend_from_slice(&clean);
            std::fs::write(&path, &log).unwrap();
            let found = scanner.scan(&std::fs::read(&path).unwrap());
            assert!(
                found.contains(&format!("{} ({form})", secret.name)),
                "{} in form {form} not found: {found:?}",
                secret.name
            );
        }
    }
    // A near miss (one byte off) is not a find.
    let mut near = hex::encode(&seed).into_bytes();
    near[63] = if near[63] == b'0' { b'1' } else { b'0' };
    assert_eq!(scanner.scan(&near), Vec::<String>::new());
}
