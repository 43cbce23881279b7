//! Finding a committed transaction's receipt by id, and the background
//! thread that keeps the id → height index ([`TxIndex`]) up to date.
//!
//! Receipts are stored per block in the database (`R/` keys, written in the
//! block's own commit; see `app::state`). The thread follows the committed
//! height, reads each new block's receipt chunks and adds (id, height) to the
//! index file in batches, so the per-transaction random-key write never sits
//! on the consensus path. Each batch is one durable transaction, about one
//! a second ([`INTERVAL_MS`]).
//!
//! A lookup tries, in order: the height the recent transaction log recorded
//! (covers whatever the thread has not reached yet), the index, and the
//! per-transaction `r/` key of databases written by earlier versions.
//!
//! Index errors never stop the validator: the thread logs, waits and
//! retries; lookups report the error to the one caller.

use crate::app::state::{
    block_receipts_prefix, decode_receipt, decode_receipts, persisted_receipts, receipt_key,
    Receipt, MAX_RECEIPT_CHUNKS,
};
use crate::storage::{Reader, StorageError, TxIndex, MAX_INDEX_BATCH, MAX_UNSYNCED_COMMITS};
use bitcraps_crypto::Hash32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Pause between batches once caught up. Each batch rewrites every index
/// page its (random) ids land on, so fewer, larger batches cost less per
/// transaction: at 6k tx/s, 100 ms batches took ~7% of a validator's CPU, and
/// at 10k tx/s the median latency was 1.5-2x that of a node without receipts
/// (BENCHMARKS.md). The recent
/// transaction log answers lookups for what the index has not reached.
pub const INTERVAL_MS: u64 = 1_000;
/// Most blocks indexed in one batch (one index write transaction).
pub const MAX_BLOCKS_PER_BATCH: u64 = 1_024;
/// Batches stop growing at this many entries (a block is never split, so a
/// batch can exceed it by one block's receipts, at most 65,536).
pub const BATCH_ENTRIES: usize = 65_536;
/// Wait after an error before trying again.
const RETRY_MS: u64 = 1_000;

// A batch of full-size entries must fit what one index write accepts.
const _: () = assert!(BATCH_ENTRIES + crate::app::payload::MAX_TXS_PER_BLOCK <= MAX_INDEX_BATCH);

/// The receipts stored for the block at `height`, in payload order (empty
/// for a block without transactions, or not executed yet).
pub fn block_receipts(reader: &Reader, height: u64) -> Result<Vec<Receipt>, String> {
    let start = block_receipts_prefix(height);
    let end = block_receipts_prefix(height.saturating_add(1));
    let chunks = reader
        .app_range(&start, &end, MAX_RECEIPT_CHUNKS)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (_, v) in chunks {
        out.extend(decode_receipts(&v).map_err(|e| format!("receipts of block {height}: {e}"))?);
    }
    Ok(out)
}

/// The stored receipt of transaction `id`: tried at `recent_height` (from
/// the transaction log), then at the height the index gives, then under the
/// per-transaction key of earlier versions.
pub fn find_receipt(
    reader: &Reader,
    index: Option<&TxIndex>,
    recent_height: Option<u64>,
    id: &Hash32,
) -> Result<Option<Receipt>, String> {
    let find_at = |h: u64| -> Result<Option<Receipt>, String> {
        Ok(block_receipts(reader, h)?
            .into_iter()
            .find(|r| r.hash == *id))
    };
    if let Some(h) = recent_height {
        if let Some(r) = find_at(h)? {
            return Ok(Some(r));
        }
    }
    if let Some(index) = index {
        let indexed = index.get(id).map_err(|e| e.to_string())?;
        if let Some(h) = indexed.filter(|h| Some(*h) != recent_height) {
            if let Some(r) = find_at(h)? {
                return Ok(Some(r));
            }
        }
    }
    reader
        .app_get(&receipt_key(id))
        .map_err(|e| e.to_string())?
        .map(|v| decode_receipt(&v))
        .transpose()
}

/// What one [`index_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Blocks indexed.
    pub blocks: u64,
    /// The index reached the committed height.
    pub caught_up: bool,
}

