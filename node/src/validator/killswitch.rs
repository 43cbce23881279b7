//! The emergency wipe of the consensus key.
//!
//! [`Killswitch`] is the only owner of the signer backend. Everything else
//! (the signing guard, the health monitor) holds the killswitch. [`wipe`]
//! drops the backend. Dropping an in-memory or keystore signer zeroizes its
//! key. Dropping a PKCS#11 signer closes its session and zeroizes the PIN.
//! From then on every signature request fails, so the node stops voting. It
//! keeps serving reads and reports the wipe in `/status` and `/readyz`.
//! Only a restart with the key material brings signing back.
//!
//! [`wipe`]: Killswitch::wipe

use crate::api::{RotateIdentityView, WipeView};
use crate::engine::EngineClient;
use crate::http::ApiError;
use bitcraps_crypto::secret::SecretBuf;
use bitcraps_crypto::signer::{SignFuture, Signer, SignerError};
use bitcraps_crypto::PublicKey;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// What a signature request gets after the wipe.
pub const WIPED: &str =
    "the consensus key was wiped by an operator; restart with the key to sign again";

/// A signer that can be emptied at run time.
#[derive(Debug)]
pub struct Killswitch {
    inner: RwLock<Option<Arc<dyn Signer>>>,
    public: PublicKey,
    backend: &'static str,
    wiped: AtomicBool,
}

impl Killswitch {
    /// Takes ownership of `signer`. It must be the only reference: nothing
    /// else may keep a clone, or the wipe could not drop it.
    pub fn new(signer: Box<dyn Signer>) -> Killswitch {
        Self::from_arc(Arc::from(signer))
    }

    /// Like [`Killswitch::new`] for a signer already in an `Arc`, which must
    /// hold the only strong reference (checked in debug builds).
    pub fn from_arc(signer: Arc<dyn Signer>) -> Killswitch {
        debug_assert_eq!(
            Arc::strong_count(&signer),
            1,
            "the killswitch must own the signer"
        );
        let public = signer.public_key();
        let backend = signer.backend();
        Killswitch {
            inner: RwLock::new(Some(signer)),
            public,
            backend,
            wiped: AtomicBool::new(false),
        }
    }

    /// Drops the backend (zeroizing what it held). Returns false if it was
    /// already wiped. Signatures in flight finish with the backend they
    /// started with; the backend's memory is released once they are done.
    pub fn wipe(&self) -> bool {
        let taken = match self.inner.write() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        self.wiped.store(true, Ordering::SeqCst);
        taken.is_some()
    }

    /// The consensus public key (readable after the wipe too).
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The backend's name (`memory`, `keystore`, `pkcs11`).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn is_wiped(&self) -> bool {
        self.wiped.load(Ordering::SeqCst)
    }

    fn current(&self) -> Option<Arc<dyn Signer>> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Signer for Killswitch {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn backend(&self) -> &'static str {
        self.backend
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        match self.current() {
            // The clone keeps the backend alive only for this signature.
            Some(signer) => Box::pin(async move { signer.sign(message).await }),
            None => Box::pin(std::future::ready(Err(SignerError::Unavailable(
                WIPED.to_owned(),
            )))),
        }
    }
}

/// Shortest admin token accepted (bytes): a guessable token would make the
/// wipe a denial-of-service lever.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// The admin API's authority: the token (held in secret memory) and what the
/// wipe reaches.
#[derive(Debug)]
pub struct AdminAccess {
    pub killswitch: Arc<Killswitch>,
    /// `None`: the admin API is disabled.
    pub token: Option<SecretBuf>,
    /// The QUIC identity key file in use (a rotation writes the new key next
    /// to it).
    pub identity_key_path: std::path::PathBuf,
}

