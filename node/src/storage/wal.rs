//! The consensus write-ahead log.
//!
//! Entries are keyed by a sequence number that only grows (it is stored, so
//! it keeps growing across restarts even when pruning empties the table).
//! [`Store::append`] buffers in memory; the buffer is written, in order, by the
//! next write transaction of any kind, and [`Store::sync`] is the one that
//! fsyncs. Semantics match `SimStorage` in the simulator: unsynced appends may
//! be lost in a crash, synced ones never are, and what survives is a prefix of
//! what was appended.

use super::codec;
use super::db::{db_err, Pending, Reader, Store, WAL};
use super::StorageError;
use bitcraps_consensus::{View, WalEntry};
use redb::{Durability, ReadableTable, ReadableTableMetadata};

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
        if self.pending.is_empty() && !self.dirty {
            return Ok(());
        }
        self.write("WAL sync", Durability::Immediate, |_, _| Ok(()))
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
    /// Not fsynced: losing a prune in a crash only leaves extra entries, and the
    /// next sync makes it durable.
    pub fn prune(&mut self, below_view: View) -> Result<(), StorageError> {
        self.write("WAL prune", Durability::None, |txn, path| {
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
}

impl Reader {
    /// The durable WAL in append order, as a restarted node reads it (for
    /// `Core::restore`). Entries still buffered in the [`Store`] are not included.
    pub fn wal(&self) -> Result<Vec<WalEntry>, StorageError> {
        Ok(self.wal_with_seq()?.into_iter().map(|(_, e)| e).collect())
    }

    /// [`Reader::wal`] with each entry's sequence number.
    pub fn wal_with_seq(&self) -> Result<Vec<(u64, WalEntry)>, StorageError> {
        const OP: &str = "WAL read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for row in wal.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let seq = k.value();
            let entry: WalEntry = self.decode(|| format!("WAL entry {seq}"), v.value().2)?;
            out.push((seq, entry));
        }
        Ok(out)
    }

    /// Number of durable WAL entries.
    pub fn wal_len(&self) -> Result<u64, StorageError> {
        const OP: &str = "WAL read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        wal.len().map_err(|e| err(e.into()))
    }
}
