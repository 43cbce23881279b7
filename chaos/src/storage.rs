//! Simulated durable storage with crash semantics: appends are buffered until
//! `sync`, and a crash drops whatever was not synced. Committed blocks are written
//! durably at commit (the application's store). The signing guard's state lives
//! in its own store (a shared `MemoryGuardStore`) that survives crashes, like the
//! guard file outside update slots in production.

use bitcraps_consensus::{Block, CommittedBlock, Height, View, WalEntry};
use bitcraps_crypto::Hash32;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct SimStorage {
    durable: Vec<WalEntry>,
    unsynced: Vec<WalEntry>,
    committed: BTreeMap<Height, CommittedBlock>,
    by_id: BTreeMap<Hash32, Height>,
    pub syncs: u64,
}

impl SimStorage {
    pub fn append(&mut self, entry: WalEntry) {
        self.unsynced.push(entry);
    }

    pub fn sync(&mut self) {
        self.durable.append(&mut self.unsynced);
        self.syncs += 1;
    }

    /// Power loss: unsynced appends vanish.
    pub fn crash(&mut self) {
        self.unsynced.clear();
    }

    pub fn prune(&mut self, below_view: View) {
        self.durable
            .retain(|e| e.view() >= below_view || matches!(e, WalEntry::Committed { .. }));
        // Keep only the newest committed-tip record.
        let last_tip = self
            .durable
            .iter()
            .rposition(|e| matches!(e, WalEntry::Committed { .. }));
        let mut i = 0;
        self.durable.retain(|e| {
            let keep = !matches!(e, WalEntry::Committed { .. }) || Some(i) == last_tip;
            i += 1;
            keep
        });
    }

    /// The WAL as a restarted node reads it.
    pub fn wal(&self) -> Vec<WalEntry> {
        self.durable.clone()
    }

    pub fn wal_len(&self) -> usize {
        self.durable.len() + self.unsynced.len()
    }

    /// Stores a committed block; repeats after a restart are ignored.
    pub fn commit(&mut self, cb: &CommittedBlock) -> bool {
        let h = cb.block.header.height;
        if self.committed.contains_key(&h) {
            return false;
        }
        self.by_id.insert(cb.block.id(), h);
        self.committed.insert(h, cb.clone());
        true
    }

    pub fn committed_height(&self) -> Height {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    pub fn committed(&self) -> &BTreeMap<Height, CommittedBlock> {
        &self.committed
    }

    /// `id` and up to `max_ancestors` of its committed ancestors, child first.
    pub fn chain_from(&self, id: &Hash32, max_ancestors: u16) -> Vec<Block> {
        let Some(&h) = self.by_id.get(id) else {
            return Vec::new();
        };
        let lo = h.saturating_sub(max_ancestors as u64).max(1);
        (lo..=h)
            .rev()
            .filter_map(|x| self.committed.get(&x).map(|c| c.block.clone()))
            .collect()
    }
}
