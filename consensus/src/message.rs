//! Wire messages and their codec.
//!
//! Encoding: one version byte ([`WIRE_VERSION`]) then the postcard encoding of
//! [`Message`]. Decoding checks the size limit before parsing and the structural
//! limits (signature counts, gap lengths, payload size) after, so a hostile peer
//! gets a clear [`DecodeError`] and costs us at most one bounded allocation.

use crate::block::Block;
use crate::genesis::ValidatorIndex;
use crate::params::{MAX_BLOCKS_PER_RESPONSE, MAX_MESSAGE_BYTES, MAX_VALIDATORS, MAX_VIEW_GAP};
use bitcraps_crypto::{vote::VoteBody, Hash32, Signature};
use serde::{Deserialize, Serialize};

/// Version of the wire envelope. A peer speaking another version is refused.
pub const WIRE_VERSION: u8 = 1;

/// A vote signed by one validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub body: VoteBody,
    pub signer: ValidatorIndex,
    pub signature: Signature,
}

/// A quorum of votes on the same body: a notarization, nullification or
/// finalization (Simplex's certificates). Signers are strictly increasing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub body: VoteBody,
    pub signatures: Vec<(ValidatorIndex, Signature)>,
}

impl Certificate {
    /// Content hash, used to cache verification results.
    pub fn digest(&self) -> Hash32 {
        bitcraps_crypto::hash(&postcard::to_stdvec(self).unwrap_or_default())
    }
}

/// A leader's proposal for a view: the block, the leader's own notarize vote for it,
/// and the justification a receiver needs to check it extends a valid parent
/// (the parent's notarization or finalization, and nullifications of every view
/// in between).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub block: Block,
    pub vote: Vote,
    pub parent_certificate: Option<Certificate>,
    pub nullifications: Vec<Certificate>,
}

/// Everything validators say to each other about consensus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Variants differ in size because proposals carry a block; values are moved a
// handful of times per message, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Message {
    Proposal(Proposal),
    Vote(Vote),
    Certificate(Certificate),
    /// Please send block `id` and up to `max_ancestors` of its ancestors.
    BlockRequest {
        id: Hash32,
        max_ancestors: u16,
    },
    /// Blocks answering a request, child first.
    Blocks(Vec<Block>),
}

impl Message {
    /// Short name for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Proposal(_) => "proposal",
            Message::Vote(_) => "vote",
            Message::Certificate(_) => "certificate",
            Message::BlockRequest { .. } => "block_request",
            Message::Blocks(_) => "blocks",
        }
    }

    /// Encodes with the version byte.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![WIRE_VERSION];
        // Serialising owned plain data into a Vec cannot fail.
        if let Ok(body) = postcard::to_stdvec(self) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Decodes a frame, enforcing size and structural limits.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        let (msg, rest) = postcard::take_from_bytes::<Message>(body)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        msg.check_limits()?;
        Ok(msg)
    }

    fn check_limits(&self) -> Result<(), DecodeError> {
        let cert_ok = |c: &Certificate| c.signatures.len() <= MAX_VALIDATORS;
        match self {
            Message::Proposal(p) => {
                if p.nullifications.len() as u64 > MAX_VIEW_GAP {
                    return Err(DecodeError::Limit("too many nullifications in proposal"));
                }
                if !p.parent_certificate.iter().all(cert_ok)
                    || !p.nullifications.iter().all(cert_ok)
                {
                    return Err(DecodeError::Limit("certificate too large"));
                }
            }
            Message::Certificate(c) if !cert_ok(c) => {
                return Err(DecodeError::Limit("certificate too large"))
            }
            Message::BlockRequest { max_ancestors, .. }
                if *max_ancestors > MAX_BLOCKS_PER_RESPONSE =>
            {
                return Err(DecodeError::Limit(
                    "block request asks for too many ancestors",
                ))
            }
            Message::Blocks(b) if b.len() > MAX_BLOCKS_PER_RESPONSE as usize + 1 => {
                return Err(DecodeError::Limit("too many blocks in response"))
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    #[error("frame of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("unsupported wire version {0} (expected {WIRE_VERSION})")]
    Version(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    #[error("limit exceeded: {0}")]
    Limit(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_crypto::hash;

    fn vote() -> Vote {
        Vote {
            body: VoteBody::notarize(3, hash(b"b")),
            signer: 2,
            signature: Signature([9u8; 64]),
        }
    }

    #[test]
    fn roundtrip() {
        for m in [
            Message::Vote(vote()),
            Message::Certificate(Certificate {
                body: VoteBody::nullify(4),
                signatures: vec![(0, Signature([1; 64])), (1, Signature([2; 64]))],
            }),
            Message::BlockRequest {
                id: hash(b"x"),
                max_ancestors: 3,
            },
        ] {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn hostile_frames_are_refused_with_reasons() {
        assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(Message::decode(&[7, 0]), Err(DecodeError::Version(7)));
        assert!(matches!(
            Message::decode(&[WIRE_VERSION, 0xff, 0xff, 0xff]),
            Err(DecodeError::Malformed(_))
        ));
        let big = vec![WIRE_VERSION; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            Message::decode(&big),
            Err(DecodeError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        let mut trailing = Message::Vote(vote()).encode();
        trailing.push(0);
        assert_eq!(
            Message::decode(&trailing),
            Err(DecodeError::TrailingBytes(1))
        );
        let req = Message::BlockRequest {
            id: hash(b"x"),
            max_ancestors: MAX_BLOCKS_PER_RESPONSE + 1,
        };
        assert!(matches!(
            Message::decode(&req.encode()),
            Err(DecodeError::Limit(_))
        ));
    }
}
