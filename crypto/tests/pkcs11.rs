//! The PKCS#11 signer against a real SoftHSM2 token.
//!
//! Every test makes its own token directory and softhsm2.conf with
//! scripts/softhsm-init.sh and points SOFTHSM2_CONF at it. SoftHSM reads that
//! variable in C_Initialize, and the variable is process-wide, so the tests take
//! one lock for their whole run: each starts with the module finalised (the
//! signer finalises it when its last user goes away) and ends the same way.
//!
//! There is no skipping: without SoftHSM2 the tests fail and say what to install
//! (scripts/test.sh installs it).
// Test helpers outside #[test] functions panic on purpose.
#![allow(clippy::unwrap_used)]

use bitcraps_crypto::domain::{signing_bytes, Namespace};
use bitcraps_crypto::pkcs11::{Pkcs11Config, Pkcs11Error, Pkcs11Signer, HEALTH_PROBE_MESSAGE};
use bitcraps_crypto::secret::SecretBuf;
use bitcraps_crypto::signer::{block_on_ready, Signer, SignerError};
use bitcraps_crypto::{PublicKey, Signature};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "user-pin-4711";
const SO_PIN: &str = "so-pin-0815";
const KEY: &str = "validator-consensus";

/// Serialises the tests: SOFTHSM2_CONF and the module's initialisation are
/// process-wide.
static SOFTHSM: Mutex<()> = Mutex::new(());

/// A fresh SoftHSM2 token directory, SOFTHSM2_CONF pointing at it, and the lock.
/// Declare it first in a test so it is dropped last (after every signer).
struct Hsm {
    conf: PathBuf,
    tokens: PathBuf,
    _dir: tempfile::TempDir,
    _lock: MutexGuard<'static, ()>,
}

impl Hsm {
    /// Initialises one token per label.
    fn new(token_labels: &[&str]) -> Hsm {
        let lock = SOFTHSM.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is not installed ({MODULE} is missing): run \
             `apt-get install softhsm2 opensc` (scripts/test.sh does this)"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/softhsm-init.sh");
        let mut conf = None;
        for label in token_labels {
            let out = Command::new("bash")
                .arg(&script)
                .args(["--dir", dir.path().to_str().unwrap()])
                .args(["--label", label, "--pin", PIN, "--so-pin", SO_PIN])
                .output()
                .expect("run scripts/softhsm-init.sh");
            assert!(
                out.status.success(),
                "softhsm-init.sh failed (is softhsm2 installed? apt-get install softhsm2 opensc): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            let path = stdout
                .trim()
                .strip_prefix("export SOFTHSM2_CONF=")
                .unwrap_or_else(|| panic!("unexpected softhsm-init.sh output: {stdout:?}"));
            conf = Some(PathBuf::from(path));
        }
        let conf = conf.expect("at least one token label");
        // Read by SoftHSM at C_Initialize, which happens at the next open.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        Hsm {
            conf,
            tokens: dir.path().join("tokens"),
            _dir: dir,
            _lock: lock,
        }
    }
}

fn config(token: &str, key: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: PathBuf::from(MODULE),
        token_label: token.to_owned(),
        key_label: key.to_owned(),
    }
}

fn pin(p: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(p.as_bytes().to_vec())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap()
}

/// A second, independent handle on the same module, as another component of the
/// process (or a misbehaving library) would have: used to pull the session out
/// from under the signer.
fn second_handle() -> Pkcs11 {
    let ctx = Pkcs11::new(MODULE).unwrap();
    // Already initialised by the signer: that is the point.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    ctx
}

fn session_on(ctx: &Pkcs11, token: &str) -> Session {
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == token)
        .expect("token slot");
    ctx.open_ro_session(slot).unwrap()
}

fn assert_no_pin(text: &str) {
    for secret in [PIN, SO_PIN, "wrong-pin-31337"] {
        assert!(!text.contains(secret), "a PIN leaked into {text:?}");
    }
}

fn verify(pk: &PublicKey, message: &[u8], sig: &Signature) {
    pk.verify(message, sig)
        .unwrap_or_else(|e| panic!("signature over {} bytes: {e}", message.len()));
    // And with ed25519-dalek directly (strict RFC 8032 verification).
    let vk = ed25519_dalek::VerifyingKey::from_bytes(pk.as_bytes()).unwrap();
    vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig.0))
        .unwrap();
}

