//! `bitcraps keys` with encrypted keystores, end to end through the binary:
//! generate (passphrase from a file or the environment), show without a
//! passphrase, show --unlock, import from plaintext, wrong passphrases, loose
//! permissions, no terminal for a prompt. Every output is checked for the
//! passphrase and the seed.
//!
//! KDF cost is the minimum (`--kdf-memory-kib 8192 --kdf-iterations 1`) so
//! each command takes milliseconds, not the default ~0.2 s.
#![cfg(unix)]
// Test helpers unwrap freely: a failure is a test failure with a backtrace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcraps_node::home::{self, load_key_file_with};
use bitcraps_node::keystore_file::PassphraseSource;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PASS: &str = "tumbling dice at midnight";
const WRONG: &str = "tumbling dice at midday!";
const FAST_KDF: [&str; 4] = ["--kdf-memory-kib", "8192", "--kdf-iterations", "1"];

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitcraps"));
    cmd.args(args)
        // No terminal: a prompt must fail instead of waiting.
        .stdin(Stdio::null())
        .env_remove("BITCRAPS_KEYSTORE_PASSPHRASE")
        .env_remove("BITCRAPS_HOME");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bitcraps");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and expects success; checks no secret is printed.
fn ok(args: &[&str], envs: &[(&str, &str)], secrets: &[&str]) -> Out {
    let out = run(args, envs);
    assert_eq!(out.code, Some(0), "{args:?} failed: {out:?}");
    no_secrets(&out, secrets);
    out
}

/// Runs and expects exit 1 with every needle in stderr; checks no secret is
/// printed.
fn fails(args: &[&str], envs: &[(&str, &str)], needles: &[&str], secrets: &[&str]) -> Out {
    let out = run(args, envs);
    assert_eq!(out.code, Some(1), "{args:?} should fail: {out:?}");
    for n in needles {
        assert!(out.stderr.contains(n), "{args:?}: {n:?} not in {out:?}");
    }
    no_secrets(&out, secrets);
    out
}

