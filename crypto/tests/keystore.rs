//! The encrypted keystore: round trip, refusal of wrong passphrases and of
//! every edited field, bounds checked before the KDF runs, a stable JSON shape,
//! and the keystore signer.
//!
//! Tests use `KdfParams::MIN` (8 MiB, 1 pass) so each derivation takes
//! milliseconds; the ignored `measure_default_kdf_and_signing` reports the cost
//! of the defaults on this machine.
// Test helpers unwrap freely. The timings read the wall clock: they measure
// this test process, not node logic, so the Clock-trait rule does not apply.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use bitcraps_crypto::keystore::{
    self, decrypt, encrypt, KdfParams, KeystoreError, KeystoreFile, KeystoreSigner,
    MAX_PASSPHRASE_BYTES, MIN_PASSPHRASE_BYTES,
};
use bitcraps_crypto::signer::{block_on_ready, Signer};
use bitcraps_crypto::Keypair;
use std::time::{Duration, Instant};

const PASS: &[u8] = b"correct horse battery staple";

fn sealed(seed: u8) -> (Keypair, KeystoreFile) {
    let kp = Keypair::from_seed(&[seed; 32]);
    let file = encrypt(&kp, "consensus", PASS, KdfParams::MIN).unwrap();
    (kp, file)
}

/// Flips one bit of a hex string at byte `index`.
fn flip_hex(hex_str: &str, index: usize) -> String {
    let mut bytes = hex::decode(hex_str).unwrap();
    bytes[index] ^= 0x01;
    hex::encode(bytes)
}

#[test]
fn round_trip_restores_the_same_key() {
    let (kp, file) = sealed(7);
    let opened = decrypt(&file, PASS).unwrap();
    assert_eq!(opened.public(), kp.public());
    assert_eq!(*opened.seed(), *kp.seed());
    assert_eq!(file.public_key().unwrap(), kp.public());
    // Through JSON too: what is written is what is read.
    let json = serde_json::to_string_pretty(&file).unwrap();
    let back: KeystoreFile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, file);
    assert_eq!(decrypt(&back, PASS).unwrap().public(), kp.public());
}

#[test]
fn fresh_salt_and_nonce_every_time() {
    let kp = Keypair::from_seed(&[1; 32]);
    let a = encrypt(&kp, "consensus", PASS, KdfParams::MIN).unwrap();
    let b = encrypt(&kp, "consensus", PASS, KdfParams::MIN).unwrap();
    assert_ne!(a.kdf.salt, b.kdf.salt);
    assert_ne!(a.cipher.nonce, b.cipher.nonce);
    assert_ne!(a.cipher.ciphertext, b.cipher.ciphertext);
}

#[test]
fn the_seed_is_not_in_the_file() {
    let (kp, file) = sealed(0x42);
    let json = serde_json::to_string(&file).unwrap();
    assert!(!json.contains(&hex::encode(kp.seed().as_slice())));
    assert!(!json.contains(&hex::encode(&kp.seed()[..8])));
    assert!(!json.contains(std::str::from_utf8(PASS).unwrap()));
}

#[test]
fn wrong_passphrase_is_refused_without_detail() {
    let (_, file) = sealed(2);
    for wrong in [
        &b"correct horse battery stapl"[..],
        b"correct horse battery staple ",
        b"",
        b"x",
    ] {
        let err = decrypt(&file, wrong).unwrap_err();
        assert_eq!(err, KeystoreError::Decrypt);
        assert_eq!(err.to_string(), "wrong passphrase or damaged file");
    }
}

