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
use crate::params::{MAX_BLOCKS_PER_RESPONSE, MAX_BLOCK_REQUEST_ATTEMPTS, MAX_WANTED_BLOCKS};
use crate::state::Core;
use bitcraps_crypto::Hash32;

impl Core {
    /// Starts fetching `id`. Each request goes to one peer; unanswered requests
    /// are repeated every `retry_interval_ms` to the next peer in turn (see
    /// [`Core::refresh_wanted`]), so a peer that lacks the block, is byzantine or
    /// lost the message only delays us.
    pub(crate) fn want(&mut self, id: Hash32, out: &mut Vec<Effect>) {
        if self.wanted.contains_key(&id) || self.wanted.len() >= MAX_WANTED_BLOCKS {
            return;
        }
        self.wanted.insert(id, (self.now_ms, 0));
        self.request_block(id, 0, out);
    }

    fn request_block(&self, id: Hash32, attempt: u64, out: &mut Vec<Effect>) {
        let n = self.set.len() as u64;
        if n < 2 {
            return; // nobody to ask
        }
        // Start at a peer chosen by the id (spreads load), then rotate.
        let mut to = (u64::from(id.0[0]) + attempt) % n;
        if Some(to as ValidatorIndex) == self.me {
            to = (to + 1) % n;
        }
        out.push(Effect::Send {
            to: to as ValidatorIndex,
            message: Message::BlockRequest {
                id,
                max_ancestors: MAX_BLOCKS_PER_RESPONSE,
            },
        });
    }

    /// Re-asks, at most once per retry interval per block, for blocks still missing.
    pub(crate) fn refresh_wanted(&mut self, out: &mut Vec<Effect>) {
        let due: Vec<(Hash32, u64)> = self
            .wanted
            .iter()
            .filter(|(_, (last, _))| last + self.params.retry_interval_ms <= self.now_ms)
            .map(|(id, (_, attempts))| (*id, attempts + 1))
            .collect();
        for (id, attempt) in due {
            if attempt > MAX_BLOCK_REQUEST_ATTEMPTS {
                // Probably a notarized block nobody kept (an abandoned fork). If it
                // is still needed, whoever needs it will ask again.
                self.wanted.remove(&id);
                continue;
            }
            self.wanted.insert(id, (self.now_ms, attempt));
            self.request_block(id, attempt, out);
        }
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
            let asked = self.wanted.contains_key(&id) || expected == Some(id);
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
