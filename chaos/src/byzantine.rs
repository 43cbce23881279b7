//! Byzantine behaviours: how a misbehaving validator rewrites what its (honest)
//! core wants to send, and what junk it injects on its own. It signs its lies
//! with its real key and no guard, as a real attacker would.

use crate::plan::Behavior;
use crate::rng::SimRng;
use bitcraps_consensus::{
    params::MAX_MESSAGE_BYTES, Block, Certificate, Message, Proposal, Vote, VoteBody,
};
use bitcraps_crypto::{hash, Hash32, Keypair, Signature};

/// Where a rewritten message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    /// Only validators in the first (true) or second (false) half of the set.
    Half(bool),
    One(u16),
}

/// Context a behaviour needs to forge messages.
#[derive(Debug)]
pub struct Forger<'a> {
    pub key: &'a Keypair,
    pub chain_id: &'a str,
    pub me: u16,
    pub rng: &'a mut SimRng,
}

impl Forger<'_> {
    fn vote(&self, body: VoteBody) -> Vote {
        Vote {
            body,
            signer: self.me,
            signature: self.key.sign(&body.signing_bytes(self.chain_id)),
        }
    }
}

fn corrupt(sig: &mut Signature) {
    sig.0[0] ^= 0x55;
    sig.0[40] ^= 0x01;
}

/// Rewrites one outgoing message. `target` is where the honest code sent it.
pub fn rewrite(
    behavior: Behavior,
    message: Message,
    target: Target,
    f: &mut Forger<'_>,
) -> Vec<(Target, Message)> {
    match (behavior, message) {
        (Behavior::Silent, _) => vec![],
        (Behavior::Withhold, Message::Vote(_)) => vec![],
        (Behavior::InvalidSignatures, Message::Vote(mut v)) => {
            corrupt(&mut v.signature);
            vec![(target, Message::Vote(v))]
        }
        (Behavior::InvalidSignatures, Message::Proposal(mut p)) => {
            corrupt(&mut p.vote.signature);
            vec![(target, Message::Proposal(p))]
        }
        (Behavior::InvalidSignatures, Message::Certificate(mut c)) => {
            if let Some((_, s)) = c.signatures.first_mut() {
                corrupt(s);
            }
            vec![(target, Message::Certificate(c))]
        }
        (Behavior::Equivocate, Message::Proposal(p)) if target == Target::All => {
            let mut block: Block = p.block.clone();
            block.payload.extend_from_slice(&f.rng.bytes(8));
            block.header.payload_len = block.payload.len() as u32;
            block.header.payload_hash = hash(&block.payload);
            let vote = f.vote(VoteBody::notarize(block.header.view, block.id()));
            let other = Proposal {
                block,
                vote,
                ..p.clone()
            };
            vec![
                (Target::Half(true), Message::Proposal(p)),
                (Target::Half(false), Message::Proposal(other)),
            ]
        }
        (Behavior::DoubleVote, Message::Vote(v)) if target == Target::All => {
            let body = v.body;
            let fake = match body.kind {
                bitcraps_consensus::VoteKind::Notarize => {
                    VoteBody::notarize(body.view, Hash32(f.rng.seed32()))
                }
                bitcraps_consensus::VoteKind::Finalize => VoteBody::nullify(body.view),
                bitcraps_consensus::VoteKind::Nullify => {
                    VoteBody::finalize(body.view, Hash32(f.rng.seed32()))
                }
            };
            vec![
                (Target::Half(true), Message::Vote(v)),
                (Target::Half(false), Message::Vote(f.vote(fake))),
            ]
        }
        (_, m) => vec![(target, m)],
    }
}

/// Junk a Garbage or Spam validator sends on each of its ticks, as raw frames.
pub fn junk(behavior: Behavior, view: u64, f: &mut Forger<'_>) -> Vec<Vec<u8>> {
    match behavior {
        Behavior::Garbage => {
            let len = f.rng.range(0, 300) as usize;
            let mut out = vec![f.rng.bytes(len)];
            // A valid version byte followed by noise exercises the decoder.
            let mut noisy = vec![bitcraps_consensus::message::WIRE_VERSION];
            let len = f.rng.range(1, 200) as usize;
            noisy.extend(f.rng.bytes(len));
            out.push(noisy);
            if f.rng.chance(0.05) {
                out.push(vec![0u8; MAX_MESSAGE_BYTES + 1]);
            }
            out
        }
        Behavior::Spam => {
            let mut out = Vec::new();
            for _ in 0..8 {
                let future = view + f.rng.range(0, 2_000);
                let body = VoteBody::notarize(future, Hash32(f.rng.seed32()));
                let mut vote = f.vote(body);
                if f.rng.chance(0.5) {
                    corrupt(&mut vote.signature);
                }
                out.push(Message::Vote(vote).encode());
            }
            out.push(
                Message::Certificate(Certificate {
                    body: VoteBody::nullify(view + 1),
                    signatures: vec![(
                        f.me,
                        Signature(f.rng.seed32().repeat(2).try_into().unwrap_or([0; 64])),
                    )],
                })
                .encode(),
            );
            out.push(
                Message::BlockRequest {
                    id: Hash32(f.rng.seed32()),
                    max_ancestors: 64,
                }
                .encode(),
            );
            out
        }
        _ => Vec::new(),
    }
}
