//! Consensus traffic and wire messages.

use bitcraps_chaos::sim::sim_genesis;
use bitcraps_consensus::{
    Block, BlockHeader, Certificate, Core, Effect, Genesis, Input, Message, Proposal, Vote,
    VoteBody,
};
use bitcraps_crypto::{hash, Hash32, Keypair};
use std::hint::black_box;

/// Seed of the simulated validator keys.
const KEY_SEED: u64 = 42;

fn sign(genesis: &Genesis, keys: &[Keypair], signer: usize, body: VoteBody) -> Vote {
    Vote {
        body,
        signer: signer as u16,
        signature: keys[signer].sign(&body.signing_bytes(&genesis.chain_id)),
    }
}

fn cert(genesis: &Genesis, keys: &[Keypair], signers: &[usize], body: VoteBody) -> Certificate {
    Certificate {
        body,
        signatures: signers
            .iter()
            .map(|&i| (i as u16, sign(genesis, keys, i, body).signature))
            .collect(),
    }
}

fn child(
    parent: &BlockHeader,
    parent_id: Hash32,
    view: u64,
    proposer: u16,
    payload: Vec<u8>,
) -> Block {
    Block::new(
        view,
        parent.height + 1,
        parent_id,
        parent.view,
        proposer,
        parent.timestamp_ms + 1,
        payload,
    )
}

/// A healthy chain's traffic as seen by a follower: `(from, message)` pairs.
#[derive(Debug)]
pub struct Stream {
    pub genesis: Genesis,
    pub messages: Vec<(u16, Message)>,
    /// Local time at which every block's timestamp is acceptable.
    pub now_ms: u64,
    /// Views in the stream; a follower commits one block per view.
    pub views: u64,
}

/// `views` views of an `n`-validator chain: per view one proposal (with its
/// parent's notarization, 256 B payload), n-1 notarize votes, the
/// notarization, n-1 finalize votes and the finalization.
pub fn stream(n: usize, views: u64) -> Stream {
    let (genesis, keys) = sim_genesis(n, KEY_SEED);
    let set = genesis.validate().expect("valid genesis");
    let q = set.quorum();
    let g = genesis.block();
    let (mut parent, mut parent_id) = (g.header.clone(), g.id());
    let mut parent_cert: Option<Certificate> = None;
    let mut messages = Vec::new();
    for v in 1..=views {
        let leader = set.leader(v) as usize;
        let block = child(&parent, parent_id, v, leader as u16, vec![v as u8; 256]);
        let id = block.id();
        let others: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
        let proposal = Proposal {
            vote: sign(&genesis, &keys, leader, VoteBody::notarize(v, id)),
            block: block.clone(),
            parent_certificate: parent_cert.take(),
            nullifications: vec![],
        };
        messages.push((leader as u16, Message::Proposal(proposal)));
        for &i in &others {
            let vote = sign(&genesis, &keys, i, VoteBody::notarize(v, id));
            messages.push((i as u16, Message::Vote(vote)));
        }
        let signers: Vec<usize> = (0..q).collect();
        let notarization = cert(&genesis, &keys, &signers, VoteBody::notarize(v, id));
        messages.push((leader as u16, Message::Certificate(notarization.clone())));
        for &i in &others {
            let vote = sign(&genesis, &keys, i, VoteBody::finalize(v, id));
            messages.push((i as u16, Message::Vote(vote)));
        }
        let finalization = cert(&genesis, &keys, &signers, VoteBody::finalize(v, id));
        messages.push((leader as u16, Message::Certificate(finalization)));
        parent_cert = Some(notarization);
        parent = block.header;
        parent_id = id;
    }
    Stream {
        now_ms: parent.timestamp_ms + 1,
        genesis,
        messages,
        views,
    }
}

impl Stream {
    /// A fresh follower core (`me = None`: no signer in the numbers).
    pub fn core(&self) -> Core {
        Core::new(&self.genesis, None).expect("core")
    }

