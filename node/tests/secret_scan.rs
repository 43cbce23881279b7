//! No secret reaches a log. Runs a real `bitcraps localnet` (once with
//! plaintext keys signing in memory, once with the consensus keys in
//! encrypted keystores, once with them in a SoftHSM2 token), first at the
//! default log level and then again (`--keep`) with every validator logging
//! at `debug`, then collects every secret the run used and looks for each one
//! in every log and every other file the run wrote.
//!
//! The secrets: each plaintext key file's `secret_seed` (consensus, identity,
//! faucet), each beacon share file's `secret_share` (whole, and its scalar),
//! each keystore's passphrase (its home's passphrase file) and the seed
//! sealed inside it (decrypted here with the node's own keystore code), and
//! the token's user and security officer PINs. The players' and houses'
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
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");
const VALIDATORS: usize = 4;

/// One localnet at a time: each is 4 validator processes on a 2-core
/// machine. An exclusive lock on a file, because nextest runs every test in
/// its own process (a static mutex would only order `cargo test`'s threads);
/// the lock goes with the returned handle.
fn one_localnet_at_a_time() -> std::fs::File {
    let path = std::env::temp_dir().join("bitcraps-secret-scan-localnet.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    file.lock().unwrap();
    file
}

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

/// Files that hold secrets by design: key files (plaintext and encrypted
/// keystores alike), PIN and keystore passphrase files, and the token store
/// (SoftHSM2's encrypted objects).
fn is_secret_store(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str());
    matches!(ext, Some("key" | "pin" | "passphrase"))
        || path.components().any(|c| c.as_os_str() == "tokens")
}

/// The seed sealed in the keystore at `<home>/keys/<file>`, opened the way
/// `bitcraps start` opens it: with the passphrase source the home's
/// `[signer]` names.
fn keystore_seed(path: &Path) -> Vec<u8> {
    use bitcraps_node::home::Home;
    use bitcraps_node::keystore_file::{unlock_keystore_file, PassphraseSource};
    let home = Home::new(path.parent().unwrap().parent().unwrap());
    let config = home.load_config().unwrap();
    let source = PassphraseSource::from_config(&home, &config.signer);
    let key =
        unlock_keystore_file(path, &source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    key.keypair.seed().to_vec()
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
                if json["backend"] == "keystore" {
                    let seed = keystore_seed(&path);
                    assert_eq!(seed.len(), 32, "{name}");
                    add(format!("{name} sealed seed"), seed);
                } else if let Some(seed) = json["secret_seed"].as_str() {
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
            Some("passphrase") => {
                let text = std::fs::read_to_string(&path).unwrap();
                let pass = text.trim_end_matches('\n');
                assert!(
                    pass.len() >= 16,
                    "{name}: a random passphrase is 32 hex characters"
                );
                add(
                    format!("{name} keystore passphrase"),
                    pass.as_bytes().to_vec(),
                );
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
    let _one_at_a_time = one_localnet_at_a_time();
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
    assert_eq!(count("passphrase"), 0);
}

#[test]
fn keystore_signer_localnet_logs_no_secret() {
    let secrets = run_and_scan("keystore");
    let count = |what: &str| secrets.iter().filter(|s| s.name.contains(what)).count();
    // Each consensus key is a keystore: its sealed seed (decrypted by the
    // scan) and its home's passphrase, one each per validator.
    assert_eq!(count("consensus.key"), VALIDATORS, "{:?}", names(&secrets));
    assert_eq!(count("consensus.key sealed seed"), VALIDATORS);
    assert_eq!(
        count("consensus.passphrase keystore passphrase"),
        VALIDATORS,
        "{:?}",
        names(&secrets)
    );
    assert_eq!(
        count("secret_seed"),
        VALIDATORS + 1,
        "identity keys, faucet"
    );
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
    assert_eq!(count("passphrase"), 0);
}

fn names(secrets: &[Secret]) -> Vec<&str> {
    secrets.iter().map(|s| s.name.as_str()).collect()
}

/// The keystore half of the scan, without a localnet: a keystore home's
/// sealed seed (decrypted the way the node does) and its passphrase are
/// collected, the seed is the consensus key genesis names, and both are found
/// when planted in a log.
#[test]
fn keystore_secrets_are_collected_and_found() {
    use bitcraps_crypto::keystore::KdfParams;
    use bitcraps_node::home::{testnet_init, TestnetOptions, TestnetSigner};
    let dir = tempfile::tempdir().unwrap();
    let ln = dir.path().join("ln");
    let net = testnet_init(&TestnetOptions {
        validators: 2,
        out_dir: ln.clone(),
        // Cheapest accepted Argon2id: the localnet run uses the real cost.
        signer: TestnetSigner::Keystore {
            kdf: KdfParams::MIN,
        },
        ..TestnetOptions::default()
    })
    .unwrap();
    let secrets = collect_secrets(&ln);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&net.genesis_path).unwrap()).unwrap();
    for i in 0..2 {
        let seed = secrets
            .iter()
            .find(|s| s.name == format!("val{i}/keys/consensus.key sealed seed"))
            .unwrap_or_else(|| panic!("val{i}'s sealed seed: {:?}", names(&secrets)));
        let public = bitcraps_crypto::Keypair::from_seed(&seed.bytes.clone().try_into().unwrap())
            .public()
            .to_hex();
        assert_eq!(
            spec["consensus"]["validators"][i]["consensus_key"], public,
            "val{i}"
        );
        let pass = format!("val{i}/keys/consensus.passphrase keystore passphrase");
        assert!(
            secrets.iter().any(|s| s.name == pass),
            "{:?}",
            names(&secrets)
        );
    }
    // The passphrase and key files are secret stores, nothing else here is.
    for path in walk(&ln) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let store = name.ends_with(".key") || name.ends_with(".passphrase");
        assert_eq!(is_secret_store(&path), store, "{}", path.display());
    }
    // Planted in a log, each is found (by name, never by value).
    let scanner = Scanner::new(&secrets);
    assert_eq!(
        scanner.scan(&std::fs::read(&net.genesis_path).unwrap()),
        Vec::<String>::new()
    );
    for wanted in [
        "val1/keys/consensus.key sealed seed",
        "val0/keys/consensus.passphrase keystore passphrase",
    ] {
        let secret = secrets.iter().find(|s| s.name == wanted).unwrap();
        let mut log = b"{\"level\":\"INFO\",\"message\":\"unlocked ".to_vec();
        log.extend_from_slice(hex::encode(&secret.bytes).as_bytes());
        log.extend_from_slice(b"\"}\n");
        // (The hex of a hex passphrase is all digits: its HEX form matches too.)
        let found = scanner.scan(&log);
        assert!(found.contains(&format!("{wanted} (hex)")), "{found:?}");
        assert!(found.iter().all(|f| f.starts_with(wanted)), "{found:?}");
    }
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
