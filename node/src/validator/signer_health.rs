//! Signer health: the validator test-signs with its consensus key backend
//! every `interval_ms`, verifies the signature, and keeps the result for
//! `/status`, `/metrics` and `/readyz`.
//!
//! A remote backend (an HSM behind a PKCS#11 session, a keystore that was
//! wiped) can stop working while the node runs. The node must then stay up
//! and readable, stop voting (the guard's signing requests fail, which the
//! consensus core treats as "no vote"), and say why. The probe makes that
//! visible before a vote is lost, and shows when the backend is back.
//!
//! The probe signs `signing_bytes(chain, SignerProbe, u64be(counter))`: its own
//! signing namespace, so a probe signature can never pass for a vote.

use crate::engine::Clock;
use bitcraps_crypto::domain::{signing_bytes, Namespace};
use bitcraps_crypto::signer::Signer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default time between probes (ms).
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 5_000;
/// A probe slower than this counts as a failure (ms): a signer that slow
/// would miss every view timeout anyway.
pub const PROBE_TIMEOUT_MS: u64 = 2_000;

/// The last probe's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerHealth {
    /// `memory`, `keystore`, `pkcs11`.
    pub backend: &'static str,
    /// The last probe produced a valid signature (true before the first probe:
    /// the backend was opened successfully at start).
    pub healthy: bool,
    /// Why the last probe failed (never key material: `SignerError` promises it).
    pub last_error: Option<String>,
    /// Duration of the last successful probe (µs).
    pub sign_latency_us: Option<u64>,
    pub probes: u64,
    pub failures: u64,
}

/// Runs probes and holds their result.
#[derive(Debug)]
pub struct SignerMonitor {
    signer: Arc<dyn Signer>,
    chain_id: String,
    clock: Arc<dyn Clock>,
    health: Mutex<SignerHealth>,
    timeout_ms: u64,
}

impl SignerMonitor {
    pub fn new(signer: Arc<dyn Signer>, chain_id: &str, clock: Arc<dyn Clock>) -> SignerMonitor {
        let health = SignerHealth {
            backend: signer.backend(),
            healthy: true,
            ..SignerHealth::default()
        };
        SignerMonitor {
            signer,
            chain_id: chain_id.to_owned(),
            clock,
            health: Mutex::new(health),
            timeout_ms: PROBE_TIMEOUT_MS,
        }
    }

    pub fn health(&self) -> SignerHealth {
        crate::engine::lock(&self.health).clone()
    }

    /// One probe: sign, verify, record.
    pub async fn probe(&self) -> SignerHealth {
        let counter = crate::engine::lock(&self.health).probes;
        let message = signing_bytes(
            &self.chain_id,
            Namespace::SignerProbe,
            &counter.to_be_bytes(),
        );
        let started = self.clock.now_us();
        let result = tokio::time::timeout(
            Duration::from_millis(self.timeout_ms),
            self.signer.sign(&message),
        )
        .await;
        let elapsed = self.clock.now_us().saturating_sub(started);
        let outcome = match result {
            Err(_) => Err(format!("no signature within {} ms", self.timeout_ms)),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(sig)) => self
                .signer
                .public_key()
                .verify(&message, &sig)
                .map_err(|_| "the signature does not verify with the consensus key".to_owned()),
        };
        let mut h = crate::engine::lock(&self.health);
        h.probes += 1;
        match outcome {
            Ok(()) => {
                if !h.healthy {
                    tracing::info!(backend = h.backend, "signer is healthy again");
                }
                h.healthy = true;
                h.last_error = None;
                h.sign_latency_us = Some(elapsed);
            }
            Err(reason) => {
                if h.healthy {
                    tracing::warn!(backend = h.backend, %reason, "signer probe failed: not voting until it recovers");
                }
                h.healthy = false;
                h.failures += 1;
                h.last_error = Some(reason);
            }
        }
        h.clone()
    }

    /// Probes every `interval_ms` until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        interval_ms: u64,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {
                    self.probe().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SystemClock;
    use bitcraps_crypto::signer::{InMemorySigner, SignFuture, SignerError};
    use bitcraps_crypto::{Keypair, PublicKey};
    use std::sync::atomic::{AtomicU8, Ordering};

    /// A backend that can be switched between working, failing, lying and hanging.
    #[derive(Debug)]
    struct Flaky {
        inner: InMemorySigner,
        other: InMemorySigner,
        mode: AtomicU8,
    }

    impl Signer for Flaky {
        fn public_key(&self) -> PublicKey {
            self.inner.public_key()
        }
        fn backend(&self) -> &'static str {
            "flaky"
        }
        fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
            match self.mode.load(Ordering::SeqCst) {
                0 => self.inner.sign(message),
                1 => Box::pin(std::future::ready(Err(SignerError::Unavailable(
                    "token removed".into(),
                )))),
                2 => self.other.sign(message),
                _ => Box::pin(std::future::pending()),
            }
        }
    }

    #[tokio::test]
    async fn probes_track_failures_and_recovery() {
        let flaky = Arc::new(Flaky {
            inner: InMemorySigner::new(Keypair::from_seed(&[1; 32])),
            other: InMemorySigner::new(Keypair::from_seed(&[2; 32])),
            mode: AtomicU8::new(0),
        });
        let mut m = SignerMonitor::new(flaky.clone(), "c", Arc::new(SystemClock::new()));
        m.timeout_ms = 50;
        assert!(m.probe().await.healthy);
        flaky.mode.store(1, Ordering::SeqCst);
        let h = m.probe().await;
        assert!(!h.healthy);
        assert!(h.last_error.as_deref().unwrap().contains("token removed"));
        // A backend that signs with the wrong key is not healthy either.
        flaky.mode.store(2, Ordering::SeqCst);
        let h = m.probe().await;
        assert!(h.last_error.unwrap().contains("does not verify"));
        // A hung backend times out.
        flaky.mode.store(3, Ordering::SeqCst);
        let h = m.probe().await;
        assert!(h.last_error.unwrap().contains("within"));
        flaky.mode.store(0, Ordering::SeqCst);
        let h = m.probe().await;
        assert!(h.healthy && h.last_error.is_none());
        assert_eq!((h.probes, h.failures), (5, 3));
    }
}
