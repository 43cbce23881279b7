//! Executing committed blocks: the bridge between the consensus core's
//! `Effect::Commit` and the application state machine ([`crate::app`]).
//!
//! A committed block is executed exactly once, and its state changes are
//! written in the same storage transaction as the block
//! ([`Store::commit_with_state`]), so the stored state is always the result of
//! executing exactly the stored blocks. After a restart the state is rebuilt
//! from the stored entries, and blocks the core re-delivers (at or below the
//! executed height) are recognised and skipped.

use super::EngineError;
use crate::app::game::roll_key;
use crate::app::state::{
    block_receipts_key, receipt_key, root_key, AppState, BlockContext, BlockResult, StateWrite,
};
use crate::app::verify::VerifiedCache;
use crate::app::AppGenesis;
use crate::storage::{AppEntry, Reader, StorageError, Store};
use bitcraps_consensus::CommittedBlock;
use bitcraps_crypto::Hash32;

/// Transactions whose signatures we verified, remembered so a transaction is
/// verified once per node (at admission or at execution, never both).
pub const VERIFIED_CACHE_ENTRIES: usize = 65_536;
/// Application entries read per storage call while loading the state.
const LOAD_PAGE: usize = 4_096;

/// The executed application state and what it needs to execute more blocks.
#[derive(Debug)]
pub(super) struct Executor {
    chain_id: String,
    pub(super) state: AppState,
    pub(super) cache: VerifiedCache,
    /// The genesis state, written together with the first block (so a node
    /// that never committed anything has nothing to clean up).
    genesis_writes: Option<Vec<StateWrite>>,
    /// Store receipts ([`super::EngineConfig::index_receipts`]).
    pub(super) index_receipts: bool,
}

impl Executor {
    /// Loads the executed state from `reader`, or starts from `genesis` when
    /// nothing was executed yet.
    pub(super) fn open(
        reader: &Reader,
        genesis: &AppGenesis,
        chain_id: &str,
    ) -> Result<Executor, EngineError> {
        let mut entries = load_entries(reader)?;
        if !entries.is_empty() {
            // The root at the executed height lets `load` check the rebuilt tree.
            let height = reader.committed_height()?;
            if let Some(root) = reader.app_get(&root_key(height))? {
                entries.push((root_key(height), root));
            }
        }
        let (state, genesis_writes) = if entries.is_empty() {
            let state = AppState::genesis(genesis);
            let writes = state.genesis_writes();
            (state, Some(writes))
        } else {
            let state = AppState::load(genesis, entries)
                .map_err(|e| EngineError::Config(format!("stored application state: {e}")))?;
            (state, None)
        };
        let stored = reader.committed_height()?;
        if state.height() != stored {
            return Err(EngineError::Config(format!(
                "stored application state is at height {} but the block store at {stored}",
                state.height()
            )));
        }
        Ok(Executor {
            chain_id: chain_id.to_owned(),
            state,
            cache: VerifiedCache::new(VERIFIED_CACHE_ENTRIES),
            genesis_writes,
            index_receipts: true,
        })
    }

    /// Executes `cb` if it is the next height and stores it with its state
    /// changes; stores nothing new for a re-delivered block. Returns the
    /// execution result for a newly executed block.
    pub(super) fn commit(
        &mut self,
        store: &mut Store,
        cb: &CommittedBlock,
    ) -> Result<Option<BlockResult>, EngineError> {
        let height = cb.block.header.height;
        if height <= self.state.height() {
            store.commit(cb)?;
            return Ok(None);
        }
        // A wrong height here is a bug (the store and the state disagree);
        // stopping is safer than executing out of order.
        let result = self
            .state
            .execute_block(
                BlockContext {
                    chain_id: &self.chain_id,
                    height,
                    timestamp_ms: cb.block.header.timestamp_ms,
                    store_receipts: self.index_receipts,
                },
                &cb.block.payload,
                &mut self.cache,
            )
            .map_err(|e| EngineError::Task(format!("executing block {height}: {e}")))?;
        match self.genesis_writes.take() {
            Some(mut genesis) => {
                genesis.extend_from_slice(&result.writes);
                store.commit_with_state(cb, &genesis)?;
            }
            None => {
                store.commit_with_state(cb, &result.writes)?;
            }
        }
        Ok(Some(result))
    }
}

/// Every stored application entry except the receipts, the per-height roots
/// and the roll history, which only lookups need (skipping them keeps start-up
/// time independent of history length; the caller adds the current root).
fn load_entries(reader: &Reader) -> Result<Vec<AppEntry>, StorageError> {
    let skip = [
        prefix_of(&receipt_key(&Hash32::ZERO), 32),
        prefix_of(&block_receipts_key(0, 0), 10),
        prefix_of(&root_key(0), 8),
        prefix_of(&roll_key(0, 0), 16),
    ];
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = reader.app_scan(after.as_deref(), LOAD_PAGE)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (k, v) in page {
            match skip.iter().find(|p| k.starts_with(p)) {
                // Jump past the whole skipped range: every key in it is the
                // prefix followed by a fixed-length suffix below this bound.
                Some(p) => {
                    let mut bound = p.clone();
                    bound.extend_from_slice(&[0xff; 64]);
                    after = Some(bound);
                    break;
                }
                None => out.push((k, v)),
            }
        }
    }
    Ok(out)
}

/// `key` without its last `suffix_len` bytes.
fn prefix_of(key: &[u8], suffix_len: usize) -> Vec<u8> {
    key[..key.len().saturating_sub(suffix_len)].to_vec()
}