#[test]
fn every_tampered_field_fails_to_decrypt() {
    let (_, file) = sealed(3);
    let other = Keypair::from_seed(&[4; 32]);
    type Edit = fn(&mut KeystoreFile, &Keypair);
    let edits: Vec<(&str, Edit)> = vec![
        ("public_key", |f, o| f.public_key = o.public().to_hex()),
        ("purpose", |f, _| f.purpose = "identity".into()),
        ("kdf.m_kib", |f, _| f.kdf.m_kib += 1024),
        ("kdf.t", |f, _| f.kdf.t += 1),
        ("kdf.p", |f, _| f.kdf.p += 1),
        ("kdf.salt", |f, _| f.kdf.salt = flip_hex(&f.kdf.salt, 0)),
        ("kdf.salt (last byte)", |f, _| {
            f.kdf.salt = flip_hex(&f.kdf.salt, 15)
        }),
        ("cipher.nonce", |f, _| {
            f.cipher.nonce = flip_hex(&f.cipher.nonce, 23)
        }),
        ("cipher.ciphertext (seed)", |f, _| {
            f.cipher.ciphertext = flip_hex(&f.cipher.ciphertext, 0)
        }),
        ("cipher.ciphertext (tag)", |f, _| {
            f.cipher.ciphertext = flip_hex(&f.cipher.ciphertext, 47)
        }),
    ];
    for (name, edit) in edits {
        let mut tampered = file.clone();
        edit(&mut tampered, &other);
        assert_ne!(tampered, file, "{name}: edit did nothing");
        assert_eq!(
            decrypt(&tampered, PASS).unwrap_err(),
            KeystoreError::Decrypt,
            "{name}"
        );
    }
    // The untouched file still opens (the edits above were on copies).
    assert!(decrypt(&file, PASS).is_ok());
}

#[test]
fn malformed_fields_are_named_not_echoed() {
    let (_, file) = sealed(5);
    type Edit = fn(&mut KeystoreFile);
    let cases: Vec<(Edit, &str)> = vec![
        (|f| f.version = 2, "version 2"),
        (|f| f.kind = "secp256k1".into(), "type"),
        (|f| f.backend = "plaintext".into(), "backend"),
        (|f| f.purpose = String::new(), "purpose"),
        (|f| f.purpose = "x".repeat(65), "purpose"),
        (|f| f.public_key = "zz".into(), "public_key"),
        (|f| f.kdf.alg = "scrypt".into(), "kdf.alg"),
        (|f| f.kdf.salt = "00".repeat(15), "kdf.salt"),
        (|f| f.kdf.salt = "00".repeat(65), "kdf.salt"),
        (|f| f.kdf.salt = "not hex".into(), "kdf.salt"),
        (|f| f.cipher.alg = "aes-256-gcm".into(), "cipher.alg"),
        (|f| f.cipher.nonce = "00".repeat(12), "cipher.nonce"),
        (|f| f.cipher.ciphertext.push_str("00"), "cipher.ciphertext"),
        (|f| f.cipher.ciphertext.truncate(94), "cipher.ciphertext"),
    ];
    for (edit, needle) in cases {
        let mut bad = file.clone();
        edit(&mut bad);
        let err = decrypt(&bad, PASS).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(needle), "{shown:?} should name {needle}");
        assert_ne!(err, KeystoreError::Decrypt, "{needle}");
        assert!(!shown.contains(&file.cipher.ciphertext[..16]), "{shown}");
    }
}

#[test]
fn out_of_bounds_params_are_refused_before_the_kdf() {
    let (_, file) = sealed(6);
    let hostile = [
        // 4 TiB of memory would take the machine down if the KDF ran.
        (u32::MAX, 1, 1),
        (KdfParams::MAX_M_KIB + 1, 1, 1),
        (KdfParams::MIN_M_KIB - 1, 1, 1),
        (0, 1, 1),
        // Hours of passes.
        (KdfParams::MIN_M_KIB, u32::MAX, 1),
        (KdfParams::MIN_M_KIB, KdfParams::MAX_T + 1, 1),
        (KdfParams::MIN_M_KIB, 0, 1),
        (KdfParams::MIN_M_KIB, 1, 0),
        (KdfParams::MIN_M_KIB, 1, KdfParams::MAX_P + 1),
        (KdfParams::MIN_M_KIB, 1, u32::MAX),
    ];
    let started = Instant::now();
    for (m_kib, t, p) in hostile {
        let mut bad = file.clone();
        bad.kdf.m_kib = m_kib;
        bad.kdf.t = t;
        bad.kdf.p = p;
        let err = decrypt(&bad, PASS).unwrap_err();
        assert!(
            matches!(err, KeystoreError::Params(_)),
            "({m_kib}, {t}, {p}): {err}"
        );
    }
    // Ten refusals with no derivation at all: far below one 8 MiB Argon2 run
    // each, even in a slow debug build on a loaded machine.
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "took {:?}: was the KDF run?",
        started.elapsed()
    );
    // Creating with out-of-bounds params is refused the same way.
    let kp = Keypair::from_seed(&[6; 32]);
    let err = encrypt(
        &kp,
        "consensus",
        PASS,
        KdfParams {
            m_kib: KdfParams::MAX_M_KIB + 1,
            t: 1,
            p: 1,
        },
    )
    .unwrap_err();
    assert!(matches!(err, KeystoreError::Params(_)), "{err}");
}