/// Indexes the blocks after the index's watermark, up to the committed
/// height, at most [`MAX_BLOCKS_PER_BATCH`] blocks, in one durable index
/// transaction.
pub fn index_batch(reader: &Reader, index: &TxIndex) -> Result<Batch, String> {
    let top = reader.committed_height().map_err(|e| e.to_string())?;
    // Above the committed height only before `reconcile` ran; then this
    // waits for the chain to pass it.
    let from = index
        .indexed_height()
        .map_err(|e| e.to_string())?
        .saturating_add(1);
    let to = top.min(from.saturating_add(MAX_BLOCKS_PER_BATCH - 1));
    if from > to {
        return Ok(Batch {
            blocks: 0,
            caught_up: true,
        });
    }
    let mut entries: Vec<(Hash32, u64)> = Vec::new();
    let mut last = from - 1;
    for h in from..=to {
        let receipts = block_receipts(reader, h)?;
        // The chunks hold exactly the persisted receipts; the filter only
        // guards against a chunk written by a buggy or older node.
        entries.extend(persisted_receipts(&receipts).map(|r| (r.hash, h)));
        last = h;
        if entries.len() >= BATCH_ENTRIES {
            break;
        }
    }
    index
        .apply(&mut entries, last)
        .map_err(|e: StorageError| e.to_string())?;
    Ok(Batch {
        blocks: last - (from - 1),
        caught_up: last == top,
    })
}

/// What to do with an index whose watermark is `watermark` over a
/// database committed to `db_height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    /// At or below the database: go on from the watermark.
    Keep,
    /// Ahead by at most [`MAX_UNSYNCED_COMMITS`]: the database lost its
    /// newest, non-durable blocks in a crash after the index had read them.
    /// Move the watermark back; the blocks come back identical (they are
    /// final) and re-indexing writes the same entries.
    Rewind,
    /// Further ahead than any crash explains: the index was built from
    /// another database (restored or replaced). Start over.
    Clear,
}

/// See [`Reconcile`].
pub fn reconcile(watermark: u64, db_height: u64) -> Reconcile {
    if watermark <= db_height {
        Reconcile::Keep
    } else if watermark - db_height <= u64::from(MAX_UNSYNCED_COMMITS) {
        Reconcile::Rewind
    } else {
        Reconcile::Clear
    }
}

/// The running index thread.
#[derive(Debug)]
pub struct Indexer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Starts following `reader`'s committed blocks into `index`, after
    /// [`reconcile`] made the index agree with the database.
    pub fn start(reader: Reader, index: TxIndex) -> Result<Indexer, String> {
        let top = reader.committed_height().map_err(|e| e.to_string())?;
        let watermark = index.indexed_height().map_err(|e| e.to_string())?;
        match reconcile(watermark, top) {
            Reconcile::Keep => {}
            Reconcile::Rewind => index.rewind(top).map_err(|e| e.to_string())?,
            Reconcile::Clear => {
                tracing::warn!(
                    watermark,
                    committed_height = top,
                    "transaction index is far ahead of the database (not built from it); \
                     rebuilding it"
                );
                index.clear().map_err(|e| e.to_string())?;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("txindex".into())
            .spawn(move || run(&reader, &index, &flag))
            .map_err(|e| e.to_string())?;
        Ok(Indexer {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to exit and waits for it (at most one batch).
    /// Dropping does the same.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                tracing::error!("the transaction index thread panicked");
            }
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(reader: &Reader, index: &TxIndex, stop: &AtomicBool) {
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let wait_ms = match index_batch(reader, index) {
            // More blocks waiting: go on at once.
            Ok(b) if !b.caught_up => 0,
            Ok(_) => INTERVAL_MS,
            Err(e) => {
                tracing::warn!(error = %e, "transaction index: batch failed; retrying");
                RETRY_MS
            }
        };
        // Stop promptly; blocks not indexed yet are indexed at the next start.
        if stopping {
            return;
        }
        if wait_ms > 0 {
            std::thread::park_timeout(Duration::from_millis(wait_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_ahead_of_its_database_is_rewound_or_rebuilt() {
        assert_eq!(reconcile(0, 0), Reconcile::Keep);
        assert_eq!(reconcile(5, 9), Reconcile::Keep);
        assert_eq!(reconcile(10, 10), Reconcile::Keep);
        let crash = u64::from(MAX_UNSYNCED_COMMITS);
        assert_eq!(reconcile(10 + crash, 10), Reconcile::Rewind);
        assert_eq!(reconcile(11 + crash, 10), Reconcile::Clear);
        assert_eq!(reconcile(u64::MAX, 0), Reconcile::Clear);
    }
}