#[test]
fn generate_open_sign_and_verify() {
    let _hsm = Hsm::new(&["node-a"]);
    let cfg = config("node-a", KEY);
    let generated = Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap();
    let signer = Pkcs11Signer::open(&cfg, pin(PIN)).unwrap();
    assert_eq!(signer.public_key(), generated);
    assert_eq!(signer.backend(), "pkcs11");

    let vote = signing_bytes("bitcraps-test", Namespace::Notarize, &7u64.to_be_bytes());
    let long = vec![0xA5u8; 4096];
    let messages: [&[u8]; 5] = [b"", b"x", b"a consensus vote", &vote, &long];
    let rt = runtime();
    let mut signatures = Vec::new();
    for m in messages {
        let sig = rt.block_on(signer.sign(m)).unwrap();
        verify(&generated, m, &sig);
        // A signature over one message does not verify for another.
        assert!(generated.verify(b"something else", &sig).is_err());
        // RFC 8032 Ed25519 is deterministic: the same message, the same bytes.
        assert_eq!(rt.block_on(signer.sign(m)).unwrap(), sig);
        signatures.push(sig);
    }
    signatures.sort_by_key(|s| s.0);
    signatures.dedup();
    assert_eq!(signatures.len(), messages.len());

    // Without a tokio runtime the future signs inline and is ready at once.
    let inline = block_on_ready(signer.sign(b"x")).expect("ready").unwrap();
    verify(&generated, b"x", &inline);

    // The Signer trait object the node holds.
    let shared: Arc<dyn Signer> = Arc::new(signer);
    let sig = rt.block_on(shared.sign(b"via dyn")).unwrap();
    verify(&generated, b"via dyn", &sig);

    let shown = format!("{shared:?}");
    assert!(shown.contains("node-a") && shown.contains(KEY) && shown.contains(MODULE));
    assert_no_pin(&shown);
}

#[test]
fn health_check_and_sign_latency() {
    let _hsm = Hsm::new(&["node-b"]);
    let cfg = config("node-b", KEY);
    Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap();
    let signer = Pkcs11Signer::open(&cfg, pin(PIN)).unwrap();
    let mut latencies: Vec<Duration> = (0..300).map(|_| signer.health_check().unwrap()).collect();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!("SoftHSM2 sign+verify latency over 300 probes: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p50 > Duration::ZERO && p50 < Duration::from_millis(100),
        "{p50:?}"
    );
    // The probe message cannot pass for anything the node signs.
    assert!(!HEALTH_PROBE_MESSAGE.starts_with(b"BITCRAPS\x01"));
}

#[test]
fn key_is_generated_sensitive_and_never_extractable() {
    let _hsm = Hsm::new(&["node-c"]);
    let cfg = config("node-c", KEY);
    Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap();
    let signer = Pkcs11Signer::open(&cfg, pin(PIN)).unwrap();
    assert!(signer.key_is_protected().unwrap());
    let protection = signer.key_protection().unwrap();
    assert!(protection.sensitive && protection.always_sensitive);
    assert!(!protection.extractable && protection.never_extractable);
    assert!(
        protection.local,
        "generated inside the token: {protection:?}"
    );

    // A second opinion from OpenSC's pkcs11-tool, reading the same token.
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            MODULE,
            "--token-label",
            "node-c",
            "--login",
            "--pin",
            PIN,
        ])
        .args(["--list-objects", "--type", "privkey"])
        .output()
        .expect("pkcs11-tool not found: apt-get install opensc (scripts/test.sh does this)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pkcs11-tool: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let object = text
        .split("Private Key Object")
        .find(|block| {
            block
                .lines()
                .any(|l| l.trim() == format!("label:      {KEY}"))
        })
        .unwrap_or_else(|| panic!("no private key labelled {KEY} in:\n{text}"));
    assert!(
        object.contains("EC_EDWARDS") || object.contains("EDDSA"),
        "{object}"
    );
    let access = object
        .lines()
        .find_map(|l| l.trim().strip_prefix("Access:"))
        .unwrap_or_else(|| panic!("no Access line in:\n{object}"));
    let flags: Vec<&str> = access.split(',').map(str::trim).collect();
    assert!(flags.contains(&"sensitive"), "{access}");
    assert!(flags.contains(&"never extractable"), "{access}");
    assert!(!flags.contains(&"extractable"), "{access}");
    assert!(object.contains("sign"), "usage: {object}");

    // And the token refuses to hand the key out, in plaintext or wrapped under
    // a key of our choosing. (pkcs11-tool's --read-object cannot test this: it
    // declines to read any private key and exits 0.)
    let other = second_handle();
    let slot = other
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| other.get_token_info(*s).unwrap().label().trim_end() == "node-c")
        .unwrap();
    let session = other.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN.to_owned()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(KEY.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    let value = session
        .get_attributes(key, &[AttributeType::Value])
        .unwrap();
    assert!(
        !value.iter().any(|a| matches!(a, Attribute::Value(_))),
        "CKA_VALUE of the private key was readable"
    );
    let wrapping = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
            ],
        )
        .unwrap();
    let err = session
        .wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key)
        .unwrap_err();
    assert!(
        matches!(err, CkError::Pkcs11(RvError::KeyUnextractable, _)),
        "wrapping the private key: {err:?}"
    );
    // The signer still works while another session of the process is open.
    verify(
        &signer.public_key(),
        b"still here",
        &block_on_ready(signer.sign(b"still here")).unwrap().unwrap(),
    );
}