#[test]
fn passphrase_length_limits() {
    let kp = Keypair::from_seed(&[8; 32]);
    let short = vec![b'a'; MIN_PASSPHRASE_BYTES - 1];
    let err = encrypt(&kp, "consensus", &short, KdfParams::MIN).unwrap_err();
    assert!(matches!(err, KeystoreError::Passphrase(_)), "{err}");
    assert!(err.to_string().contains("at least 12 bytes"), "{err}");
    assert!(!err.to_string().contains("aaaaaaaaaaa"), "{err}");

    let exact_min = vec![b'a'; MIN_PASSPHRASE_BYTES];
    let file = encrypt(&kp, "consensus", &exact_min, KdfParams::MIN).unwrap();
    assert!(decrypt(&file, &exact_min).is_ok());

    let longest = vec![b'b'; MAX_PASSPHRASE_BYTES];
    let file = encrypt(&kp, "consensus", &longest, KdfParams::MIN).unwrap();
    assert!(decrypt(&file, &longest).is_ok());

    let too_long = vec![b'b'; MAX_PASSPHRASE_BYTES + 1];
    let err = encrypt(&kp, "consensus", &too_long, KdfParams::MIN).unwrap_err();
    assert!(matches!(err, KeystoreError::Passphrase(_)), "{err}");
    // Reading: too long is refused before the KDF, not reported as a wrong one.
    let err = decrypt(&file, &too_long).unwrap_err();
    assert!(matches!(err, KeystoreError::Passphrase(_)), "{err}");

    // Bad purposes are refused on creation.
    for purpose in ["", &"p".repeat(65)] {
        let err = encrypt(&kp, purpose, PASS, KdfParams::MIN).unwrap_err();
        assert_eq!(err, KeystoreError::Purpose);
    }
}

#[test]
fn json_shape_is_stable() {
    let (kp, file) = sealed(9);
    let v: serde_json::Value = serde_json::to_value(&file).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut top_sorted = top.clone();
    top_sorted.sort();
    assert_eq!(
        top_sorted,
        [
            "backend",
            "cipher",
            "kdf",
            "public_key",
            "purpose",
            "type",
            "version"
        ]
    );
    assert_eq!(v["version"], 1);
    assert_eq!(v["type"], "ed25519");
    assert_eq!(v["backend"], "keystore");
    assert_eq!(v["purpose"], "consensus");
    assert_eq!(v["public_key"], kp.public().to_hex());
    assert_eq!(
        v["kdf"],
        serde_json::json!({
            "alg": "argon2id",
            "m_kib": KdfParams::MIN_M_KIB,
            "t": 1,
            "p": 1,
            "salt": file.kdf.salt,
        })
    );
    assert_eq!(file.kdf.salt.len(), 2 * keystore::SALT_BYTES);
    assert_eq!(v["cipher"]["alg"], "xchacha20poly1305");
    assert_eq!(file.cipher.nonce.len(), 2 * keystore::NONCE_BYTES);
    assert_eq!(file.cipher.ciphertext.len(), 2 * keystore::CIPHERTEXT_BYTES);
    assert_eq!(v["cipher"].as_object().unwrap().len(), 3);

    // A fixed file from this version still opens: the format is a promise.
    let fixed = r#"{
        "version": 1,
        "type": "ed25519",
        "backend": "keystore",
        "purpose": "consensus",
        "public_key": "PK",
        "kdf": {"alg": "argon2id", "m_kib": 8192, "t": 1, "p": 1, "salt": "SALT"},
        "cipher": {"alg": "xchacha20poly1305", "nonce": "NONCE", "ciphertext": "CT"}
    }"#
    .replace("PK", &file.public_key)
    .replace("SALT", &file.kdf.salt)
    .replace("NONCE", &file.cipher.nonce)
    .replace("CT", &file.cipher.ciphertext);
    let parsed: KeystoreFile = serde_json::from_str(&fixed).unwrap();
    assert_eq!(parsed, file);

    // Unknown fields are refused rather than silently ignored.
    let extra = fixed.replacen(
        "\"version\": 1,",
        "\"version\": 1, \"secret_seed\": \"00\",",
        1,
    );
    assert!(serde_json::from_str::<KeystoreFile>(&extra).is_err());
}