impl AdminAccess {
    /// Checks `bearer` against the token in constant time (the length check
    /// inside `ct_eq` may end early, which reveals only the length class).
    pub fn authorize(&self, bearer: Option<&[u8]>, what: &str) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Err(ApiError::Forbidden(
                "the admin API is disabled on this node (set admin.token_file)".into(),
            ));
        };
        if bearer.is_some_and(|b| token.ct_eq(b)) {
            return Ok(());
        }
        tracing::warn!(
            call = what,
            "admin call refused: missing or wrong bearer token"
        );
        Err(ApiError::Unauthorized(
            "missing or wrong bearer token".into(),
        ))
    }

    /// Rotates the QUIC identity key: a new key file next to the current one
    /// (0600), a rotation signed by the consensus key and sent to every peer
    /// (`engine::rotation`). Peers accept both keys until the node reconnects
    /// with the new one; restarting with `keys.identity` pointing at the new
    /// file completes it. Consensus is untouched: votes are signed by the
    /// consensus key, which does not change.
    pub async fn rotate_identity(
        &self,
        bearer: Option<&[u8]>,
        engine: &EngineClient,
    ) -> Result<RotateIdentityView, ApiError> {
        self.authorize(bearer, "rotate-identity")?;
        let key = crate::home::generate_key().map_err(|e| ApiError::Internal(e.to_string()))?;
        let public = key.public();
        let dir = self
            .identity_key_path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let path = dir.join(format!("identity-{}.key", &public.to_hex()[..16]));
        crate::home::write_key_file(&path, &key, "identity")
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        drop(key);
        let signed = match engine.rotate_identity(public).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing was announced: do not leave an unusable key around.
                let _ = std::fs::remove_file(&path);
                return Err(ApiError::Rejected {
                    code: "rotation_refused".into(),
                    message: e.to_string(),
                });
            }
        };
        tracing::warn!(
            new_identity_key = %public,
            sequence = signed.rotation.sequence,
            "identity key rotation announced; restart with keys.identity = {} to complete it",
            path.display()
        );
        Ok(RotateIdentityView {
            new_identity_key: public.to_hex(),
            sequence: signed.rotation.sequence,
            key_file: path.display().to_string(),
            message: "peers accept the new key now; restart with keys.identity set to key_file to complete the rotation".into(),
        })
    }

    /// Checks `bearer`, then wipes the consensus key (here) and the beacon
    /// share (the engine, within one beacon tick).
    pub fn wipe(&self, bearer: Option<&[u8]>, engine: &EngineClient) -> Result<WipeView, ApiError> {
        self.authorize(bearer, "wipe")?;
        let wiped_now = self.killswitch.wipe();
        engine.wipe_keys();
        tracing::warn!(
            backend = self.killswitch.backend(),
            wiped_now,
            "EMERGENCY WIPE: consensus key and beacon share zeroized; this node no longer signs"
        );
        Ok(WipeView {
            wiped_now,
            signer_backend: self.killswitch.backend().to_owned(),
            message: "keys zeroized: the node keeps serving reads but signs nothing until restarted with its keys".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_crypto::signer::InMemorySigner;
    use bitcraps_crypto::Keypair;

    /// Records its own drop, so the test can see the key is really released.
    #[derive(Debug)]
    struct Tracked {
        inner: InMemorySigner,
        dropped: Arc<AtomicBool>,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    impl Signer for Tracked {
        fn public_key(&self) -> PublicKey {
            self.inner.public_key()
        }
        fn backend(&self) -> &'static str {
            "memory"
        }
        fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
            self.inner.sign(message)
        }
    }

    #[tokio::test]
    async fn wipe_drops_the_backend_and_refuses_to_sign() {
        let dropped = Arc::new(AtomicBool::new(false));
        let key = Keypair::from_seed(&[5; 32]);
        let public = key.public();
        let k = Arc::new(Killswitch::new(Box::new(Tracked {
            inner: InMemorySigner::new(key),
            dropped: Arc::clone(&dropped),
        })));
        let sig = k.sign(b"m").await.unwrap();
        assert!(public.verify(b"m", &sig).is_ok());
        assert!(!k.is_wiped());
        assert!(k.wipe());
        assert!(dropped.load(Ordering::SeqCst), "the backend was dropped");
        assert!(k.is_wiped());
        assert_eq!(
            k.sign(b"m").await,
            Err(SignerError::Unavailable(WIPED.to_owned()))
        );
        // Public facts stay readable; a second wipe is a no-op.
        assert_eq!(k.public_key(), public);
        assert!(!k.wipe());
    }
}
