//! The boundary of the core: what comes in ([`Input`]), what goes out ([`Effect`]),
//! and what the runtime must persist ([`WalEntry`]).
//!
//! # The runtime's contract
//!
//! The runtime calls [`crate::Core::handle`] with its local time and one input and
//! executes the returned effects **in order**:
//!
//! * [`Effect::Persist`] appends to the write-ahead log. When `durable` is true,
//!   everything appended so far must be on stable storage (fsync) before any later
//!   effect runs: this is how "persist before you speak" is enforced, because the
//!   core always places a durable persist of a vote or proposal before the
//!   broadcast that carries it. Non-durable entries may be batched.
//! * [`Effect::RequestSignature`] asks the signing guard to sign; the answer comes
//!   back later as [`Input::SignatureReady`] or [`Input::SignatureRefused`].
//! * [`Effect::RequestPayload`] asks the application for a batch; the answer comes
//!   back as [`Input::PayloadReady`] (an empty payload is fine).
//! * [`Effect::ScheduleTimeout`] asks for [`Input::Timeout`] at local time `at_ms`.
//!   Stale timeouts are ignored by the core, so the runtime need not cancel them.
//! * [`Effect::Commit`] delivers finalized blocks in height order. After a restart
//!   the same block may be delivered again; the runtime ignores heights it has.
//! * [`Effect::ServeBlocks`] asks the runtime to answer a peer's block request from
//!   its committed block store (the core answers from memory when it can).

use crate::block::{Block, Height};
use crate::genesis::ValidatorIndex;
use crate::message::{Certificate, Message, Proposal, Vote};
use bitcraps_crypto::{
    vote::{View, VoteBody},
    Hash32, Signature,
};
use serde::{Deserialize, Serialize};

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeoutKind {
    /// The view's timer (Simplex: vote to nullify when it fires).
    View,
    /// Rebroadcast our votes and certificates while stuck in a view.
    Retry,
}

/// Inputs to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
// Variants differ in size because proposals carry a block; values are moved a
// handful of times per message, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Input {
    /// Start (or resume after [`crate::Core::restore`]): enter the current view.
    Start,
    /// A decoded message from an authenticated peer.
    Message {
        from: ValidatorIndex,
        message: Message,
    },
    Timeout {
        view: View,
        kind: TimeoutKind,
    },
    /// The application's payload for the view we lead.
    PayloadReady {
        view: View,
        payload: Vec<u8>,
    },
    SignatureReady {
        vote: VoteBody,
        signature: Signature,
    },
    /// The signer or its guard said no (down, or refused a possible double sign).
    SignatureRefused {
        vote: VoteBody,
        reason: String,
    },
}

/// Two conflicting votes signed by the same validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub first: Vote,
    pub second: Vote,
}

/// A finalized block with the certificate that finalized it (or a descendant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedBlock {
    pub block: Block,
    pub finalization: Certificate,
}

/// Effects the runtime executes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Broadcast(Message),
    Send {
        to: ValidatorIndex,
        message: Message,
    },
    Persist {
        entry: WalEntry,
        durable: bool,
    },
    RequestSignature(VoteBody),
    RequestPayload {
        view: View,
        parent: Hash32,
        height: Height,
    },
    ScheduleTimeout {
        view: View,
        kind: TimeoutKind,
        at_ms: u64,
    },
    Commit(CommittedBlock),
    /// WAL entries for views below this are no longer needed.
    Prune {
        below_view: View,
    },
    ServeBlocks {
        to: ValidatorIndex,
        id: Hash32,
        max_ancestors: u16,
    },
    Evidence(Evidence),
    /// For metrics and tracing only.
    ViewEntered {
        view: View,
        via: ViewChange,
    },
}

/// How a view was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewChange {
    Start,
    Notarized,
    Nullified,
    Finalized,
}

/// The write-ahead log. Replayed by [`crate::Core::restore`] after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Variants differ in size because proposals carry a block; values are moved a
// handful of times per message, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum WalEntry {
    /// A vote we signed (before it was sent).
    OwnVote(Vote),
    /// A proposal we made (before it was sent).
    OwnProposal(Proposal),
    /// A verified certificate.
    Certificate(Certificate),
    /// A verified block we may need to commit.
    Block(Block),
    /// Our committed tip.
    Committed {
        view: View,
        height: Height,
        id: Hash32,
        timestamp_ms: u64,
    },
}

impl WalEntry {
    /// The view an entry belongs to (for pruning).
    pub fn view(&self) -> View {
        match self {
            WalEntry::OwnVote(v) => v.body.view,
            WalEntry::OwnProposal(p) => p.block.header.view,
            WalEntry::Certificate(c) => c.body.view,
            WalEntry::Block(b) => b.header.view,
            WalEntry::Committed { view, .. } => *view,
        }
    }
}