#[test]
fn wrong_pin_is_refused_without_showing_it() {
    let _hsm = Hsm::new(&["node-d"]);
    let cfg = config("node-d", KEY);
    Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap();
    let err = Pkcs11Signer::open(&cfg, pin("wrong-pin-31337")).unwrap_err();
    assert!(matches!(err, Pkcs11Error::PinIncorrect { .. }), "{err:?}");
    let text = format!("{err} / {err:?}");
    assert!(
        text.contains("PIN is incorrect") && text.contains("node-d"),
        "{text}"
    );
    assert_no_pin(&text);

    let err = Pkcs11Signer::generate(&config("node-d", "other"), b"wrong-pin-31337").unwrap_err();
    assert!(matches!(err, Pkcs11Error::PinIncorrect { .. }), "{err:?}");
    assert_no_pin(&format!("{err} / {err:?}"));

    // An empty PIN never reaches the token.
    let err = Pkcs11Signer::open(&cfg, pin("")).unwrap_err();
    assert!(matches!(err, Pkcs11Error::Pin(_)), "{err:?}");
    assert!(err.to_string().contains("at least one byte"), "{err}");

    // The right PIN still works (one wrong try does not lock SoftHSM).
    assert!(Pkcs11Signer::open(&cfg, pin(PIN)).is_ok());
}

