//! The signing guard: double-sign protection in front of every [`Signer`].
//!
//! A validator that signs two conflicting votes (see [`VoteBody::conflicts_with`])
//! breaks Simplex safety and can be slashed. Bugs, restarts, crash recovery,
//! replayed WAL entries and operator mistakes can all ask for such a second
//! signature, so the key holder itself refuses, and remembers durably what it has
//! signed (the idea of aptos SafetyRules, for Simplex votes). The guard derives
//! the signed bytes itself from the [`VoteBody`] so it always records exactly what
//! it signs.
//!
//! # Rules
//!
//! For a request `vote` and the recorded last signed vote of each kind:
//!
//! * A malformed vote (`!vote.is_well_formed()`) is refused.
//! * `Notarize(v, b)`: if the last notarize is `(v, b)`, its stored signature is
//!   returned (an idempotent re-request; nothing new is signed). Otherwise, if the
//!   last notarize has view `>= v`, refuse (conflict or regression).
//! * `Nullify(v)`: if the last nullify has view `v`, its stored signature is
//!   returned. If the last nullify has view `> v`, refuse. If the last finalize has
//!   view `>= v`, refuse.
//! * `Finalize(v, b)`: if the last finalize is `(v, b)`, its stored signature is
//!   returned. Otherwise, if the last finalize has view `>= v`, refuse. If the last
//!   nullify has view `>= v`, refuse.
//! * Otherwise the inner signer signs `vote.signing_bytes(chain_id)`, the guard
//!   checks the signature against the signer's public key, records it, writes the
//!   new state to the [`GuardStore`] (durable, fsynced) and only then returns it.
//!
//! Because the recorded views only ever grow, these rules imply the invariant the
//! tests check: no two signatures the guard has ever returned are for conflicting
//! votes, across restarts, as long as the store survives.
//!
//! # Failure handling
//!
//! If the store fails after the signer produced a signature, the signature is not
//! returned, but the guard *keeps the new record in memory*. The signature exists
//! (a backend could have logged it, a remote signer could have leaked it), so the
//! stricter state is the one that matches reality; forgetting it would let the next
//! request sign a conflicting vote. While memory is ahead of the store the guard
//! still refuses by the (stricter) in-memory state but releases no signature, not
//! even a stored one for an idempotent re-request: each request that would return
//! a signature first retries writing the state, and fails until the store works.
//!
//! Requests are serialized: an async mutex is held across check → sign → store, so
//! two concurrent requests can never both pass the check before either records.
//! Dropping a `sign_vote` future while it waits for the signer releases nothing
//! and records nothing.
//!
//! `GuardStore::store` is synchronous and durable: one `fdatasync` per new vote
//! signed (a few per view). Callers on an async runtime should expect it to block
//! briefly.
//!
//! # Where the state lives
//!
//! [`FileGuardStore`] keeps it in one file of two checksummed slots, written in
//! place alternately (see `guard/file.rs` for why and how a torn write is
//! survived), mode 0600, and locked against a second process. It belongs outside
//! update slots so a rollback cannot reset it. A missing file means "never
//! signed"; an unreadable one is an error, never a silent reset.
//! [`MemoryGuardStore`] is for tests and the simulator, where it plays the disk
//! that survives a simulated crash.

use crate::domain::MAX_CHAIN_ID_LEN;
use crate::hash::Hash32;
use crate::keys::{PublicKey, Signature};
use crate::signer::{Signer, SignerError};
use crate::vote::{View, VoteBody, VoteKind};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// One signed vote of a given kind, as recorded by the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    pub view: View,
    pub block: Hash32,
    pub signature: Signature,
}

/// Everything the guard must remember: the chain it signs for and the last vote of
/// each kind it signed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardState {
    pub chain_id: String,
    pub last_notarize: Option<SignedRecord>,
    pub last_nullify: Option<SignedRecord>,
    pub last_finalize: Option<SignedRecord>,
}

impl GuardState {
    fn new(chain_id: &str) -> Self {
        GuardState {
            chain_id: chain_id.to_owned(),
            ..GuardState::default()
        }
    }

    fn last(&self, kind: VoteKind) -> Option<SignedRecord> {
        match kind {
            VoteKind::Notarize => self.last_notarize,
            VoteKind::Nullify => self.last_nullify,
            VoteKind::Finalize => self.last_finalize,
        }
    }

    fn record(&mut self, vote: &VoteBody, signature: Signature) {
        let record = Some(SignedRecord {
            view: vote.view,
            block: vote.block,
            signature,
        });
        match vote.kind {
            VoteKind::Notarize => self.last_notarize = record,
            VoteKind::Nullify => self.last_nullify = record,
            VoteKind::Finalize => self.last_finalize = record,
        }
    }

    /// The recorded votes, each with the vote body it was signed for.
    fn records(&self) -> impl Iterator<Item = (VoteBody, Signature)> + '_ {
        [VoteKind::Notarize, VoteKind::Nullify, VoteKind::Finalize]
            .into_iter()
            .filter_map(|kind| {
                self.last(kind).map(|r| {
                    let vote = VoteBody {
                        kind,
                        view: r.view,
                        block: r.block,
                    };
                    (vote, r.signature)
                })
            })
    }
}

