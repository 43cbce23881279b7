//! The consensus write-ahead log, in its own file (`wal_log.rs` has the
//! format and why it is not a redb table).
//!
//! Entries get a sequence number that only grows (the file keeps the next
//! one, so it keeps growing across restarts even when pruning empties the
//! log). [`Store::append`] buffers in memory; the buffer is written, in order,
//! by the next WAL write (a sync or a prune), and [`Store::sync`] is the one
//! that fsyncs. Semantics match `SimStorage` in the simulator: unsynced
//! appends may be lost in a crash, synced ones never are, and what survives
//! is a prefix of what was appended.
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
use super::db::{Reader, Store};
use super::wal_log::{self, Found};
use super::StorageError;
use bitcraps_consensus::{View, WalEntry};

impl Store {
    /// Buffers `entry`; returns its sequence number. Not on disk until the next
    /// [`Store::sync`] (or a prune, without fsync).
    pub fn append(&mut self, entry: &WalEntry) -> Result<u64, StorageError> {
        let bytes = codec::encode("WAL entry", entry)?;
        let is_tip = matches!(entry, WalEntry::Committed { .. });
        Ok(self.wal.append(entry.view(), is_tip, bytes))
    }

    /// Writes every buffered entry and fsyncs the WAL file: one fsync per
    /// batch. On return, everything appended so far is on stable storage. A
    /// no-op when nothing is buffered or unsynced.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.wal.sync()
    }

    /// Executes `Effect::Persist { entry, durable }`.
    pub fn persist(&mut self, entry: &WalEntry, durable: bool) -> Result<u64, StorageError> {
        let seq = self.append(entry)?;
        if durable {
            self.sync()?;
        }
        Ok(seq)
    }

    /// Executes `Effect::Prune { below_view }`: drops entries whose view is
    /// below `below_view`, and every committed-tip record but the newest (as
    /// `SimStorage::prune`). Buffered entries are written first and pruned too.
    /// Entries at or above the newest durable block's view are kept whatever
    /// `below_view` says (see the module doc).
    /// Not fsynced: losing a prune in a crash only leaves extra entries, and the
    /// next sync makes it durable.
    pub fn prune(&mut self, below_view: View) -> Result<(), StorageError> {
        let below_view = below_view.min(self.durable.durable_view());
        self.wal.prune(below_view)
    }

    /// Bytes in the WAL file, and entries still live (buffered ones included).
    pub fn wal_footprint(&self) -> (u64, usize) {
        (self.wal.file_len(), self.wal.live_len())
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

    /// [`Reader::wal`] with each entry's sequence number. Reads the file
    /// (up to a torn tail, which only the writer cuts off).
    pub fn wal_with_seq(&self) -> Result<Vec<(u64, WalEntry)>, StorageError> {
        let entries = match wal_log::read(&self.wal_path)? {
            Found::Missing => Vec::new(),
            Found::Redb => {
                return Err(StorageError::Corrupt {
                    path: self.wal_path.to_path_buf(),
                    reason:
                        "the WAL file is still in format 1 (redb); open the store to upgrade it"
                            .into(),
                })
            }
            Found::Log(replay) => replay.entries,
        };
        entries
            .into_iter()
            .map(|e| {
                let seq = e.seq;
                let entry: WalEntry =
                    codec::decode(&self.wal_path, || format!("WAL entry {seq}"), &e.bytes)?;
                Ok((seq, entry))
            })
            .collect()
    }

    /// Number of durable WAL entries.
    pub fn wal_len(&self) -> Result<u64, StorageError> {
        Ok(self.wal_with_seq()?.len() as u64)
    }
}
