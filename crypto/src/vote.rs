//! The three statements a validator signs in consensus (Simplex, Chan & Pass 2023).
//!
//! They are defined here rather than in the consensus crate because the signing
//! guard ([`crate::guard`]) must understand exactly what it is asked to sign: it
//! derives the signed bytes itself from a [`VoteBody`], so no caller can ask it to
//! sign one thing while it records another.

use crate::domain::{signing_bytes, Namespace};
use crate::hash::Hash32;
use serde::{Deserialize, Serialize};

/// A consensus view (Simplex "iteration"). Strictly increasing per validator.
pub type View = u64;

/// What kind of vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VoteKind {
    /// "I saw a valid proposal for `block` in `view`, the first from its leader."
    Notarize,
    /// "My timer for `view` expired; skip it." (`block` is [`Hash32::ZERO`]).
    Nullify,
    /// "I saw `block` notarized in `view` before my timer expired."
    Finalize,
}

impl VoteKind {
    pub fn namespace(self) -> Namespace {
        match self {
            VoteKind::Notarize => Namespace::Notarize,
            VoteKind::Nullify => Namespace::Nullify,
            VoteKind::Finalize => Namespace::Finalize,
        }
    }
}

/// The signed content of a vote. Invariant: `block == Hash32::ZERO` iff `kind == Nullify`
/// (enforced by the constructors and checked by [`VoteBody::is_well_formed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VoteBody {
    pub kind: VoteKind,
    pub view: View,
    pub block: Hash32,
}

impl VoteBody {
    pub fn notarize(view: View, block: Hash32) -> Self {
        VoteBody {
            kind: VoteKind::Notarize,
            view,
            block,
        }
    }

    pub fn nullify(view: View) -> Self {
        VoteBody {
            kind: VoteKind::Nullify,
            view,
            block: Hash32::ZERO,
        }
    }

    pub fn finalize(view: View, block: Hash32) -> Self {
        VoteBody {
            kind: VoteKind::Finalize,
            view,
            block,
        }
    }

    /// True when the block field matches the kind.
    pub fn is_well_formed(&self) -> bool {
        match self.kind {
            VoteKind::Nullify => self.block.is_zero(),
            VoteKind::Notarize | VoteKind::Finalize => !self.block.is_zero(),
        }
    }

    /// The exact bytes signed for this vote on `chain_id`: namespace by kind, then
    /// view (u64 LE) and block hash.
    pub fn signing_bytes(&self, chain_id: &str) -> Vec<u8> {
        let mut payload = [0u8; 40];
        payload[..8].copy_from_slice(&self.view.to_le_bytes());
        payload[8..].copy_from_slice(self.block.as_bytes());
        signing_bytes(chain_id, self.kind.namespace(), &payload)
    }

    /// Two votes *conflict* when an honest validator must never sign both:
    /// two different blocks notarized (or finalized) in one view, or a finalize and
    /// a nullify for the same view (Simplex safety rests on exactly these).
    pub fn conflicts_with(&self, other: &VoteBody) -> bool {
        if self.view != other.view || self == other {
            return false;
        }
        use VoteKind::*;
        match (self.kind, other.kind) {
            (Notarize, Notarize) | (Finalize, Finalize) => self.block != other.block,
            (Finalize, Nullify) | (Nullify, Finalize) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash;

    #[test]
    fn conflicts() {
        let a = hash(b"a");
        let b = hash(b"b");
        assert!(VoteBody::notarize(3, a).conflicts_with(&VoteBody::notarize(3, b)));
        assert!(!VoteBody::notarize(3, a).conflicts_with(&VoteBody::notarize(4, b)));
        assert!(!VoteBody::notarize(3, a).conflicts_with(&VoteBody::notarize(3, a)));
        assert!(VoteBody::finalize(3, a).conflicts_with(&VoteBody::nullify(3)));
        assert!(VoteBody::nullify(3).conflicts_with(&VoteBody::finalize(3, a)));
        assert!(!VoteBody::notarize(3, a).conflicts_with(&VoteBody::nullify(3)));
        assert!(VoteBody::finalize(3, a).conflicts_with(&VoteBody::finalize(3, b)));
    }

    #[test]
    fn signing_bytes_bind_kind_view_block_chain() {
        let a = hash(b"a");
        let base = VoteBody::notarize(1, a).signing_bytes("c");
        assert_ne!(base, VoteBody::finalize(1, a).signing_bytes("c"));
        assert_ne!(base, VoteBody::notarize(2, a).signing_bytes("c"));
        assert_ne!(base, VoteBody::notarize(1, hash(b"b")).signing_bytes("c"));
        assert_ne!(base, VoteBody::notarize(1, a).signing_bytes("d"));
        assert!(VoteBody::nullify(1).is_well_formed());
        assert!(!VoteBody::notarize(1, Hash32::ZERO).is_well_formed());
    }
}