/// Durable storage for the [`GuardState`].
pub trait GuardStore: Send + Sync + std::fmt::Debug {
    /// The stored state, or `None` if nothing was ever stored. Damaged state must
    /// be an error, never `None`.
    fn load(&self) -> Result<Option<GuardState>, GuardStoreError>;
    /// Must be durable (fsynced) when it returns Ok.
    fn store(&self, state: &GuardState) -> Result<(), GuardStoreError>;
}

impl<T: GuardStore + ?Sized> GuardStore for Arc<T> {
    fn load(&self) -> Result<Option<GuardState>, GuardStoreError> {
        (**self).load()
    }
    fn store(&self, state: &GuardState) -> Result<(), GuardStoreError> {
        (**self).store(state)
    }
}

impl<T: GuardStore + ?Sized> GuardStore for Box<T> {
    fn load(&self) -> Result<Option<GuardState>, GuardStoreError> {
        (**self).load()
    }
    fn store(&self, state: &GuardState) -> Result<(), GuardStoreError> {
        (**self).store(state)
    }
}

/// Why the guard state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GuardStoreError {
    #[error("guard state I/O failed ({operation} {path}): {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("guard state {path} is corrupt: {reason}; refusing to start from an empty state")]
    Corrupt { path: PathBuf, reason: String },
    #[error("guard state {path} is locked by another process")]
    Locked { path: PathBuf },
    #[error("guard state could not be encoded: {0}")]
    Encode(String),
    #[error("guard store unavailable: {0}")]
    Unavailable(String),
}

/// Why the guard did not return a signature.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The request could lead to a double sign (or is malformed). Never retry it
    /// unchanged: the answer will not change.
    #[error("refused to sign: {reason}")]
    Refused { reason: String },
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error(transparent)]
    Store(#[from] GuardStoreError),
    /// The stored state belongs to another chain.
    #[error("guard state is for chain {stored:?}, not {requested:?}")]
    ChainMismatch { stored: String, requested: String },
    /// The chain id is empty or longer than [`MAX_CHAIN_ID_LEN`] (longer ids would
    /// be truncated in the signed bytes, so two chains could share signatures).
    #[error("invalid chain id: must be 1..={max} bytes, got {len}")]
    InvalidChainId { len: usize, max: usize },
    /// The stored signatures were not made by this signer's key: the state belongs
    /// to another validator or key (for example a wrong HSM slot or data directory).
    /// `public_key` is the signer's key in hex.
    #[error("guard state was signed by a different key than signer {public_key}")]
    KeyMismatch { public_key: String },
}

/// The data only touched while holding the async mutex.
#[derive(Debug)]
struct Authority {
    state: GuardState,
    /// True while `state` holds a record the store has not confirmed durable.
    unsaved: bool,
}

/// Double-sign protection in front of a [`Signer`]. See the module docs for rules.
#[derive(Debug)]
pub struct SigningGuard<S: Signer, G: GuardStore> {
    chain_id: String,
    signer: S,
    store: G,
    public_key: PublicKey,
    /// Held across check → sign → store so requests never interleave.
    authority: tokio::sync::Mutex<Authority>,
    /// A copy of the state for [`SigningGuard::state`], which must not wait for an
    /// in-flight signature. Updated whenever the authority's state changes.
    snapshot: Mutex<GuardState>,
}

impl<S: Signer, G: GuardStore> SigningGuard<S, G> {
    /// Loads the guard state (or creates and stores an empty one for `chain_id`).
    /// Refuses state from another chain or signed by another key.
    pub fn new(chain_id: &str, signer: S, store: G) -> Result<Self, GuardError> {
        if chain_id.is_empty() || chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(GuardError::InvalidChainId {
                len: chain_id.len(),
                max: MAX_CHAIN_ID_LEN,
            });
        }
        let public_key = signer.public_key();
        let state = match store.load()? {
            Some(state) if state.chain_id != chain_id => {
                return Err(GuardError::ChainMismatch {
                    stored: state.chain_id,
                    requested: chain_id.to_owned(),
                })
            }
            Some(state) => state,
            None => {
                // Stored right away so the file binds this chain id even before
                // the first vote.
                let state = GuardState::new(chain_id);
                store.store(&state)?;
                state
            }
        };
        // A stored signature is handed out again on re-requests, so it must be
        // ours; this also catches a state file from another validator.
        let foreign = state.records().any(|(vote, sig)| {
            public_key
                .verify(&vote.signing_bytes(chain_id), &sig)
                .is_err()
        });
        if foreign {
            return Err(GuardError::KeyMismatch {
                public_key: public_key.to_hex(),
            });
        }
        Ok(SigningGuard {
            chain_id: chain_id.to_owned(),
            signer,
            store,
            public_key,
            snapshot: Mutex::new(state.clone()),
            authority: tokio::sync::Mutex::new(Authority {
                state,
                unsaved: false,
            }),
        })
    }

    /// Signs `vote` if the rules allow it, returning the stored signature for an
    /// exact repeat of the last vote of its kind.
    pub async fn sign_vote(&self, vote: &VoteBody) -> Result<Signature, GuardError> {
        let mut authority = self.authority.lock().await;
        // Refusals come first: they release nothing, so they need no durable state.
        let existing = check(&authority.state, vote)?;
        if authority.unsaved {
            // No signature, old or new, leaves the guard while memory is ahead of
            // the disk.
            self.store.store(&authority.state)?;
            authority.unsaved = false;
        }
        if let Some(existing) = existing {
            return Ok(existing);
        }

        let message = vote.signing_bytes(&self.chain_id);
        let signature = self.signer.sign(&message).await?;
        // A faulty backend (wrong slot, corrupted reply) must not get a bogus
        // signature recorded as "our vote" or sent to peers.
        if self.public_key.verify(&message, &signature).is_err() {
            return Err(GuardError::Signer(SignerError::Failed(
                "backend returned a signature that does not verify under its public key".to_owned(),
            )));
        }

        authority.state.record(vote, signature);
        authority.unsaved = true;
        self.publish(&authority.state);
        self.store.store(&authority.state)?;
        authority.unsaved = false;
        Ok(signature)
    }

    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    pub fn backend(&self) -> &'static str {
        self.signer.backend()
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// A snapshot of the state, including records not yet confirmed durable.
    pub fn state(&self) -> GuardState {
        // The snapshot is only ever replaced whole, so a poisoned lock still holds
        // a consistent value.
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, state: &GuardState) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = state.clone();
    }
}

