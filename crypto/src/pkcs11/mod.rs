//! A [`Signer`] whose Ed25519 key lives in a PKCS#11 token (an HSM, a YubiKey, a
//! YubiHSM 2, or SoftHSM2 in tests), through the `cryptoki` crate.
//!
//! * **Key generation in the token.** [`Pkcs11Signer::generate`] asks the token for
//!   a key pair (`CKM_EC_EDWARDS_KEY_PAIR_GEN`, curve Ed25519 in `CKA_EC_PARAMS`)
//!   whose private half is `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` and not
//!   `CKA_EXTRACTABLE`: it never leaves the token. The result is checked (the
//!   token must report the key sensitive and never extractable, and it must sign
//!   a probe that ed25519-dalek verifies); a pair failing the check is destroyed.
//! * **Every signature made in the token** with `CKM_EDDSA` in pure mode (RFC 8032
//!   Ed25519, deterministic), and verified against the public key before it is
//!   returned: a faulty token (a glitched deterministic signature can leak the
//!   key) never gets a bad signature onto the network. Verification costs ~40 µs
//!   against ~500 µs for the token's signature.
//! * **The PIN** is held in secret memory ([`SecretBuf`]: locked, guard-paged,
//!   zeroized on drop), handed only to `C_Login`, and appears in no error,
//!   `Debug` output or log line.
//! * **Sessions come back.** A lost session (`CKR_SESSION_HANDLE_INVALID`,
//!   `CKR_SESSION_CLOSED`, `CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`,
//!   `CKR_USER_NOT_LOGGED_IN`, `CKR_CRYPTOKI_NOT_INITIALIZED`, ...) makes the
//!   signer open a new session and log in again, once per request; the key is
//!   found again by label and must still be the same key. If that fails the
//!   request fails with [`SignerError::Unavailable`] and the next request tries
//!   again, so the node keeps running, stops voting while the token is away and
//!   resumes when it is back.
//!
//! # Threads and blocking
//!
//! PKCS#11 calls block (a network HSM answers in milliseconds, a USB token in
//! tens). [`Signer::sign`] therefore runs them on tokio's blocking pool
//! (`spawn_blocking`), or inline when no tokio runtime is running (the future is
//! then ready on first poll). At most [`MAX_PENDING_SIGNS`] requests wait for
//! the token at once; beyond that `sign` fails fast with `Unavailable` instead of
//! piling up threads behind a hung device.
//!
//! cryptoki's `Session` is `Send` but not `Sync`, and PKCS#11 forbids concurrent
//! use of one session. The signer keeps its one session in a `Mutex`: requests
//! from many tasks are serialised on it (a token signs one message at a time per
//! session anyway). Module initialisation is shared process-wide (see `module`).

mod der;
mod error;
mod module;
mod session;

pub use der::{decode_ec_point, ED25519_PARAMS_NAME, ED25519_PARAMS_OID};
pub use error::Pkcs11Error;

use crate::keys::{PublicKey, Signature, SIGNATURE_LEN};
use crate::secret::SecretBuf;
use crate::signer::{SignFuture, Signer, SignerError};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use module::ModuleHandle;
use session::Live;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use zeroize::Zeroizing;

/// Where the key lives: which module to load, which token, which key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (shared library), e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`. Loading it runs its code in the node's
    /// process: it must come from a trusted place.
    pub module: PathBuf,
    /// `CKA_LABEL` of the token (as set by `softhsm2-util --init-token --label`).
    pub token_label: String,
    /// `CKA_LABEL` of the key pair in the token.
    pub key_label: String,
}

/// At most this many sign requests wait for the token at once.
pub const MAX_PENDING_SIGNS: usize = 32;

/// What [`Pkcs11Signer::health_check`] signs. It does not start with
/// `"BITCRAPS\x01"` (the prefix of every byte string the node signs, see
/// [`crate::domain`]), so a probe signature can never be mistaken for a vote.
pub const HEALTH_PROBE_MESSAGE: &[u8] = b"bitcraps pkcs11 health probe v1";