    /// Feeds the whole stream to `core`; returns its committed height.
    pub fn replay(&self, mut core: Core) -> u64 {
        core.handle(self.now_ms, Input::Start);
        for (from, m) in &self.messages {
            let effects = core.handle(
                self.now_ms,
                Input::Message {
                    from: *from,
                    message: m.clone(),
                },
            );
            black_box(effects);
        }
        core.committed().height
    }
}

/// A started 4-validator follower that has already counted `input` (a notarize
/// vote); handing it `input` again takes the duplicate path.
#[derive(Debug)]
pub struct DuplicateVote {
    pub core: Core,
    pub input: Input,
    pub now_ms: u64,
}

impl DuplicateVote {
    pub fn new() -> DuplicateVote {
        let (genesis, keys) = sim_genesis(4, KEY_SEED);
        let mut core = Core::new(&genesis, None).expect("core");
        let now_ms = genesis.genesis_time_ms + 1;
        core.handle(now_ms, Input::Start);
        let vote = sign(&genesis, &keys, 2, VoteBody::notarize(1, hash(b"x")));
        let input = Input::Message {
            from: 2,
            message: Message::Vote(vote),
        };
        core.handle(now_ms, input.clone());
        DuplicateVote {
            core,
            input,
            now_ms,
        }
    }

    /// Handles the duplicate once.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        self.core.handle(self.now_ms, input)
    }
}

impl Default for DuplicateVote {
    fn default() -> Self {
        DuplicateVote::new()
    }
}

/// Entries of the realistic proposal payload.
pub const PROPOSAL_TXS: usize = 1000;
/// Bytes per entry of the realistic proposal payload.
pub const PROPOSAL_TX_BYTES: usize = 256;

/// Wire messages of a 4-validator chain.
#[derive(Debug)]
pub struct Messages {
    /// A notarize vote.
    pub vote: Message,
    /// A proposal with a 1 KiB payload and its parent's notarization.
    pub proposal_1k: Message,
    /// A proposal whose payload frames [`PROPOSAL_TXS`] entries of
    /// [`PROPOSAL_TX_BYTES`] bytes (~254 KiB), with its parent's notarization.
    pub proposal_full: Message,
}

impl Messages {
    pub fn new() -> Messages {
        let (genesis, keys) = sim_genesis(4, KEY_SEED);
        let g = genesis.block();
        let parent = child(&g.header, g.id(), 1, 1, vec![1; 64]);
        let parent_cert = cert(
            &genesis,
            &keys,
            &[0, 1, 2],
            VoteBody::notarize(1, parent.id()),
        );
        let proposal = |payload: Vec<u8>| {
            let block = child(&parent.header, parent.id(), 2, 2, payload);
            Message::Proposal(Proposal {
                vote: sign(&genesis, &keys, 2, VoteBody::notarize(2, block.id())),
                block,
                parent_certificate: Some(parent_cert.clone()),
                nullifications: vec![],
            })
        };
        let mut builder = bitcraps_node::app::PayloadBuilder::new(usize::MAX, PROPOSAL_TXS);
        for i in 0..PROPOSAL_TXS {
            let entry = [i as u8; PROPOSAL_TX_BYTES];
            assert!(builder.try_push(&entry), "payload entry {i} fits");
        }
        Messages {
            vote: Message::Vote(sign(&genesis, &keys, 3, VoteBody::notarize(2, hash(b"b")))),
            proposal_1k: proposal(vec![7; 1024]),
            proposal_full: proposal(builder.finish()),
        }
    }
}

impl Default for Messages {
    fn default() -> Self {
        Messages::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_commits_every_view_and_messages_round_trip() {
        let s = stream(4, 3);
        assert_eq!(s.replay(s.core()), 3);
        let m = Messages::new();
        for msg in [&m.vote, &m.proposal_1k, &m.proposal_full] {
            assert_eq!(Message::decode(&msg.encode()).as_ref(), Ok(msg));
        }
        let mut d = DuplicateVote::new();
        let input = d.input.clone();
        assert!(d.handle(input).is_empty(), "a duplicate has no effect");
    }
}
