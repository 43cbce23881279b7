//! The [`Signer`] trait: where consensus key material lives.
//!
//! Signing is **async and fallible** (DESIGN.md, invariant 3) because real backends
//! are: a PKCS#11 token answers over a slow session that can drop, an encrypted
//! keystore may still be locked, a remote signer sits behind a network. The trait is
//! object safe so the node can pick a backend at start-up (`Box<dyn Signer>` or
//! `Arc<dyn Signer>`).
//!
//! A `Signer` signs exactly the bytes it is given. It knows nothing about votes or
//! double signing: the signing guard ([`crate::guard`]) sits in front of every
//! backend, builds the domain-separated bytes itself and decides whether a signature
//! may be produced at all.
//!
//! [`InMemorySigner`] keeps a [`Keypair`] in process memory; it is used by tests,
//! the deterministic simulator and localnet. Its futures are always ready, so the
//! simulator can drive them without an async runtime via [`block_on_ready`].

use crate::keys::{Keypair, PublicKey, Signature};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The future returned by [`Signer::sign`]. Boxed so the trait stays object safe.
pub type SignFuture<'a> = Pin<Box<dyn Future<Output = Result<Signature, SignerError>> + Send + 'a>>;

/// A holder of one ed25519 signing key.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The public half of the key this signer signs with.
    fn public_key(&self) -> PublicKey;

    /// Short backend name for /status and metrics: "memory", "keystore", "pkcs11".
    fn backend(&self) -> &'static str;

    /// Signs exactly `message` (callers already applied domain separation).
    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a>;
}

/// Why a signer could not produce a signature. Messages must never contain key
/// material or PINs: they end up in logs and in `/status`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignerError {
    /// The backend cannot be reached right now (token removed, keystore locked,
    /// remote signer down). Retrying later may succeed.
    #[error("signer unavailable: {0}")]
    Unavailable(String),
    /// The backend was reached but the operation failed.
    #[error("signer failed: {0}")]
    Failed(String),
}

/// A signer backed by a key pair in process memory (the secret is zeroized on drop
/// by [`Keypair`]).
pub struct InMemorySigner {
    keypair: Keypair,
}

impl InMemorySigner {
    pub fn new(keypair: Keypair) -> Self {
        InMemorySigner { keypair }
    }

    /// Deterministic signer from a 32-byte seed (tests, simulator, localnet).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::new(Keypair::from_seed(seed))
    }
}

impl std::fmt::Debug for InMemorySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the public key: the secret must never reach a log line.
        f.debug_struct("InMemorySigner")
            .field("public_key", &self.keypair.public())
            .finish_non_exhaustive()
    }
}

impl Signer for InMemorySigner {
    fn public_key(&self) -> PublicKey {
        self.keypair.public()
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        // Signing in memory cannot fail and never waits, so the future is ready on
        // its first poll (the simulator relies on this, see `block_on_ready`).
        let signature = self.keypair.sign(message);
        Box::pin(std::future::ready(Ok(signature)))
    }
}

/// Shared backends: the node hands one signer to several components.
impl<T: Signer + ?Sized> Signer for Arc<T> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn backend(&self) -> &'static str {
        (**self).backend()
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        (**self).sign(message)
    }
}

/// Backends chosen at run time (`Box<dyn Signer>`).
impl<T: Signer + ?Sized> Signer for Box<T> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn backend(&self) -> &'static str {
        (**self).backend()
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        (**self).sign(message)
    }
}

/// Polls `future` exactly once with a no-op waker and returns its output if it was
/// already complete, `None` otherwise (the future is then dropped).
///
/// The deterministic simulator has no async runtime: it uses this to drive futures
/// that are known to complete immediately, such as [`InMemorySigner::sign`] and the
/// signing guard in front of it. A `None` there means a backend that really waits
/// was plugged into the simulator, which is a configuration error the caller
/// should report rather than spin on.
pub fn block_on_ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_signer_signs_with_its_key() {
        let signer = InMemorySigner::from_seed(&[3u8; 32]);
        let sig = block_on_ready(signer.sign(b"vote")).unwrap().unwrap();
        assert!(signer.public_key().verify(b"vote", &sig).is_ok());
        assert!(signer.public_key().verify(b"other", &sig).is_err());
        assert_eq!(signer.backend(), "memory");
        assert_eq!(signer.public_key(), Keypair::from_seed(&[3u8; 32]).public());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let seed = [9u8; 32];
        let signer = InMemorySigner::from_seed(&seed);
        let shown = format!("{signer:?}");
        assert!(shown.contains("InMemorySigner"));
        assert!(!shown.contains(&hex::encode(seed)));
        // Not even a prefix of it.
        assert!(!shown.contains(&hex::encode(&seed[..4])));
    }

    #[test]
    fn shared_and_boxed_signers_delegate() {
        let inner = InMemorySigner::from_seed(&[5u8; 32]);
        let expected_pk = inner.public_key();
        let expected_sig = block_on_ready(inner.sign(b"m")).unwrap().unwrap();

        let shared: Arc<dyn Signer> = Arc::new(InMemorySigner::from_seed(&[5u8; 32]));
        assert_eq!(shared.public_key(), expected_pk);
        assert_eq!(shared.backend(), "memory");
        assert_eq!(
            block_on_ready(shared.sign(b"m")).unwrap().unwrap(),
            expected_sig
        );

        let boxed: Box<dyn Signer> = Box::new(InMemorySigner::from_seed(&[5u8; 32]));
        assert_eq!(boxed.public_key(), expected_pk);
        assert_eq!(
            block_on_ready(boxed.sign(b"m")).unwrap().unwrap(),
            expected_sig
        );
    }

    #[test]
    fn block_on_ready_returns_ready_output() {
        assert_eq!(block_on_ready(std::future::ready(7)), Some(7));
        assert_eq!(block_on_ready(async { 1 + 1 }), Some(2));
    }

    #[test]
    fn block_on_ready_gives_up_on_pending_futures() {
        assert_eq!(block_on_ready(std::future::pending::<u8>()), None);
        // A future that needs a second poll is not driven further.
        let mut polled = false;
        let needs_two_polls = std::future::poll_fn(move |_cx| {
            if polled {
                Poll::Ready(())
            } else {
                polled = true;
                Poll::Pending
            }
        });
        assert_eq!(block_on_ready(needs_two_polls), None);
    }

    #[test]
    fn signer_errors_display_their_reason() {
        assert_eq!(
            SignerError::Unavailable("token removed".into()).to_string(),
            "signer unavailable: token removed"
        );
        assert_eq!(
            SignerError::Failed("CKR_GENERAL_ERROR".into()).to_string(),
            "signer failed: CKR_GENERAL_ERROR"
        );
    }
}