/// The storage attributes of the private key, as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyProtection {
    /// `CKA_SENSITIVE`: the token never reveals the key in plaintext.
    pub sensitive: bool,
    /// `CKA_ALWAYS_SENSITIVE`: it has been sensitive since it was created.
    pub always_sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key could be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_NEVER_EXTRACTABLE`: it never was extractable.
    pub never_extractable: bool,
    /// `CKA_LOCAL`: generated inside the token (not imported).
    pub local: bool,
}

impl KeyProtection {
    /// Sensitive, not extractable, and never was extractable.
    pub fn is_protected(&self) -> bool {
        self.sensitive && !self.extractable && self.never_extractable
    }
}

/// The PIN as held between logins: locked, guard-paged, zeroized on drop.
type Pin = SecretBuf;

/// A [`Signer`] backed by an Ed25519 key in a PKCS#11 token. See the module docs.
pub struct Pkcs11Signer {
    inner: Arc<Inner>,
}

struct Inner {
    /// The session, `None` after a loss that could not be repaired yet. Declared
    /// before `module`: fields drop in order, and the session must be closed
    /// before the module may be finalised.
    state: Mutex<Option<Live>>,
    module: ModuleHandle,
    config: Pkcs11Config,
    pin: Pin,
    public_key: PublicKey,
    pending: AtomicUsize,
    reopens: AtomicU64,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the PIN.
        f.debug_struct("Pkcs11Signer")
            .field("module", &self.inner.config.module)
            .field("token_label", &self.inner.config.token_label)
            .field("key_label", &self.inner.config.key_label)
            .field("public_key", &self.inner.public_key)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Generates an Ed25519 key pair inside the token and returns its public key.
    ///
    /// The private key is `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not
    /// `CKA_EXTRACTABLE`, `CKA_SIGN`, labelled `config.key_label`, with a random
    /// 16-byte `CKA_ID` shared with its public key. Refuses if any object with
    /// that label exists on the token. The new pair must report itself protected
    /// and sign a probe that verifies; otherwise it is destroyed and an error
    /// returned.
    pub fn generate(config: &Pkcs11Config, pin: &[u8]) -> Result<PublicKey, Pkcs11Error> {
        // Declared before the session so it is dropped after it.
        let module = ModuleHandle::acquire(&config.module)?;
        let (session, slot) = session::open_session(&module, config, pin, true)?;
        let token = || config.token_label.clone();
        let mechanisms = module
            .ctx()
            .get_mechanism_list(slot)
            .map_err(|e| token_err("C_GetMechanismList", &e))?;
        for (mechanism, name) in [
            (
                MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
                "CKM_EC_EDWARDS_KEY_PAIR_GEN (Ed25519 key generation)",
            ),
            (MechanismType::EDDSA, "CKM_EDDSA (Ed25519 signatures)"),
        ] {
            if !mechanisms.contains(&mechanism) {
                return Err(Pkcs11Error::MechanismUnsupported {
                    token: token(),
                    mechanism: name,
                });
            }
        }
        if !session::find_by_label(&session, None, &config.key_label, None)?.is_empty() {
            return Err(Pkcs11Error::KeyExists {
                token: token(),
                label: config.key_label.clone(),
            });
        }

        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| Pkcs11Error::Token {
            operation: "CKA_ID generation",
            reason: e.to_string(),
        })?;
        let (public, private) = generate_pair(&session, config, &id)?;

        // Check what the token made before anyone relies on it.
        let checked = check_new_pair(&session, public, private, config);
        if checked.is_err() {
            // Never used, never published: remove it so the label is free again.
            let _ = session.destroy_object(private);
            let _ = session.destroy_object(public);
        }
        checked
    }

    /// Loads the module, finds the token by label, logs in with the user PIN,
    /// finds the key pair by label, and checks with one probe signature that the
    /// private key signs for the public key. The PIN moves into secret memory
    /// (the vector is wiped).
    pub fn open(
        config: &Pkcs11Config,
        mut pin: Zeroizing<Vec<u8>>,
    ) -> Result<Pkcs11Signer, Pkcs11Error> {
        let pin = SecretBuf::from_vec(std::mem::take(&mut *pin)).map_err(Pkcs11Error::Pin)?;
        Self::open_with_pin(config, pin)
    }

    /// [`open`](Self::open) with the PIN already in secret memory.
    pub fn open_with_pin(
        config: &Pkcs11Config,
        pin: SecretBuf,
    ) -> Result<Pkcs11Signer, Pkcs11Error> {
        let module = ModuleHandle::acquire(&config.module)?;
        let (session, _) = session::open_session(&module, config, pin.expose(), false)?;
        let key = session::find_private_key(&session, config)?;
        let public_key = session::find_public_key(&session, key, config)?;
        let live = Live { session, key };
        probe(&live, &public_key, config)?;
        Ok(Pkcs11Signer {
            inner: Arc::new(Inner {
                state: Mutex::new(Some(live)),
                module,
                config: config.clone(),
                pin,
                public_key,
                pending: AtomicUsize::new(0),
                reopens: AtomicU64::new(0),
            }),
        })
    }

    /// Signs [`HEALTH_PROBE_MESSAGE`] in the token (re-opening a lost session
    /// once, like [`Signer::sign`]), verifies the signature with ed25519-dalek
    /// against [`Signer::public_key`], and returns how long that took. Blocks:
    /// call it from a blocking thread.
    pub fn health_check(&self) -> Result<Duration, SignerError> {
        // The latency of the real device is the measurement itself; this is a
        // runtime implementation touching the world, like the node's Clock.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        self.inner.sign_blocking(HEALTH_PROBE_MESSAGE)?;
        Ok(started.elapsed())
    }

    /// Whether the token reports the private key sensitive, not extractable and
    /// never extractable (reads the attributes).
    pub fn key_is_protected(&self) -> Result<bool, Pkcs11Error> {
        Ok(self.key_protection()?.is_protected())
    }

    /// The private key's storage attributes as the token reports them.
    pub fn key_protection(&self) -> Result<KeyProtection, Pkcs11Error> {
        self.inner
            .with_live(|live| read_protection(&live.session, live.key))
            .map_err(|e| match e {
                LiveError::Reopen(e) => e,
                LiveError::Lost(e) | LiveError::Op(e) => token_err("C_GetAttributeValue", &e),
            })?
            .map_err(|reason| Pkcs11Error::BadKey {
                token: self.inner.config.token_label.clone(),
                label: self.inner.config.key_label.clone(),
                reason,
            })
    }

    /// The token and key this signer uses.
    pub fn config(&self) -> &Pkcs11Config {
        &self.inner.config
    }

    /// How many times a lost session was re-opened (for metrics and tests).
    pub fn session_reopens(&self) -> u64 {
        self.inner.reopens.load(Ordering::Relaxed)
    }

    /// Whether a logged-in session is held right now (false after a loss that
    /// could not be repaired yet; the next request tries again).
    pub fn has_session(&self) -> bool {
        self.inner.lock_state().is_some()
    }
}

