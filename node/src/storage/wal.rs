//! The consensus write-ahead log, in its own file.
//!
//! Entries are keyed by a sequence number that only grows (it is stored, so
//! it keeps growing across restarts even when pruning empties the table).
//! [`Store::append`] buffers in memory; the buffer is written, in order, by the
//! next WAL write (a sync or a prune), and [`Store::sync`] is the one that
//! fsyncs. Semantics match `SimStorage` in the simulator: unsynced appends may
//! be lost in a crash, synced ones never are, and what survives is a prefix of
//! what was appended.
//!
//! Two differences from the simulator follow from blocks living in the other
//! file, made durable later than they are committed (`flusher.rs`):
//!
//! * [`Store::prune`] never drops entries at or above the view of the newest
//!   durable block, so the entries that commit the blocks a crash may lose
//!   are still there after it.
//! * A durable committed-tip entry can be above the blocks that survived a
//!   crash; [`Reader::restore_log`] drops such tips and adds the stored tip,
//!   so the restored core commits (again) exactly the blocks the store lacks.

use super::codec;
use super::db::{db_err, transact, Pending, Reader, Store, WAL};
use super::schema::store_next_seq;
use super::StorageError;
use bitcraps_consensus::{View, WalEntry};
use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};
use std::path::Path;

impl Store {
    /// Buffers `entry`; returns its sequence number. Not on disk until the next
    /// [`Store::sync`] (or another write transaction, without fsync).
    pub fn append(&mut self, entry: &WalEntry) -> Result<u64, StorageError> {
        let bytes = codec::encode("WAL entry", entry)?;
        let seq = self.next_seq;
        self.pending.push(Pending {
            seq,
            view: entry.view(),
            is_tip: matches!(entry, WalEntry::Committed { .. }),
            bytes,
        });
        self.next_seq = seq.saturating_add(1);
        Ok(seq)
    }

    /// Writes every buffered entry in one transaction and fsyncs it
    /// (`Durability::Immediate`): one fsync per batch. On return, everything
    /// appended so far is on stable storage. A no-op when nothing is buffered
    /// or unsynced.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() && !self.wal_dirty {
            return Ok(());
        }
        self.write_wal("WAL sync", Durability::Immediate, |_, _| Ok(()))
    }

    /// Executes `Effect::Persist { entry, durable }`.
    pub fn persist(&mut self, entry: &WalEntry, durable: bool) -> Result<u64, StorageError> {
        let seq = self.append(entry)?;
        if durable {
            self.sync()?;
        }
        Ok(seq)
    }

    /// Executes `Effect::Prune { below_view }`: deletes entries whose view is
    /// below `below_view`, and every committed-tip record but the newest (as
    /// `SimStorage::prune`). Buffered entries are written first and pruned too.
    /// Entries at or above the newest durable block's view are kept whatever
    /// `below_view` says (see the module doc).
    /// Not fsynced: losing a prune in a crash only leaves extra entries, and the
    /// next sync makes it durable.
    pub fn prune(&mut self, below_view: View) -> Result<(), StorageError> {
        let below_view = below_view.min(self.durable.durable_view());
        self.write_wal("WAL prune", Durability::None, |txn, path| {
            let err = |e: redb::Error| db_err(path, "WAL prune")(e);
            let mut wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
            // The newest committed-tip record, which is always kept.
            let mut newest_tip = None;
            for row in wal.iter().map_err(|e| err(e.into()))?.rev() {
                let (k, v) = row.map_err(|e| err(e.into()))?;
                if v.value().1 {
                    newest_tip = Some(k.value());
                    break;
                }
            }
            wal.retain(|seq, (view, is_tip, _)| {
                if is_tip {
                    Some(seq) == newest_tip
                } else {
                    view >= below_view
                }
            })
            .map_err(|e| err(e.into()))?;
            Ok(())
        })
    }

    /// Runs `f` in one WAL-file transaction that first writes every pending
    /// entry, then commits with `durability`. Pending entries are dropped
    /// from memory only once the commit succeeded.
    fn write_wal(
        &mut self,
        op: &'static str,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction, &Path) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let (pending, next_seq) = (&self.pending, self.next_seq);
        let (db, path) = (&self.reader.wal_db, &*self.reader.wal_path);
        transact(db, path, op, durability, self.options, |txn, path| {
            if !pending.is_empty() {
                let mut wal = txn.open_table(WAL).map_err(db_err(path, op))?;
                for p in pending {
                    wal.insert(p.seq, (p.view, p.is_tip, p.bytes.as_slice()))
                        .map_err(db_err(path, op))?;
                }
                drop(wal);
                store_next_seq(txn, path, next_seq)?;
            }
            f(txn, path)
        })?;
        self.pending.clear();
        self.wal_dirty = matches!(durability, Durability::None);
        Ok(())
    }
}

impl Reader {
    /// The durable WAL in append order, as a restarted node reads it (for
    /// `Core::restore`). Entries still buffered in the [`Store`] are not included.
    pub fn wal(&self) -> Result<Vec<WalEntry>, StorageError> {
        Ok(self.wal_with_seq()?.into_iter().map(|(_, e)| e).collect())
    }

    /// The log a restarted core replays (`Core::restore`): the durable WAL
    /// without committed tips above the stored chain (their blocks did not
    /// survive), then the stored chain's tip. The core then commits again
    /// exactly the blocks the store lacks, and never skips one.
    pub fn restore_log(&self) -> Result<Vec<WalEntry>, StorageError> {
        let stored = self.committed_height()?;
        let mut log: Vec<WalEntry> = self
            .wal()?
            .into_iter()
            .filter(|e| !matches!(e, WalEntry::Committed { height, .. } if *height > stored))
            .collect();
        if let Some(cb) = self.block_by_height(stored)? {
            let header = &cb.block.header;
            log.push(WalEntry::Committed {
                view: header.view,
                height: stored,
                id: cb.block.id(),
                timestamp_ms: header.timestamp_ms,
            });
        }
        Ok(log)
    }

    /// [`Reader::wal`] with each entry's sequence number.
    pub fn wal_with_seq(&self) -> Result<Vec<(u64, WalEntry)>, StorageError> {
        const OP: &str = "WAL read";
        let err = |e: redb::Error| db_err(&self.wal_path, OP)(e);
        let txn = self.wal_db.begin_read().map_err(|e| err(e.into()))?;
        let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for row in wal.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let seq = k.value();
            let entry: WalEntry =
                codec::decode(&self.wal_path, || format!("WAL entry {seq}"), v.value().2)?;
            out.push((seq, entry));
        }
        Ok(out)
    }

    /// Number of durable WAL entries.
    pub fn wal_len(&self) -> Result<u64, StorageError> {
        const OP: &str = "WAL read";
        let err = |e: redb::Error| db_err(&self.wal_path, OP)(e);
        let txn = self.wal_db.begin_read().map_err(|e| err(e.into()))?;
        let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        wal.len().map_err(|e| err(e.into()))
    }
}
