//! The transaction index: transaction id → height of the block that holds
//! its stored receipt, in a redb file of its own next to the database.
//!
//! Why not in the database: ids are random, so each entry lands in its own
//! B-tree leaf. Written inside every block's commit that was one dirty 4 KiB
//! page per transaction, and the vote path's fsync flushed them all (6.6 KB
//! written per 133-byte transaction, the largest cost on the commit path; see
//! BENCHMARKS.md). Here a background thread (`engine::indexer`) writes it in
//! large batches sorted by id, and consensus never waits for it: a separate
//! file has its own write lock and its own fsyncs.
//!
//! It is derived data. Every entry can be rebuilt from the per-block receipts
//! in the database, and the watermark (`indexed_height`) is committed in the
//! same transaction as the entries up to it, so after a crash the file is the
//! state after some batch and indexing resumes above it. A file written for
//! another chain is emptied on open.
//!
//! Tables: `meta` (`format`, `indexed_height`: u64; `chain`: the chain id
//! bytes) and `tx_height` (32-byte id → u64 height).

use super::db::db_err;
use super::StorageError;
use bitcraps_crypto::Hash32;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const TX_HEIGHT: TableDefinition<[u8; 32], u64> = TableDefinition::new("tx_height");

const FORMAT_KEY: &str = "format";
const CHAIN_KEY: &str = "chain";
const INDEXED_KEY: &str = "indexed_height";
const FORMAT: u64 = 1;

/// Page cache of the index file: lookups are rare next to inserts, and the
/// inserts of a batch are sorted, so a small cache is enough.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Most entries one [`TxIndex::apply`] call takes (a batch is one write
/// transaction, held in memory until it commits).
pub const MAX_INDEX_BATCH: usize = 262_144;

/// Handle to the index file. Clones share the file: the indexer thread
/// writes, HTTP lookups read.
#[derive(Clone)]
pub struct TxIndex {
    db: Arc<Database>,
    path: Arc<Path>,
}

impl std::fmt::Debug for TxIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxIndex").field("path", &self.path).finish()
    }
}

impl TxIndex {
    /// Opens (creating if needed) the index at `path` for chain `chain_id`.
    /// An index of another chain or format is emptied, and everything is
    /// indexed again from height 1.
    pub fn open(path: impl AsRef<Path>, chain_id: &str) -> Result<TxIndex, StorageError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES);
        let db = builder.create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StorageError::AlreadyOpen {
                path: path.to_path_buf(),
            },
            e => StorageError::Open {
                path: path.to_path_buf(),
                source: Box::new(e.into()),
            },
        })?;
        let index = TxIndex {
            db: Arc::new(db),
            path,
        };
        index.init(chain_id)?;
        Ok(index)
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&self, chain_id: &str) -> Result<(), StorageError> {
        const OP: &str = "index open";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let same = |key: &str, want: &[u8]| -> Result<bool, StorageError> {
                let got = meta.get(key).map_err(|e| err(e.into()))?;
                Ok(got.is_some_and(|v| v.value() == want))
            };
            let matches =
                same(FORMAT_KEY, &FORMAT.to_le_bytes())? && same(CHAIN_KEY, chain_id.as_bytes())?;
            if !matches {
                // Derived data: start over rather than serve another chain's heights.
                empty_entries(&txn).map_err(err)?;
                meta.insert(FORMAT_KEY, &FORMAT.to_le_bytes()[..])
                    .map_err(|e| err(e.into()))?;
                meta.insert(CHAIN_KEY, chain_id.as_bytes())
                    .map_err(|e| err(e.into()))?;
                set_watermark(&mut meta, 0).map_err(err)?;
            }
        }
        txn.open_table(TX_HEIGHT).map_err(|e| err(e.into()))?;
        txn.commit().map_err(|e| err(e.into()))
    }

    /// Moves the watermark back to `height` (entries stay; blocks above it
    /// are indexed again).
    pub fn rewind(&self, height: u64) -> Result<(), StorageError> {
        self.write_meta("index rewind", false, height)
    }

    /// Drops every entry and the watermark: everything is indexed again.
    pub fn clear(&self) -> Result<(), StorageError> {
        self.write_meta("index clear", true, 0)
    }

    fn write_meta(&self, op: &'static str, clear: bool, height: u64) -> Result<(), StorageError> {
        let err = |e: redb::Error| db_err(&self.path, op)(e);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        if clear {
            empty_entries(&txn).map_err(err)?;
        }
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            set_watermark(&mut meta, height).map_err(err)?;
        }
        txn.commit().map_err(|e| err(e.into()))
    }

    /// Every block up to this height has its receipts indexed.
    pub fn indexed_height(&self) -> Result<u64, StorageError> {
        const OP: &str = "index read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let v = meta.get(INDEXED_KEY).map_err(|e| err(e.into()))?;
        let bytes = v.as_ref().map(|v| v.value()).unwrap_or(&[0; 8]);
        <[u8; 8]>::try_from(bytes)
            .map(u64::from_le_bytes)
            .map_err(|_| StorageError::Corrupt {
                path: self.path.to_path_buf(),
                reason: format!("{INDEXED_KEY} is {} bytes, expected 8", bytes.len()),
            })
    }

    /// The height of the block holding `id`'s receipt, if indexed.
    pub fn get(&self, id: &Hash32) -> Result<Option<u64>, StorageError> {
        const OP: &str = "index read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(TX_HEIGHT).map_err(|e| err(e.into()))?;
        let v = table.get(id.0).map_err(|e| err(e.into()))?;
        Ok(v.map(|v| v.value()))
    }

    /// Stores `entries` (id, height), given in height order, and moves the
    /// watermark to `indexed_height`, in one durable transaction. A later
    /// entry for an id replaces an earlier one (its newest stored receipt
    /// wins).
    pub fn apply(
        &self,
        entries: &mut [(Hash32, u64)],
        indexed_height: u64,
    ) -> Result<(), StorageError> {
        const OP: &str = "index write";
        if entries.len() > MAX_INDEX_BATCH {
            return Err(StorageError::TooMany {
                what: "transaction index batch",
                len: entries.len(),
                max: MAX_INDEX_BATCH,
            });
        }
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        // Sorted inserts touch each leaf once per batch. Stable, so entries
        // for one id stay in height order and the last insert wins.
        entries.sort_by_key(|e| e.0);
        let mut txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        {
            let mut table = txn.open_table(TX_HEIGHT).map_err(|e| err(e.into()))?;
            for (id, height) in entries.iter() {
                table.insert(id.0, *height).map_err(|e| err(e.into()))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            set_watermark(&mut meta, indexed_height).map_err(err)?;
        }
        txn.commit().map_err(|e| err(e.into()))
    }
}