impl Signer for Pkcs11Signer {
    fn public_key(&self) -> PublicKey {
        self.inner.public_key
    }

    fn backend(&self) -> &'static str {
        "pkcs11"
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        let inner = Arc::clone(&self.inner);
        let message = message.to_vec();
        Box::pin(async move {
            let pending = Pending::enter(inner)?;
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(move || pending.inner.sign_blocking(&message))
                    .await
                    .map_err(|e| SignerError::Failed(format!("pkcs11 signing task: {e}")))?,
                // No tokio runtime (a plain executor or the simulator's
                // block_on_ready): sign inline.
                Err(_) => pending.inner.sign_blocking(&message),
            }
        })
    }
}

/// Counts a request waiting for the token; refuses past [`MAX_PENDING_SIGNS`].
/// Moved into the blocking closure, so it is released when the token call ends,
/// not when the caller stops waiting (a timed-out request still occupies the
/// token until it answers).
struct Pending {
    inner: Arc<Inner>,
}

impl Pending {
    fn enter(inner: Arc<Inner>) -> Result<Pending, SignerError> {
        let before = inner.pending.fetch_add(1, Ordering::AcqRel);
        let pending = Pending { inner };
        if before >= MAX_PENDING_SIGNS {
            return Err(pending.inner.unavailable(format!(
                "{before} requests already wait for the token, which is not answering"
            )));
        }
        Ok(pending)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.inner.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why an operation through [`Inner::with_live`] failed.
enum LiveError {
    /// The session was lost and a new one could not be opened.
    Reopen(Pkcs11Error),
    /// The session was lost again right after being re-opened.
    Lost(CkError),
    /// The token refused the operation itself.
    Op(CkError),
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, Option<Live>> {
        // A panic while the lock was held leaves at worst a session in an unknown
        // state; the next error on it re-opens it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> SignerError {
        SignerError::Unavailable(format!(
            "pkcs11 token {:?}: {reason}",
            self.config.token_label
        ))
    }

    fn failed(&self, reason: impl std::fmt::Display) -> SignerError {
        SignerError::Failed(format!(
            "pkcs11 token {:?}: {reason}",
            self.config.token_label
        ))
    }

    /// Opens a new session, logs in, and finds the key again, which must still be
    /// the key this signer was opened with.
    fn reopen(&self) -> Result<Live, Pkcs11Error> {
        let (session, _) =
            session::open_session(&self.module, &self.config, self.pin.expose(), false)?;
        let key = session::find_private_key(&session, &self.config)?;
        let public_key = session::find_public_key(&session, key, &self.config)?;
        if public_key != self.public_key {
            return Err(Pkcs11Error::BadKey {
                token: self.config.token_label.clone(),
                label: self.config.key_label.clone(),
                reason: format!(
                    "is now {public_key}, not the key this node started with ({}); \
                     was the token replaced?",
                    self.public_key
                ),
            });
        }
        self.reopens.fetch_add(1, Ordering::Relaxed);
        Ok(Live { session, key })
    }

    /// Runs `op` on the live session. A session loss, before or during `op`,
    /// re-opens the session (and logs in) once and runs `op` again.
    fn with_live<T>(
        &self,
        mut op: impl FnMut(&Live) -> Result<T, CkError>,
    ) -> Result<T, LiveError> {
        let mut state = self.lock_state();
        let mut reopened = false;
        loop {
            if state.is_none() {
                *state = Some(self.reopen().map_err(LiveError::Reopen)?);
                reopened = true;
            }
            let Some(live) = state.as_ref() else {
                continue;
            };
            match op(live) {
                Ok(value) => return Ok(value),
                Err(e) if error::is_session_loss(&e) => {
                    if let Some(old) = state.take() {
                        discard(old, &e);
                    }
                    if reopened {
                        return Err(LiveError::Lost(e));
                    }
                }
                Err(e) => return Err(LiveError::Op(e)),
            }
        }
    }

    /// One signature, verified. Blocks.
    fn sign_blocking(&self, message: &[u8]) -> Result<Signature, SignerError> {
        let raw = self
            .with_live(|live| session::sign_raw(live, message))
            .map_err(|e| match e {
                LiveError::Reopen(e) => {
                    self.unavailable(format!("session lost and not re-opened: {e}"))
                }
                LiveError::Lost(e) => self.unavailable(format!(
                    "session lost again after re-opening it ({})",
                    session::rv_name(&e)
                )),
                LiveError::Op(e) => self.failed(error::describe(&e)),
            })?;
        let signature = signature_from(&raw).map_err(|reason| self.failed(reason))?;
        self.public_key
            .verify(message, &signature)
            .map_err(|_| self.failed("the token returned a signature that does not verify"))?;
        Ok(signature)
    }
}

/// Drops a session after `error`. If the handle is dead (or the module was
/// re-initialised), `C_CloseSession` must not be called on it: the number may
/// already belong to another session of this process. Forgetting leaks a few
/// words per loss.
fn discard(live: Live, error: &CkError) {
    let handle_dead = matches!(
        error,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::CryptokiNotInitialized,
            _
        )
    );
    if handle_dead {
        std::mem::forget(live);
    } else {
        drop(live);
    }
}

fn token_err(operation: &'static str, e: &CkError) -> Pkcs11Error {
    Pkcs11Error::Token {
        operation,
        reason: error::describe(e),
    }
}

fn signature_from(raw: &[u8]) -> Result<Signature, String> {
    let bytes: [u8; SIGNATURE_LEN] = raw.try_into().map_err(|_| {
        format!(
            "the token returned a {}-byte signature; Ed25519 signatures are {SIGNATURE_LEN}",
            raw.len()
        )
    })?;
    Ok(Signature(bytes))
}

/// Signs [`HEALTH_PROBE_MESSAGE`] and verifies it against `public_key`.
fn probe(live: &Live, public_key: &PublicKey, config: &Pkcs11Config) -> Result<(), Pkcs11Error> {
    let bad = |reason: String| Pkcs11Error::BadKey {
        token: config.token_label.clone(),
        label: config.key_label.clone(),
        reason,
    };
    let raw = session::sign_raw(live, HEALTH_PROBE_MESSAGE).map_err(|e| match e {
        CkError::Pkcs11(RvError::MechanismInvalid, _) => Pkcs11Error::MechanismUnsupported {
            token: config.token_label.clone(),
            mechanism: "CKM_EDDSA (Ed25519 signatures)",
        },
        e => token_err("C_Sign", &e),
    })?;
    let signature = signature_from(&raw).map_err(bad)?;
    public_key
        .verify(HEALTH_PROBE_MESSAGE, &signature)
        .map_err(|_| bad("its signature does not verify with its public key object".to_owned()))
}

/// Asks the token for the key pair; retries with the curve given by name when
/// the token does not take the RFC 8410 OID.
fn generate_pair(
    session: &Session,
    config: &Pkcs11Config,
    id: &[u8],
) -> Result<(ObjectHandle, ObjectHandle), Pkcs11Error> {
    let label = config.key_label.as_bytes().to_vec();
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.clone()),
        Attribute::Id(id.to_vec()),
    ];
    let mut result = Err(CkError::NotSupported);
    for params in [&der::ED25519_PARAMS_OID[..], &der::ED25519_PARAMS_NAME[..]] {
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(id.to_vec()),
        ];
        result = session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private);
        match &result {
            Err(CkError::Pkcs11(
                RvError::CurveNotSupported
                | RvError::DomainParamsInvalid
                | RvError::AttributeValueInvalid,
                _,
            )) => continue,
            _ => break,
        }
    }
    result.map_err(|e| match e {
        CkError::Pkcs11(RvError::MechanismInvalid, _) => Pkcs11Error::MechanismUnsupported {
            token: config.token_label.clone(),
            mechanism: "CKM_EC_EDWARDS_KEY_PAIR_GEN (Ed25519 key generation)",
        },
        e => token_err("C_GenerateKeyPair", &e),
    })
}

