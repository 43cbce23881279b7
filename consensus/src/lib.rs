//! bitcraps-consensus: Simplex BFT consensus as a pure state machine.
//!
//! # Protocol
//!
//! This crate implements **Simplex** — Benjamin Y. Chan and Rafael Pass,
//! *Simplex Consensus: A Simple and Fast Consensus Protocol*, TCC 2023
//! (ePrint 2023/463). Partially synchronous, safe with `f < n/3` byzantine
//! validators, live after GST, optimistically responsive (a view with an honest
//! leader finishes at network speed). Each view (the paper's *iteration*) has a
//! round-robin leader who proposes a block; validators vote to *notarize* it; a
//! quorum of votes is a *notarization* and moves everyone to the next view; a
//! validator whose view timer fires votes to *nullify* the view instead; a
//! validator that saw the notarization before its timer fired also votes to
//! *finalize*, and a quorum of finalize votes commits the block and its ancestors.
//!
//! # Deviations from the paper (each listed where it is implemented)
//!
//! 1. Quorum is the smallest `q` with `2q > n + f` (equal to `2f+1` when
//!    `n = 3f+1`), so any `n` works.
//! 2. The view timer backs off exponentially with consecutive views without a
//!    notarization (paper: fixed `3Δ`), and a retry timer rebroadcasts our votes
//!    and the certificate that brought us into the view (paper: reliable
//!    channels). See `handle/view.rs`.
//! 3. Proposals carry their justification (the parent's certificate and the
//!    nullifications of skipped views), bounded by [`params::MAX_VIEW_GAP`].
//! 4. A validator needs the parent *block* (not only its certificate) before
//!    voting, checks height, strictly increasing timestamps within
//!    `max_clock_drift_ms` of its clock, and the payload commitment; it does not
//!    notarize a view it already voted to nullify. See `handle/proposal.rs`.
//! 5. A validator that jumps past a notarized view without nullifying it still
//!    votes to finalize it; a finalization also moves a validator forward.
//!    See `handle/certificate.rs`.
//! 6. Blocks are fetched on demand (`BlockRequest`/`Blocks`) when a certificate
//!    names a block we have not seen. See `handle/sync.rs`.
//! 7. Signatures are individual ed25519 signatures; a certificate is a quorum of
//!    them (no aggregation), batch-verified.
//!
//! # Purity
//!
//! [`Core::handle`] takes local time and one [`Input`] and returns [`Effect`]s.
//! It never reads a clock, touches a socket or disk, holds a key or spawns a task;
//! `io.rs` states the runtime's contract (notably: a durable persist runs before
//! any later effect, which is how a vote is never sent before it is logged).
//! Every map is a `BTreeMap` so iteration order, and therefore every output, is a
//! function of the inputs alone.
#![forbid(unsafe_code)]

pub mod block;
pub mod certificate;
pub mod genesis;
mod handle;
pub mod io;
pub mod message;
pub mod params;
mod state;

pub use bitcraps_crypto::vote::{View, VoteBody, VoteKind};
pub use block::{Block, BlockHeader, Height};
pub use certificate::{verify_certificate, verify_vote, CertError};
pub use genesis::{Genesis, Validator, ValidatorIndex, ValidatorSet};
pub use io::{CommittedBlock, Effect, Evidence, Input, TimeoutKind, ViewChange, WalEntry};
pub use message::{Certificate, DecodeError, Message, Proposal, Vote};
pub use params::Params;
pub use state::{Core, Tip};