/// Drops every (id, height) entry and recreates the empty table.
fn empty_entries(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.delete_table(TX_HEIGHT)?;
    txn.open_table(TX_HEIGHT)?;
    Ok(())
}

/// Every block up to `height` is indexed (written with the entries it covers).
fn set_watermark(meta: &mut redb::Table<&str, &[u8]>, height: u64) -> Result<(), redb::Error> {
    meta.insert(INDEXED_KEY, &height.to_le_bytes()[..])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> Hash32 {
        Hash32([i; 32])
    }

    #[test]
    fn later_heights_win_and_the_watermark_moves_with_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let index = TxIndex::open(dir.path().join("txindex"), "chain-a").unwrap();
        assert_eq!(index.indexed_height().unwrap(), 0);
        // Given in height order; id 1 twice: the later one wins.
        let mut batch = vec![(id(9), 3), (id(1), 4), (id(5), 4), (id(1), 7)];
        index.apply(&mut batch, 7).unwrap();
        assert_eq!(index.get(&id(1)).unwrap(), Some(7));
        assert_eq!(index.get(&id(5)).unwrap(), Some(4));
        assert_eq!(index.get(&id(9)).unwrap(), Some(3));
        assert_eq!(index.get(&id(2)).unwrap(), None);
        assert_eq!(index.indexed_height().unwrap(), 7);
        // Indexing the same blocks again (after a crash) changes nothing.
        let mut again = vec![(id(1), 4), (id(5), 4), (id(1), 7)];
        index.apply(&mut again, 7).unwrap();
        assert_eq!(index.get(&id(1)).unwrap(), Some(7));
    }

    #[test]
    fn survives_reopen_and_is_emptied_for_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txindex");
        {
            let index = TxIndex::open(&path, "chain-a").unwrap();
            index.apply(&mut [(id(1), 2)], 5).unwrap();
        }
        let index = TxIndex::open(&path, "chain-a").unwrap();
        assert_eq!(index.get(&id(1)).unwrap(), Some(2));
        assert_eq!(index.indexed_height().unwrap(), 5);
        drop(index);
        let other = TxIndex::open(&path, "chain-b").unwrap();
        assert_eq!(other.get(&id(1)).unwrap(), None);
        assert_eq!(other.indexed_height().unwrap(), 0);
        other.apply(&mut [(id(2), 3)], 4).unwrap();
        other.rewind(2).unwrap();
        assert_eq!(other.indexed_height().unwrap(), 2);
        assert_eq!(
            other.get(&id(2)).unwrap(),
            Some(3),
            "a rewind keeps entries"
        );
        other.clear().unwrap();
        assert_eq!(other.indexed_height().unwrap(), 0);
        assert_eq!(other.get(&id(2)).unwrap(), None);
    }

    #[test]
    fn refuses_an_oversize_batch_and_a_second_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txindex");
        let index = TxIndex::open(&path, "c").unwrap();
        let mut big = vec![(id(0), 1); MAX_INDEX_BATCH + 1];
        assert!(matches!(
            index.apply(&mut big, 1),
            Err(StorageError::TooMany { .. })
        ));
        assert_eq!(index.indexed_height().unwrap(), 0);
        assert!(matches!(
            TxIndex::open(&path, "c"),
            Err(StorageError::AlreadyOpen { .. })
        ));
    }
}