/// Applies the rules: `Ok(Some(sig))` for an exact repeat, `Ok(None)` when a new
/// signature may be made, `Err(Refused)` otherwise.
fn check(state: &GuardState, vote: &VoteBody) -> Result<Option<Signature>, GuardError> {
    if !vote.is_well_formed() {
        return Err(refuse(
            vote,
            "malformed: the block must be zero for nullify and only for nullify",
        ));
    }
    let v = vote.view;
    if let Some(last) = state.last(vote.kind) {
        let same_block = last.block == vote.block;
        match vote.kind {
            VoteKind::Notarize | VoteKind::Finalize if last.view == v && same_block => {
                return Ok(Some(last.signature))
            }
            VoteKind::Nullify if last.view == v => return Ok(Some(last.signature)),
            VoteKind::Notarize | VoteKind::Finalize if last.view >= v => {
                return Err(refuse(vote, already(vote.kind, &last)))
            }
            VoteKind::Nullify if last.view > v => {
                return Err(refuse(vote, already(vote.kind, &last)))
            }
            _ => {}
        }
    }
    let blocker = match vote.kind {
        VoteKind::Notarize => None,
        VoteKind::Nullify => Some(VoteKind::Finalize),
        VoteKind::Finalize => Some(VoteKind::Nullify),
    };
    if let Some(other) = blocker {
        if let Some(last) = state.last(other).filter(|r| r.view >= v) {
            return Err(refuse(vote, already(other, &last)));
        }
    }
    Ok(None)
}

fn kind_name(kind: VoteKind) -> &'static str {
    match kind {
        VoteKind::Notarize => "notarize",
        VoteKind::Nullify => "nullify",
        VoteKind::Finalize => "finalize",
    }
}

fn already(kind: VoteKind, last: &SignedRecord) -> String {
    format!(
        "already signed {} for view {} (block {})",
        kind_name(kind),
        last.view,
        last.block.short()
    )
}

fn refuse(vote: &VoteBody, why: impl std::fmt::Display) -> GuardError {
    GuardError::Refused {
        reason: format!(
            "{} for view {} (block {}): {why}",
            kind_name(vote.kind),
            vote.view,
            vote.block.short()
        ),
    }
}

/// An in-memory [`GuardStore`]. Clones share one state, so a simulator can keep a
/// clone as the "disk" and build a fresh guard over it after a simulated crash.
#[derive(Debug, Clone, Default)]
pub struct MemoryGuardStore {
    state: Arc<Mutex<Option<GuardState>>>,
    failing: Arc<AtomicBool>,
}

impl MemoryGuardStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, `store` fails (a full or broken disk); `load` still works.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn slot(&self) -> Result<std::sync::MutexGuard<'_, Option<GuardState>>, GuardStoreError> {
        self.state
            .lock()
            .map_err(|_| GuardStoreError::Unavailable("memory guard store lock poisoned".into()))
    }
}

impl GuardStore for MemoryGuardStore {
    fn load(&self) -> Result<Option<GuardState>, GuardStoreError> {
        Ok(self.slot()?.clone())
    }

    fn store(&self, state: &GuardState) -> Result<(), GuardStoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(GuardStoreError::Unavailable(
                "memory guard store set to fail".into(),
            ));
        }
        *self.slot()? = Some(state.clone());
        Ok(())
    }
}

pub(crate) fn io_error(operation: &'static str, path: &Path, source: io::Error) -> GuardStoreError {
    GuardStoreError::Io {
        operation,
        path: path.to_owned(),
        source,
    }
}

mod file;
pub use file::FileGuardStore;

#[cfg(test)]
mod tests;
