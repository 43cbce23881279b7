//! Validators whose consensus keys are encrypted keystores, as real
//! processes: `bitcraps localnet --signer keystore` commits blocks with every
//! node's key unlocked from its keystore at start-up, and `bitcraps testnet
//! init --signer keystore` writes homes that `bitcraps start` opens (the
//! keystore equivalent of hsm_localnet.rs).
// Test helpers outside #[test] functions panic on purpose.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[path = "support/homes.rs"]
mod homes;

use homes::{mode, run_bounded, run_localnet_and_check, start_homes_and_check_signer, BIN};

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Checks one keystore home: the consensus key is a keystore (no seed in
/// it), its passphrase file is private and named by `[signer]`, the other
/// keys are plaintext as before. Returns the passphrase (never printed).
fn check_keystore_home(home: &Path) -> String {
    let keystore = home.join("keys/consensus.key");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keystore).unwrap()).unwrap();
    assert_eq!(json["backend"], "keystore", "{}", keystore.display());
    assert_eq!(json["purpose"], "consensus");
    assert_eq!(json["kdf"]["alg"], "argon2id");
    // The production defaults (keystore_file::TESTNET_KDF).
    assert_eq!(json["kdf"]["m_kib"], 65536);
    assert_eq!(json["kdf"]["t"], 3);
    assert!(json.get("secret_seed").is_none());
    assert_eq!(mode(&keystore), 0o600);
    let pass_path = home.join("keys/consensus.passphrase");
    assert_eq!(mode(&pass_path), 0o600, "{}", pass_path.display());
    let pass = std::fs::read_to_string(&pass_path).unwrap();
    let pass = pass.strip_suffix('\n').unwrap().to_owned();
    assert_eq!(pass.len(), 32, "32 hex characters");
    assert!(pass.bytes().all(|b| b.is_ascii_hexdigit()));
    let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(config.contains("\nbackend = \"file\"\n"), "{config}");
    assert!(
        config.contains("\npassphrase_file = \"keys/consensus.passphrase\"\n"),
        "{config}"
    );
    for plain in ["identity.key", "beacon_share.key"] {
        let text = std::fs::read_to_string(home.join("keys").join(plain)).unwrap();
        assert!(text.contains("\"backend\": \"plaintext\""), "{plain}");
    }
    pass
}

#[test]
fn keystore_localnet_commits_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let ln = dir.path().join("ln");
    let json = dir.path().join("summary.json");
    let mut cmd = Command::new(BIN);
    cmd.args(["localnet", "--validators", "4", "--players", "4"])
        .args(["--duration", "6s", "--signer", "keystore"])
        .arg("--dir")
        .arg(&ln)
        .arg("--json")
        .arg(&json);
    // 6 s of load plus start-up (four Argon2id unlocks), funding and
    // shutdown (~11 s here).
    let (stdout, stderr, _summary) =
        run_localnet_and_check(cmd, Duration::from_secs(60), &json, "keystore");
    assert!(stdout.contains("signer: encrypted keystores"), "{stdout}");
    // Each node said so in /status while the run checked (4 of them).
    assert_eq!(stdout.matches(" keystore healthy").count(), 4, "{stdout}");
    let manifest = std::fs::read_to_string(ln.join("localnet.json")).unwrap();
    assert!(manifest.contains("\"signer\": \"keystore\""), "{manifest}");

    let mut passphrases = Vec::new();
    for i in 0..4 {
        let pass = check_keystore_home(&ln.join(format!("val{i}")));
        // Never printed (the full scan of every file is secret_scan.rs).
        assert!(!stdout.contains(&pass) && !stderr.contains(&pass), "val{i}");
        passphrases.push(pass);
    }
    passphrases.sort();
    passphrases.dedup();
    assert_eq!(passphrases.len(), 4, "one passphrase per validator");
}

/// `testnet init --signer keystore`, then `start` on its homes.
#[test]
fn testnet_init_keystore_homes_start_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let testnet = |extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "testnet",
            "init",
            "--validators",
            "2",
            "--chain-id",
            "keystore-net",
        ])
        .arg("--out")
        .arg(&net)
        .args(extra);
        run_bounded(cmd, Duration::from_secs(30))
    };

    // PKCS#11 flags do not go with it; refused before anything is written.
    let out = testnet(&["--signer", "keystore", "--pin-file", "token.pin"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pin-file needs --signer pkcs11"), "{err}");
    assert!(!net.exists());

    let out = testnet(&["--signer", "keystore"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("encrypted keystores"), "{stdout}");
    assert!(stdout.contains("keys/consensus.passphrase"), "{stdout}");
    let mut urls = Vec::new();
    for i in 0..2 {
        let home = net.join(format!("val{i}"));
        let pass = check_keystore_home(&home);
        assert!(!stdout.contains(&pass), "val{i}'s passphrase was printed");
        let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
        let http = config
            .lines()
            .skip_while(|l| *l != "[http]")
            .find_map(|l| l.strip_prefix("listen = \""))
            .expect("[http] listen in config.toml")
            .trim_end_matches('"')
            .to_owned();
        urls.push(format!("http://{http}"));
    }

    // A passphrase file others can read is refused at start, with the fix,
    // before the keystore is touched.
    let loose = net.join("val1/keys/consensus.passphrase");
    set_mode(&loose, 0o644);
    let mut cmd = Command::new(BIN);
    cmd.arg("--home").arg(net.join("val1")).arg("start");
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(err.contains("consensus.passphrase"), "{err}");
    set_mode(&loose, 0o600);

    // The homes start, unlock their keystores and commit.
    start_homes_and_check_signer(&net, 2, &urls, &[], "keystore");
}
