//! Validators whose consensus keys live in a SoftHSM2 token, as real
//! processes: `bitcraps localnet --signer softhsm` commits blocks with every
//! vote signed through PKCS#11, and `bitcraps testnet init --signer pkcs11`
//! writes homes that `bitcraps start` opens.
//!
//! No skipping: without SoftHSM2 these tests fail and say what to install
//! (scripts/test.sh installs it). SOFTHSM2_CONF is only ever set in the
//! environment of the child processes, never in this one.
// Test helpers outside #[test] functions panic on purpose.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "support/homes.rs"]
mod homes;

use homes::{mode, run_bounded, run_localnet_and_check, start_homes_and_check_signer, BIN};
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn require_softhsm() {
    assert!(
        Path::new(MODULE).exists(),
        "SoftHSM2 is not installed ({MODULE} is missing): run \
         `apt-get install softhsm2 opensc` (scripts/test.sh does this)"
    );
}

/// Every file called `name` below `dir`.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if entry.file_name() == name {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn softhsm_localnet_commits_blocks() {
    require_softhsm();
    let dir = tempfile::tempdir().unwrap();
    let ln = dir.path().join("ln");
    let json = dir.path().join("summary.json");
    let mut cmd = Command::new(BIN);
    cmd.args(["localnet", "--validators", "4", "--players", "4"])
        .args(["--duration", "8s", "--signer", "softhsm"])
        .arg("--dir")
        .arg(&ln)
        .arg("--json")
        .arg(&json)
        // The localnet sets it for itself and its validators.
        .env_remove("SOFTHSM2_CONF");
    // 8 s of load plus start-up, funding and shutdown (~12 s here).
    let (stdout, stderr, _summary) =
        run_localnet_and_check(cmd, Duration::from_secs(55), &json, "pkcs11");
    assert!(
        stdout.contains("validators sign through SoftHSM2"),
        "{stdout}"
    );
    // Each node said so in /status while the run checked (4 of them).
    assert_eq!(stdout.matches(" pkcs11 healthy").count(), 4, "{stdout}");

    // No consensus key on disk anywhere; each home has its PIN file instead.
    assert_eq!(files_named(&ln, "consensus.key"), Vec::<PathBuf>::new());
    for i in 0..4 {
        let home = ln.join(format!("val{i}"));
        assert!(home.join("keys/identity.key").exists());
        let pin = home.join("keys/pkcs11.pin");
        assert_eq!(mode(&pin), 0o600, "{}", pin.display());
        let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
        assert!(config.contains("backend = \"pkcs11\""), "{config}");
        assert!(
            config.contains(&format!("pkcs11_token = \"bitcraps-localnet-val{i}\"")),
            "{config}"
        );
        assert!(
            config.contains(&format!(
                "pkcs11_key_label = \"bitcraps-bitcraps-localnet-val{i}\""
            )),
            "{config}"
        );
    }
    let token = ln.join("softhsm");
    assert_eq!(mode(&token), 0o700);
    for f in ["user.pin", "so.pin"] {
        assert_eq!(mode(&token.join(f)), 0o600, "{f}");
    }
    // The PIN was never printed.
    let pin = std::fs::read_to_string(token.join("user.pin")).unwrap();
    assert!(!stdout.contains(pin.trim()) && !stderr.contains(pin.trim()));
}

/// `testnet init --signer pkcs11` against tokens made the operator's way
/// (scripts/softhsm-init.sh, one per validator), then `start` on its homes.
#[test]
fn testnet_init_generates_keys_in_the_token() {
    require_softhsm();
    let dir = tempfile::tempdir().unwrap();
    let hsm = dir.path().join("hsm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/softhsm-init.sh");
    for label in ["val-0", "val-1"] {
        let init = Command::new("bash")
            .arg(&script)
            .arg("--dir")
            .arg(&hsm)
            .args(["--label", label])
            .env("SOFTHSM_PIN", "test-pin-4711")
            .env("SOFTHSM_SO_PIN", "test-so-pin-0815")
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let conf = hsm.join("softhsm2.conf");
    let pin_file = dir.path().join("token.pin");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pin_file)
            .unwrap();
        f.write_all(b"test-pin-4711\n").unwrap();
    }
    let net = dir.path().join("net");
    let testnet = |extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "testnet",
            "init",
            "--validators",
            "2",
            "--chain-id",
            "hsm-net",
        ])
        .arg("--out")
        .arg(&net)
        .args(extra)
        .env("SOFTHSM2_CONF", &conf);
        run_bounded(cmd, Duration::from_secs(30))
    };
    let pin_arg = pin_file.to_str().unwrap();

    // Incomplete flags are refused before anything is written.
    let out = testnet(&["--signer", "pkcs11", "--pin-file", pin_arg]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pkcs11-module"), "{err}");
    let out = testnet(&["--pin-file", pin_arg]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--signer pkcs11"));
    assert!(!net.exists());

    let flags = [
        "--signer",
        "pkcs11",
        "--pkcs11-module",
        MODULE,
        "--pkcs11-token",
        "val-{i}",
        "--pin-file",
        pin_arg,
    ];
    let out = testnet(&flags);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bitcraps-hsm-net-val1"), "{stdout}");
    assert!(!stdout.contains("test-pin-4711"), "{stdout}");
    let mut urls = Vec::new();
    for i in 0..2 {
        let home = net.join(format!("val{i}"));
        assert!(!home.join("keys/consensus.key").exists());
        assert_eq!(
            std::fs::read_to_string(home.join("keys/pkcs11.pin")).unwrap(),
            "test-pin-4711\n"
        );
        assert_eq!(mode(&home.join("keys/pkcs11.pin")), 0o600);
        let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
        assert!(
            config.contains(&format!("pkcs11_token = \"val-{i}\"")),
            "{config}"
        );
        let http = config
            .lines()
            .skip_while(|l| *l != "[http]")
            .find_map(|l| l.strip_prefix("listen = \""))
            .expect("[http] listen in config.toml")
            .trim_end_matches('"')
            .to_owned();
        urls.push(format!("http://{http}"));
    }

    // The same labels again: refused by the token, with the way out.
    let out = testnet(&[&flags[..], &["--force"]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds"), "{err}");
    assert!(!err.contains("test-pin-4711"), "{err}");

    // The homes start, sign through their tokens and commit.
    start_homes_and_check_signer(&net, 2, &urls, &[("SOFTHSM2_CONF", &conf)], "pkcs11");
}