/// After generation: the token must have honoured the template, and the pair
/// must sign and verify.
fn check_new_pair(
    session: &Session,
    public: ObjectHandle,
    private: ObjectHandle,
    config: &Pkcs11Config,
) -> Result<PublicKey, Pkcs11Error> {
    let bad = |reason: String| Pkcs11Error::BadKey {
        token: config.token_label.clone(),
        label: config.key_label.clone(),
        reason,
    };
    let protection = read_protection(session, private)
        .map_err(|e| token_err("C_GetAttributeValue", &e))?
        .map_err(bad)?;
    if !protection.is_protected() {
        return Err(bad(format!(
            "the token did not keep the new key sensitive and non-extractable ({protection:?}); \
             it was destroyed"
        )));
    }
    let public_key = session::read_public_key(session, public, config)?;
    let raw = session
        .sign(&session::eddsa(), private, HEALTH_PROBE_MESSAGE)
        .map_err(|e| token_err("C_Sign", &e))?;
    let signature = signature_from(&raw).map_err(bad)?;
    public_key
        .verify(HEALTH_PROBE_MESSAGE, &signature)
        .map_err(|_| bad("the new key's signature does not verify; it was destroyed".to_owned()))?;
    Ok(public_key)
}

/// Reads the storage attributes of a private key. The outer error is the
/// token's, the inner one says an attribute was missing.
fn read_protection(
    session: &Session,
    key: ObjectHandle,
) -> Result<Result<KeyProtection, String>, CkError> {
    let attrs = session.get_attributes(
        key,
        &[
            AttributeType::Class,
            AttributeType::Sensitive,
            AttributeType::AlwaysSensitive,
            AttributeType::Extractable,
            AttributeType::NeverExtractable,
            AttributeType::Local,
        ],
    )?;
    let (mut sensitive, mut always, mut extractable, mut never, mut local) =
        (None, None, None, None, None);
    let mut is_private = false;
    for attr in attrs {
        match attr {
            Attribute::Class(class) => is_private = class == ObjectClass::PRIVATE_KEY,
            Attribute::Sensitive(v) => sensitive = Some(v),
            Attribute::AlwaysSensitive(v) => always = Some(v),
            Attribute::Extractable(v) => extractable = Some(v),
            Attribute::NeverExtractable(v) => never = Some(v),
            Attribute::Local(v) => local = Some(v),
            _ => {}
        }
    }
    if !is_private {
        return Ok(Err("is not a private key object".to_owned()));
    }
    let need =
        |v: Option<bool>, name: &str| v.ok_or_else(|| format!("the token does not report {name}"));
    let protection = (|| -> Result<KeyProtection, String> {
        Ok(KeyProtection {
            sensitive: need(sensitive, "CKA_SENSITIVE")?,
            always_sensitive: need(always, "CKA_ALWAYS_SENSITIVE")?,
            // A token that does not report CKA_EXTRACTABLE counts as extractable:
            // protection must be shown, not assumed.
            extractable: extractable.unwrap_or(true),
            never_extractable: need(never, "CKA_NEVER_EXTRACTABLE")?,
            local: local.unwrap_or(false),
        })
    })();
    Ok(protection)
}