#[test]
fn unknown_token_and_key_labels_are_clear_errors() {
    let _hsm = Hsm::new(&["node-e"]);
    let err = Pkcs11Signer::open(&config("no-such-token", KEY), pin(PIN)).unwrap_err();
    match &err {
        Pkcs11Error::TokenNotFound {
            label, available, ..
        } => {
            assert_eq!(label, "no-such-token");
            assert!(available.iter().any(|t| t == "node-e"), "{available:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("no token labelled \"no-such-token\""),
        "{err}"
    );
    assert!(!err.is_transient());

    let err = Pkcs11Signer::open(&config("node-e", "no-such-key"), pin(PIN)).unwrap_err();
    assert!(matches!(err, Pkcs11Error::KeyNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-key"), "{err}");
    assert_no_pin(&format!("{err:?}"));
}

#[test]
fn duplicate_key_label_is_refused() {
    let _hsm = Hsm::new(&["node-f"]);
    let cfg = config("node-f", KEY);
    let first = Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap();
    let err = Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap_err();
    assert!(matches!(err, Pkcs11Error::KeyExists { .. }), "{err:?}");
    assert!(err.to_string().contains("refusing"), "{err}");
    // The first key is untouched and still the one that opens.
    let signer = Pkcs11Signer::open(&cfg, pin(PIN)).unwrap();
    assert_eq!(signer.public_key(), first);
    // Another label on the same token is a different key.
    let second = Pkcs11Signer::generate(&config("node-f", "second"), PIN.as_bytes()).unwrap();
    assert_ne!(second, first);
}

#[test]
fn missing_or_bogus_module_is_a_clear_error() {
    let _hsm = Hsm::new(&["node-g"]);
    let mut cfg = config("node-g", KEY);
    cfg.module = PathBuf::from("/nonexistent/libpkcs11-vendor.so");
    let err = Pkcs11Signer::open(&cfg, pin(PIN)).unwrap_err();
    assert!(matches!(err, Pkcs11Error::ModuleNotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/libpkcs11-vendor.so") && text.contains("does not exist"),
        "{text}"
    );
    assert!(matches!(
        Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap_err(),
        Pkcs11Error::ModuleNotFound { .. }
    ));
    // A file that is not a shared library at all.
    cfg.module = _hsm.conf.clone();
    let err = Pkcs11Signer::open(&cfg, pin(PIN)).unwrap_err();
    assert!(matches!(err, Pkcs11Error::ModuleLoad { .. }), "{err:?}");
    assert_no_pin(&format!("{err} {err:?}"));
}

#[test]
fn lost_sessions_are_reopened_and_a_missing_token_stops_signing() {
    let hsm = Hsm::new(&["node-h"]);
    let cfg = config("node-h", KEY);
    let pk = Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap();
    let signer = Pkcs11Signer::open(&cfg, pin(PIN)).unwrap();
    let rt = runtime();
    let sign = |m: &'static [u8]| rt.block_on(signer.sign(m));
    verify(&pk, b"before", &sign(b"before").unwrap());
    assert_eq!(signer.session_reopens(), 0);

    let other = second_handle();

    // 1. Someone logs the application out (login state is per process in
    //    PKCS#11): the signer's next request sees CKR_USER_NOT_LOGGED_IN or an
    //    invalid key handle, opens a new session, logs in, and signs.
    let s = session_on(&other, "node-h");
    s.logout().unwrap();
    drop(s);
    verify(&pk, b"after logout", &sign(b"after logout").unwrap());
    assert_eq!(signer.session_reopens(), 1);

    // 2. The module is finalised and initialised again behind our back (what a
    //    restarted HSM client looks like): every session handle is dead.
    other.clone().finalize().unwrap();
    other
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    verify(&pk, b"after reinit", &sign(b"after reinit").unwrap());
    assert_eq!(signer.session_reopens(), 2);

    // 3. Finalised and left so: the signer initialises the module itself.
    other.clone().finalize().unwrap();
    assert!(signer.health_check().is_ok());
    assert_eq!(signer.session_reopens(), 3);

    // 4. The token goes away: signing fails as Unavailable (the node stays up
    //    and stops voting), and works again when the token is back.
    other.clone().finalize().unwrap();
    let hidden = hsm.tokens.with_extension("away");
    std::fs::rename(&hsm.tokens, &hidden).unwrap();
    std::fs::create_dir(&hsm.tokens).unwrap();
    let err = sign(b"while away").unwrap_err();
    match &err {
        SignerError::Unavailable(reason) => {
            assert!(reason.contains("node-h"), "{reason}");
            assert_no_pin(reason);
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(!signer.has_session());
    assert!(matches!(
        signer.health_check(),
        Err(SignerError::Unavailable(_))
    ));
    std::fs::remove_dir(&hsm.tokens).unwrap();
    std::fs::rename(&hidden, &hsm.tokens).unwrap();
    // SoftHSM scans its token directory at C_Initialize: restart it, as a
    // re-plugged device would appear.
    other.clone().finalize().unwrap();
    verify(&pk, b"back again", &sign(b"back again").unwrap());
    assert!(signer.has_session());
    assert_eq!(signer.public_key(), pk);
}

#[test]
fn concurrent_signing_from_many_tasks() {
    let _hsm = Hsm::new(&["node-i"]);
    let cfg = config("node-i", KEY);
    let pk = Pkcs11Signer::generate(&cfg, PIN.as_bytes()).unwrap();
    // The node reads the PIN file straight into secret memory.
    let secret_pin = SecretBuf::from_slice(PIN.as_bytes()).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(Pkcs11Signer::open_with_pin(&cfg, secret_pin).unwrap());
    let rt = runtime();
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    let results = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..TASKS {
            let signer = Arc::clone(&signer);
            set.spawn(async move {
                let mut out = Vec::new();
                for i in 0..PER_TASK {
                    let m = format!("task {t} message {i}").into_bytes();
                    let sig = signer.sign(&m).await.unwrap();
                    out.push((m, sig));
                }
                out
            });
        }
        let mut all = Vec::new();
        while let Some(r) = set.join_next().await {
            all.extend(r.unwrap());
        }
        all
    });
    assert_eq!(results.len(), TASKS * PER_TASK);
    for (m, sig) in &results {
        verify(&pk, m, sig);
    }
    // Each answer belongs to its own request: signing the same messages again,
    // one at a time, gives the same (deterministic) signatures.
    for (m, sig) in results.iter().step_by(7) {
        assert_eq!(&rt.block_on(signer.sign(m)).unwrap(), sig);
    }
}

#[test]
fn key_generated_with_pkcs11_tool_opens() {
    // docs/hsm.md offers OpenSC's pkcs11-tool for tokens where the node does not
    // generate the key itself: such a key must open and sign too.
    let _hsm = Hsm::new(&["node-j"]);
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            MODULE,
            "--token-label",
            "node-j",
            "--login",
            "--pin",
            PIN,
        ])
        .args(["--keypairgen", "--key-type", "EC:edwards25519"])
        .args(["--label", "from-opensc", "--id", "01", "--usage-sign"])
        .output()
        .expect("pkcs11-tool not found: apt-get install opensc (scripts/test.sh does this)");
    assert!(
        out.status.success(),
        "pkcs11-tool --keypairgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signer = Pkcs11Signer::open(&config("node-j", "from-opensc"), pin(PIN)).unwrap();
    assert!(signer.key_is_protected().unwrap());
    let sig = block_on_ready(signer.sign(b"opensc key")).unwrap().unwrap();
    verify(&signer.public_key(), b"opensc key", &sig);
}
