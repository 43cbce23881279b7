//! Committed blocks: `height -> CommittedBlock` and `block id -> height`.
//!
//! The stored chain is contiguous from height 1 (genesis, height 0, is virtual
//! and never stored) and each block's parent is the block below it. A commit
//! that would break this is refused: the core commits in height order, so a gap
//! or fork means a bug or a safety violation, and storing it would hide one.

use super::codec;
use super::db::{db_err, Reader, Store, BLOCKS, BLOCK_IDS};
use super::{AppWrite, StorageError, MAX_RANGE_BLOCKS, MAX_UNSYNCED_COMMITS};
use bitcraps_consensus::{Block, CommittedBlock, Height, View};
use bitcraps_crypto::Hash32;
use redb::{Durability, ReadableTable};
use std::sync::atomic::Ordering;

impl Store {
    /// Executes `Effect::Commit`: stores `cb` (durable with the next sync, see
    /// [`Store::commit_with_state`]). Returns `false` when its height is
    /// already stored (the core re-delivers blocks after a restart).
    pub fn commit(&mut self, cb: &CommittedBlock) -> Result<bool, StorageError> {
        self.commit_with_state(cb, &[])
    }

    /// Stores `cb` and applies the application's writes for it (`None` deletes
    /// a key) in one transaction: after a crash either both are on disk or
    /// neither is. Returns `false`, applying nothing, when the height is
    /// already stored; so execute a block only if its height is above
    /// [`Reader::committed_height`].
    ///
    /// Not fsynced by itself: the flush thread (`flusher.rs`), the
    /// [`MAX_UNSYNCED_COMMITS`]th commit in a row without a flush, or
    /// [`Store::sync_blocks`] makes it durable with everything before it. A
    /// crash can therefore lose the newest blocks, and what survives is a
    /// prefix. The WAL keeps what commits them again (see `wal.rs`): they
    /// are final, so re-executing them gives the same state.
    pub fn commit_with_state(
        &mut self,
        cb: &CommittedBlock,
        writes: &[AppWrite],
    ) -> Result<bool, StorageError> {
        let height = cb.block.header.height;
        let id = cb.block.id();
        let tip_height = self.tip.map_or(0, |(h, _, _)| h);
        if height <= tip_height {
            // A repeat: check it is the block we have, without writing.
            return match self.height_of(&id)? {
                Some(h) if h == height => Ok(false),
                _ => Err(StorageError::Conflict {
                    height,
                    stored: self.block_id_at(height)?.unwrap_or(Hash32::ZERO),
                    new: id,
                }),
            };
        }
        if height != tip_height + 1 {
            return Err(StorageError::NotContiguous {
                tip: tip_height,
                got: height,
                reason: "heights must be consecutive",
            });
        }
        if let Some((_, tip_id, _)) = self.tip {
            if cb.block.header.parent != tip_id {
                return Err(StorageError::NotContiguous {
                    tip: tip_height,
                    got: height,
                    reason: "its parent is not the stored tip",
                });
            }
        }
        super::app::check_writes(writes)?;
        let bytes = codec::encode("committed block", cb)?;
        if let Some(e) = self.durable.take_error() {
            return Err(db_err(self.path(), "block flush")(e));
        }
        if self.durable.durable_view() >= self.tip_view() {
            // The flush thread caught up.
            self.unsynced_commits = 0;
        }
        let durability = if self.unsynced_commits + 1 >= MAX_UNSYNCED_COMMITS {
            Durability::Immediate
        } else {
            Durability::None
        };
        self.unsynced_commits += 1;
        self.write("block commit", durability, |txn, path| {
            let err = |e: redb::Error| db_err(path, "block commit")(e);
            let mut blocks = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
            blocks
                .insert(height, bytes.as_slice())
                .map_err(|e| err(e.into()))?;
            let mut ids = txn.open_table(BLOCK_IDS).map_err(|e| err(e.into()))?;
            ids.insert(id.0, height).map_err(|e| err(e.into()))?;
            super::app::apply_writes(txn, path, writes)
        })?;
        let view = cb.block.header.view;
        self.tip = Some((height, id, view));
        // After the commit returned: see `flusher.rs`.
        self.durable.tip_view.store(view, Ordering::Release);
        if matches!(durability, Durability::Immediate) {
            self.blocks_durable();
        }
        Ok(true)
    }
}