fn no_secrets(out: &Out, secrets: &[&str]) {
    for s in secrets.iter().chain([&PASS, &WRONG]) {
        assert!(!out.all().contains(s), "secret {s:?} leaked: {out:?}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_mode(path: &Path, content: &str, mode: u32) {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn pass_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    write_mode(&p, &format!("{content}\n"), 0o600);
    p
}

/// The seed hex of a keystore, opened through the library (to look for it in
/// the binary's output).
fn keystore_seed(path: &Path, pass: &Path) -> (String, String) {
    let key = load_key_file_with(path, Some(&PassphraseSource::File(pass.to_owned()))).unwrap();
    (
        hex::encode(key.keypair.seed().as_slice()),
        key.keypair.public().to_hex(),
    )
}

#[test]
fn generate_show_and_unlock_a_keystore() {
    let dir = tempfile::tempdir().unwrap();
    let pass = pass_file(dir.path(), "pass", PASS);
    let wrong = pass_file(dir.path(), "wrong", WRONG);
    let ks = dir.path().join("keys/consensus.key");
    let mut args = vec![
        "keys",
        "generate",
        "--out",
        s(&ks),
        "--backend",
        "keystore",
        "--passphrase-file",
        s(&pass),
    ];
    args.extend(FAST_KDF);
    let gen = ok(&args, &[], &[]);
    let (seed, public) = keystore_seed(&ks, &pass);
    no_secrets(&gen, &[&seed]);
    assert!(gen.stdout.contains(&public), "{gen:?}");
    assert!(gen.stdout.contains("encrypted keystore"), "{gen:?}");
    assert_eq!(mode(&ks), 0o600);
    assert_eq!(mode(ks.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&ks).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["backend"], "keystore");
    assert_eq!(v["purpose"], "consensus");
    assert_eq!(v["public_key"], public.as_str());
    assert_eq!(v["kdf"]["m_kib"], 8192);
    assert!(!text.contains(&seed) && !text.contains(PASS));

    // Show needs no passphrase, positional or --file, text or JSON.
    let shown = ok(&["keys", "show", s(&ks)], &[], &[&seed]);
    for needle in ["consensus", "keystore", public.as_str()] {
        assert!(shown.stdout.contains(needle), "{needle}: {shown:?}");
    }
    assert!(!shown.stdout.contains("passphrase ok"), "{shown:?}");
    let json = ok(&["keys", "show", "--file", s(&ks), "--json"], &[], &[&seed]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v[0]["backend"], "keystore");
    assert_eq!(v[0]["verified"], false);
    assert_eq!(v[0]["public_key"], public.as_str());

    // --unlock proves the passphrase; a wrong one fails without detail.
    let unlocked = ok(
        &["keys", "show", s(&ks), "--passphrase-file", s(&pass)],
        &[],
        &[&seed],
    );
    assert!(unlocked.stdout.contains("passphrase ok"), "{unlocked:?}");
    fails(
        &[
            "keys",
            "show",
            s(&ks),
            "--unlock",
            "--passphrase-file",
            s(&wrong),
        ],
        &[],
        &["wrong passphrase or damaged file", s(&wrong)],
        &[&seed],
    );
    // --unlock with no source and no terminal: a clear error, no hang.
    fails(
        &["keys", "show", s(&ks), "--unlock"],
        &[],
        &["not a terminal", "--passphrase-file"],
        &[&seed],
    );

    // Never overwritten.
    fails(&args, &[], &["already exists"], &[&seed]);
    assert_eq!(std::fs::read_to_string(&ks).unwrap(), text);

    // A keystore readable by others is refused, even just to show it.
    std::fs::set_permissions(&ks, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails(&["keys", "show", s(&ks)], &[], &["chmod 600"], &[&seed]);
}

#[test]
fn passphrase_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("id.key");
    let mut args = vec![
        "keys",
        "generate",
        "--out",
        s(&ks),
        "--purpose",
        "identity",
        "--backend",
        "keystore",
        "--passphrase-env",
    ];
    args.extend(FAST_KDF);
    // The default variable name.
    fails(
        &args,
        &[],
        &["BITCRAPS_KEYSTORE_PASSPHRASE", "is not set"],
        &[],
    );
    assert!(!ks.exists());
    ok(&args, &[("BITCRAPS_KEYSTORE_PASSPHRASE", PASS)], &[]);
    // A named variable, for unlocking.
    let out = ok(
        &["keys", "show", s(&ks), "--passphrase-env", "MY_KS_PASS"],
        &[("MY_KS_PASS", PASS)],
        &[],
    );
    assert!(out.stdout.contains("identity"), "{out:?}");
    assert!(out.stdout.contains("passphrase ok"), "{out:?}");
    fails(
        &["keys", "show", s(&ks), "--passphrase-env", "MY_KS_PASS"],
        &[("MY_KS_PASS", WRONG)],
        &["wrong passphrase", "MY_KS_PASS"],
        &[],
    );
}

#[test]
fn import_a_plaintext_key() {
    let dir = tempfile::tempdir().unwrap();
    let pass = pass_file(dir.path(), "pass", PASS);
    let plain = dir.path().join("plain.key");
    ok(
        &[
            "keys",
            "generate",
            "--out",
            s(&plain),
            "--purpose",
            "identity",
        ],
        &[],
        &[],
    );
    let before = std::fs::read_to_string(&plain).unwrap();
    let plain_key = home::load_key_file(&plain).unwrap();
    let seed = hex::encode(plain_key.keypair.seed().as_slice());
    let public = plain_key.keypair.public().to_hex();

    let ks = dir.path().join("sealed/identity.key");
    let mut args = vec![
        "keys",
        "import",
        "--from",
        s(&plain),
        "--out",
        s(&ks),
        "--passphrase-file",
        s(&pass),
    ];
    args.extend(FAST_KDF);
    let out = ok(&args, &[], &[&seed]);
    assert!(out.stdout.contains(&public), "{out:?}");
    assert!(out.stdout.contains("shred"), "{out:?}");
    // Same key, same purpose; the plaintext file untouched.
    let (ks_seed, ks_public) = keystore_seed(&ks, &pass);
    assert_eq!(
        (ks_seed.as_str(), ks_public.as_str()),
        (seed.as_str(), public.as_str())
    );
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), before);
    let shown = ok(&["keys", "show", s(&ks), "--json"], &[], &[&seed]);
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v[0]["purpose"], "identity");
    assert_eq!(v[0]["backend"], "keystore");
    assert!(!std::fs::read_to_string(&ks).unwrap().contains(&seed));

    // Not twice into the same file; not from a keystore.
    fails(&args, &[], &["already exists"], &[&seed]);
    let again = dir.path().join("again.key");
    fails(
        &[
            "keys",
            "import",
            "--from",
            s(&ks),
            "--out",
            s(&again),
            "--passphrase-file",
            s(&pass),
        ],
        &[],
        &["already an encrypted keystore"],
        &[&seed],
    );
    assert!(!again.exists());
    // A plaintext source readable by others is refused too.
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o640)).unwrap();
    fails(
        &[
            "keys",
            "import",
            "--from",
            s(&plain),
            "--out",
            s(&again),
            "--passphrase-file",
            s(&pass),
        ],
        &[],
        &["chmod 600"],
        &[&seed],
    );
}

