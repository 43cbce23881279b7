//! Consensus-key signing through each backend the node supports.
//!
//! * `signer::sign/backend={memory,keystore,softhsm}`: one signature of a
//!   vote-sized message (the signing guard's bytes are ~100 B), through the
//!   `Signer` trait as the guard calls it. Throughput is signatures/s.
//! * After criterion, a latency pass prints p50/p99 per backend
//!   (`signer::latency backend=... p50_us=... p99_us=...`): criterion reports
//!   means and medians, and an HSM's tail is what decides whether a vote is late.
//!
//! Verification (`crypto::verify/single`, `crypto::batch_verify/n=…`) is in
//! the `crypto` bench. The SoftHSM2 backend needs `softhsm2-util` and the
//! module at `/usr/lib/softhsm/libsofthsm2.so` (scripts/test.sh installs
//! them); without them its benchmark is skipped with a note, the others run.

use bitcraps_crypto::keystore::{self, KdfParams, KeystoreSigner};
use bitcraps_crypto::pkcs11::{Pkcs11Config, Pkcs11Signer};
use bitcraps_crypto::signer::{block_on_ready, InMemorySigner, Signer};
use bitcraps_crypto::Keypair;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const MESSAGE: [u8; 100] = [0x42; 100];
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &[u8] = b"1234";
const LATENCY_SAMPLES: usize = 2_000;

fn keystore_signer() -> KeystoreSigner {
    let key = Keypair::from_seed(&[7; 32]);
    let file = keystore::encrypt(&key, "consensus", b"bench passphrase!", KdfParams::MIN)
        .expect("encrypt");
    KeystoreSigner::unlock(&file, b"bench passphrase!").expect("unlock")
}

/// A fresh SoftHSM2 token with one generated key, or why not.
fn softhsm_signer() -> Result<(Pkcs11Signer, tempdir::Dir), String> {
    if !Path::new(MODULE).exists() {
        return Err(format!("{MODULE} missing (apt-get install softhsm2)"));
    }
    let dir = tempdir::Dir::new()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/softhsm-init.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--dir"])
        .arg(dir.path().join("tokens"))
        .args(["--label", "bench", "--pin", "1234"])
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let conf = dir.path().join("tokens/softhsm2.conf");
    // The bench is single-threaded at this point and SoftHSM reads the
    // variable at its first C_Initialize, which comes next.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let config = Pkcs11Config {
        module: PathBuf::from(MODULE),
        token_label: "bench".into(),
        key_label: "bench-key".into(),
    };
    Pkcs11Signer::generate(&config, PIN).map_err(|e| e.to_string())?;
    let signer = Pkcs11Signer::open(&config, zeroize::Zeroizing::new(PIN.to_vec()))
        .map_err(|e| e.to_string())?;
    Ok((signer, dir))
}

fn sign_once(signer: &dyn Signer) {
    let sig = block_on_ready(signer.sign(black_box(&MESSAGE)))
        .expect("these backends answer without an async runtime")
        .expect("sign");
    black_box(sig);
}

/// p50/p99 of single signatures, in µs.
// Timing is the point of a benchmark; the node itself never reads the clock here.
#[allow(clippy::disallowed_methods)]
fn latency(name: &str, signer: &dyn Signer) {
    let mut us: Vec<u64> = (0..LATENCY_SAMPLES)
        .map(|_| {
            let start = std::time::Instant::now();
            sign_once(signer);
            u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
        })
        .collect();
    us.sort_unstable();
    let p = |q: usize| us[(us.len() * q / 100).min(us.len() - 1)];
    println!(
        "signer::latency backend={name} p50_us={} p99_us={} samples={}",
        p(50),
        p(99),
        us.len()
    );
}

fn bench(c: &mut Criterion) {
    let mut backends: Vec<(&str, Arc<dyn Signer>)> = vec![
        (
            "memory",
            Arc::new(InMemorySigner::new(Keypair::from_seed(&[7; 32]))),
        ),
        ("keystore", Arc::new(keystore_signer())),
    ];
    // Kept alive until the end: the token directory.
    let _token = match softhsm_signer() {
        Ok((signer, dir)) => {
            backends.push(("softhsm", Arc::new(signer)));
            Some(dir)
        }
        Err(why) => {
            println!("signer::sign/backend=softhsm skipped: {why}");
            None
        }
    };
    let mut group = c.benchmark_group("signer::sign");
    group.throughput(Throughput::Elements(1));
    for (name, signer) in &backends {
        group.bench_function(format!("backend={name}"), |b| {
            b.iter(|| sign_once(signer.as_ref()))
        });
    }
    group.finish();
    for (name, signer) in &backends {
        latency(name, signer.as_ref());
    }
}

/// A temporary directory removed on drop (no extra dev-dependency for one dir).
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Result<Dir, String> {
            let base =
                std::env::temp_dir().join(format!("bitcraps-signer-bench-{}", std::process::id()));
            std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            Ok(Dir(base))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
