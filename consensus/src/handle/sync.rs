//! Fetching blocks we know are notarized or finalized but have not seen, and
//! serving such requests from peers.
//!
//! A block is accepted from a response only if we asked for its id, or it is the
//! parent of a block accepted from the same response (responses run child first),
//! so unsolicited blocks cannot fill our memory. Ids come from certificates or
//! parent links of certified blocks, so the hash check is the whole validation.

use crate::block::Block;
use crate::genesis::ValidatorIndex;
use crate::io::{Effect, WalEntry};
use crate::message::Message;
use crate::params::{MAX_BLOCKS_PER_RESPONSE, MAX_WANTED_BLOCKS};
use crate::state::Core;
use bitcraps_crypto::Hash32;

impl Core {
    /// Starts fetching `id` from one peer; the retry timer asks everyone.
    pub(crate) fn want(&mut self, id: Hash32, out: &mut Vec<Effect>) {
        if self.wanted.contains(&id) || self.wanted.len() >= MAX_WANTED_BLOCKS {
            return;
        }
        self.wanted.insert(id);
        let n = self.set.len() as u64;
        let mut to = (u64::from(id.0[0]) % n) as ValidatorIndex;
        if Some(to) == self.me {
            to = ((u64::from(to) + 1) % n) as ValidatorIndex;
        }
        if Some(to) == self.me {
            return; // a one-validator set has nobody to ask
        }
        out.push(Effect::Send {
            to,
            message: Message::BlockRequest {
                id,
                max_ancestors: MAX_BLOCKS_PER_RESPONSE,
            },
        });
    }

    pub(super) fn on_block_request(
        &mut self,
        from: ValidatorIndex,
        id: Hash32,
        max_ancestors: u16,
        out: &mut Vec<Effect>,
    ) {
        if Some(from) == self.me {
            return;
        }
        let max = max_ancestors.min(MAX_BLOCKS_PER_RESPONSE);
        let Some(first) = self.blocks.get(&id) else {
            out.push(Effect::ServeBlocks {
                to: from,
                id,
                max_ancestors: max,
            });
            return;
        };
        let mut chain = vec![first.clone()];
        while chain.len() <= max as usize {
            let parent = chain[chain.len() - 1].header.parent;
            match self.blocks.get(&parent) {
                Some(b) => chain.push(b.clone()),
                None => break,
            }
        }
        out.push(Effect::Send {
            to: from,
            message: Message::Blocks(chain),
        });
    }

    pub(super) fn on_blocks(&mut self, blocks: Vec<Block>, out: &mut Vec<Effect>) {
        let mut expected: Option<Hash32> = None;
        let mut accepted = false;
        for block in blocks {
            let id = block.id();
            let asked = self.wanted.contains(&id) || expected == Some(id);
            if !asked
                || block.header.height <= self.committed.height
                || block.payload.len() > self.params.max_payload_bytes as usize
                || !block.payload_matches()
            {
                break;
            }
            self.wanted.remove(&id);
            expected = Some(block.header.parent);
            if self.block_info(&block.header.parent).is_some() {
                expected = None;
            }
            if self.blocks.insert(id, block.clone()).is_none() {
                out.push(Effect::Persist {
                    entry: WalEntry::Block(block),
                    durable: false,
                });
            }
            accepted = true;
        }
        if accepted {
            self.try_commit(out);
            self.try_propose(out);
            self.try_vote(out);
        }
    }
}