#[test]
fn default_params_are_within_bounds_and_recorded() {
    let p = KdfParams::default();
    assert_eq!((p.m_kib, p.t, p.p), (65_536, 3, 1));
    assert!(p.check().is_ok());
}

#[test]
fn keystore_signer_signs_with_the_unlocked_key() {
    let (kp, file) = sealed(10);
    let signer = KeystoreSigner::unlock(&file, PASS).unwrap();
    assert_eq!(signer.backend(), "keystore");
    assert_eq!(signer.public_key(), kp.public());
    let sig = block_on_ready(signer.sign(b"vote")).unwrap().unwrap();
    assert!(kp.public().verify(b"vote", &sig).is_ok());
    assert!(kp.public().verify(b"other", &sig).is_err());
    // Deterministic ed25519: the same signature as the key itself.
    assert_eq!(sig, kp.sign(b"vote"));

    let shown = format!("{signer:?}");
    assert!(shown.contains("KeystoreSigner"), "{shown}");
    assert!(!shown.contains(&hex::encode(&kp.seed()[..4])), "{shown}");

    // Behind Arc<dyn Signer>, as the engine holds it.
    let shared: std::sync::Arc<dyn Signer> = std::sync::Arc::new(signer);
    assert_eq!(shared.backend(), "keystore");
    assert!(kp
        .public()
        .verify(b"m", &block_on_ready(shared.sign(b"m")).unwrap().unwrap())
        .is_ok());
    assert_eq!(
        KeystoreSigner::unlock(&file, b"not the passphrase").unwrap_err(),
        KeystoreError::Decrypt
    );
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Not run by default: prints the cost of the default KDF and the keystore
/// signer's throughput and latency.
/// `cargo test --release -p bitcraps-crypto --test keystore -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_default_kdf_and_signing() {
    let kp = Keypair::from_seed(&[11; 32]);
    let mut kdf = Vec::new();
    let mut file = None;
    for _ in 0..5 {
        let started = Instant::now();
        file = Some(encrypt(&kp, "consensus", PASS, KdfParams::default()).unwrap());
        kdf.push(started.elapsed());
    }
    kdf.sort();
    let file = file.unwrap();
    let started = Instant::now();
    let signer = KeystoreSigner::unlock(&file, PASS).unwrap();
    let unlock = started.elapsed();
    println!(
        "argon2id m_kib=65536 t=3 p=1: encrypt median {:?} (min {:?}, max {:?}); unlock {:?}",
        kdf[kdf.len() / 2],
        kdf[0],
        kdf[kdf.len() - 1],
        unlock
    );

    let n = 20_000;
    let mut lat = Vec::with_capacity(n);
    let msg = [7u8; 128];
    let all = Instant::now();
    for _ in 0..n {
        let started = Instant::now();
        let sig = block_on_ready(signer.sign(&msg)).unwrap().unwrap();
        lat.push(started.elapsed());
        std::hint::black_box(sig);
    }
    let total = all.elapsed();
    lat.sort();
    println!(
        "keystore signer: {:.0} signs/s, p50 {:?}, p99 {:?} (128-byte messages, one thread)",
        n as f64 / total.as_secs_f64(),
        percentile(&lat, 50),
        percentile(&lat, 99)
    );
}