impl Reader {
    /// Height of the highest stored committed block (0: none yet).
    pub fn committed_height(&self) -> Result<Height, StorageError> {
        const OP: &str = "block read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let blocks = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let last = blocks.last().map_err(|e| err(e.into()))?;
        Ok(last.map_or(0, |(k, _)| k.value()))
    }

    /// The highest stored block's height and id.
    pub(crate) fn tip(&self) -> Result<Option<(Height, Hash32, View)>, StorageError> {
        let h = self.committed_height()?;
        if h == 0 {
            return Ok(None);
        }
        Ok(self
            .block_by_height(h)?
            .map(|cb| (h, cb.block.id(), cb.block.header.view)))
    }

    pub fn block_by_height(&self, height: Height) -> Result<Option<CommittedBlock>, StorageError> {
        const OP: &str = "block read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let blocks = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let Some(v) = blocks.get(height).map_err(|e| err(e.into()))? else {
            return Ok(None);
        };
        self.decode(|| format!("block at height {height}"), v.value())
            .map(Some)
    }

    /// The height of the committed block `id`, if stored.
    pub fn height_of(&self, id: &Hash32) -> Result<Option<Height>, StorageError> {
        const OP: &str = "block read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let ids = txn.open_table(BLOCK_IDS).map_err(|e| err(e.into()))?;
        let h = ids.get(id.0).map_err(|e| err(e.into()))?;
        Ok(h.map(|v| v.value()))
    }

    pub fn block_by_id(&self, id: &Hash32) -> Result<Option<CommittedBlock>, StorageError> {
        match self.height_of(id)? {
            Some(h) => self.block_by_height(h),
            None => Ok(None),
        }
    }

    fn block_id_at(&self, height: Height) -> Result<Option<Hash32>, StorageError> {
        Ok(self.block_by_height(height)?.map(|cb| cb.block.id()))
    }

    /// Executes `Effect::ServeBlocks`: block `id` and up to `max_ancestors` of
    /// its committed ancestors, child first (as `SimStorage::chain_from`).
    /// Empty when `id` is not a stored committed block.
    pub fn chain_from(&self, id: &Hash32, max_ancestors: u16) -> Result<Vec<Block>, StorageError> {
        let Some(h) = self.height_of(id)? else {
            return Ok(Vec::new());
        };
        let lo = h.saturating_sub(u64::from(max_ancestors)).max(1);
        const OP: &str = "block read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let blocks = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for row in blocks.range(lo..=h).map_err(|e| err(e.into()))?.rev() {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let x = k.value();
            let cb: CommittedBlock = self.decode(|| format!("block at height {x}"), v.value())?;
            out.push(cb.block);
        }
        Ok(out)
    }

    /// Committed blocks with heights in `from..to`, ascending, at most
    /// [`MAX_RANGE_BLOCKS`] of them (callers page on from the last height + 1).
    pub fn range(&self, from: Height, to: Height) -> Result<Vec<CommittedBlock>, StorageError> {
        const OP: &str = "block read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        if from >= to {
            return Ok(Vec::new());
        }
        let txn = self.read(OP)?;
        let blocks = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for row in blocks
            .range(from..to)
            .map_err(|e| err(e.into()))?
            .take(MAX_RANGE_BLOCKS)
        {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let h = k.value();
            out.push(self.decode(|| format!("block at height {h}"), v.value())?);
        }
        Ok(out)
    }
}