#[test]
fn refusals_when_creating() {
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("k.key");
    let gen = |extra: &[&str]| {
        let mut args = vec!["keys", "generate", "--out", s(&ks), "--backend", "keystore"];
        args.extend(extra);
        args.extend(FAST_KDF);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // A passphrase file readable by others.
    let loose = dir.path().join("loose");
    write_mode(&loose, PASS, 0o644);
    let args = gen(&["--passphrase-file", s(&loose)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, &[], &["chmod 600", "passphrase file"], &[]);
    assert!(!ks.exists());

    // Too short for a new keystore (the value is not echoed).
    let short = pass_file(dir.path(), "short", "elevenbytes");
    let args = gen(&["--passphrase-file", s(&short)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, &[], &["at least 12 bytes"], &["elevenbytes"]);
    assert!(!ks.exists());

    // No source and no terminal.
    let args = gen(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, &[], &["not a terminal"], &[]);
    assert!(!ks.exists());

    // KDF parameters out of bounds.
    let pass = pass_file(dir.path(), "pass", PASS);
    let mut args = vec![
        "keys",
        "generate",
        "--out",
        s(&ks),
        "--backend",
        "keystore",
        "--passphrase-file",
        s(&pass),
        "--kdf-memory-kib",
        "1024",
    ];
    fails(&args, &[], &["m_kib", "8192"], &[]);
    args.truncate(8);
    args.extend(["--kdf-iterations", "17"]);
    fails(&args, &[], &["t = 17"], &[]);
    assert!(!ks.exists());

    // Passphrase options on a plaintext key are a mistake, not ignored.
    fails(
        &[
            "keys",
            "generate",
            "--out",
            s(&ks),
            "--passphrase-file",
            s(&pass),
        ],
        &[],
        &["--backend keystore"],
        &[],
    );
    assert!(!ks.exists());
}

#[test]
fn home_keys_show_mixes_backends() {
    // A home whose consensus key is a keystore: `keys show` lists both keys
    // without a passphrase.
    let dir = tempfile::tempdir().unwrap();
    let pass = pass_file(dir.path(), "pass", PASS);
    let home_dir = dir.path().join("home");
    let keys = home_dir.join("keys");
    let plain_identity = keys.join("identity.key");
    ok(
        &[
            "keys",
            "generate",
            "--out",
            s(&plain_identity),
            "--purpose",
            "identity",
        ],
        &[],
        &[],
    );
    let consensus = keys.join("consensus.key");
    let mut args = vec![
        "keys",
        "generate",
        "--out",
        s(&consensus),
        "--backend",
        "keystore",
        "--passphrase-file",
        s(&pass),
    ];
    args.extend(FAST_KDF);
    ok(&args, &[], &[]);
    let out = ok(
        &["--home", s(&home_dir), "keys", "show", "--json"],
        &[],
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["purpose"], "consensus");
    assert_eq!(v[0]["backend"], "keystore");
    assert_eq!(v[1]["purpose"], "identity");
    assert_eq!(v[1]["backend"], "plaintext");
    assert_eq!(v[1]["verified"], true);
}

/// `keys generate --backend pkcs11`: the key is created inside a SoftHSM2
/// token (scripts/softhsm-init.sh, installed by scripts/test.sh); a second key
/// under the same label and a wrong PIN are clear refusals that never show
/// the PIN.
#[test]
fn generate_inside_a_softhsm_token() {
    const PIN: &str = "80417732";
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/softhsm-init.sh");
    let init = Command::new("bash")
        .arg(&script)
        .arg("--dir")
        .arg(dir.path().join("tokens"))
        .args(["--label", "keys-cli", "--pin", PIN])
        .output()
        .expect("run softhsm-init.sh (apt-get install softhsm2)");
    assert!(init.status.success(), "{init:?}");
    let conf = dir.path().join("tokens/softhsm2.conf");
    let env = [("SOFTHSM2_CONF", s(&conf))];
    let pin = pass_file(dir.path(), "pin", PIN);
    let args = [
        "keys",
        "generate",
        "--backend",
        "pkcs11",
        "--module",
        "/usr/lib/softhsm/libsofthsm2.so",
        "--token",
        "keys-cli",
        "--pin-file",
        s(&pin),
    ];
    let out = ok(&args, &env, &[PIN]);
    assert!(out.stdout.contains("never extractable"), "{out:?}");
    assert!(out.stdout.contains("backend = \"pkcs11\""), "{out:?}");
    fails(&args, &env, &["already holds an object labelled"], &[PIN]);
    let bad = pass_file(dir.path(), "bad-pin", "11112222");
    let mut wrong = args;
    wrong[9] = s(&bad);
    fails(&wrong, &env, &["PIN is incorrect"], &[PIN, "11112222"]);
    // --out makes no sense for a key that never leaves the token.
    let mut with_out = args.to_vec();
    with_out.extend(["--out", "x.key"]);
    fails(&with_out, &env, &["drop --out"], &[PIN]);
}
