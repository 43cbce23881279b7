//! Creating the tables, checking schema versions, and upgrading a database
//! written by an earlier version.
//!
//! Main file: version 1 kept the WAL in it; version 2 moved the WAL to its
//! own file (see `db.rs` for why). Opening a version-1 file writes its WAL
//! to the WAL file (durably, replacing whatever is there), then drops it from
//! the main file and bumps the version in one transaction. A crash in between
//! leaves a version-1 file, and the next open writes the WAL file again.
//!
//! WAL file: format 1 was a redb database (a `wal` table keyed by sequence
//! number, the next one in `meta`); format 2 is the append-only log of
//! `wal_log.rs`. A format-1 file is read and replaced by a format-2 file in
//! one rename.

use super::db::{db_err, open_db, Reader, StoreOptions, APP, BLOCKS, BLOCK_IDS, META, WAL};
use super::wal_log::{self, Entry, WalLog};
use super::StorageError;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use std::path::Path;

/// Version of the main file's table layout. Bumped on any incompatible change;
/// a file with another version (other than one this code upgrades) is refused
/// with [`StorageError::WrongVersion`].
pub const SCHEMA_VERSION: u64 = 2;
/// Version of the WAL file's format (the log header's version).
pub const WAL_SCHEMA_VERSION: u64 = wal_log::LOG_VERSION as u64;

/// The main-file version that still held the WAL.
const SINGLE_FILE_VERSION: u64 = 1;
/// The WAL-file format that was a redb database.
const REDB_WAL_VERSION: u64 = 1;
/// Page cache for reading a format-1 WAL file once.
const REDB_WAL_CACHE_BYTES: usize = 16 * 1024 * 1024;

const SCHEMA_KEY: &str = "schema_version";
const WAL_NEXT_SEQ_KEY: &str = "wal_next_seq";

/// Creates or checks both files, upgrading earlier layouts, and opens the
/// WAL for writing.
pub(crate) fn init(reader: &Reader, options: StoreOptions) -> Result<WalLog, StorageError> {
    const OP: &str = "open";
    let path = &*reader.path;
    let err = |e: redb::Error| db_err(path, OP)(e);
    let found = {
        let txn = reader.db.begin_write().map_err(|e| err(e.into()))?;
        let found = read_version(&txn, path)?;
        match found {
            None => {
                let all_empty = is_empty(&txn, path, BLOCKS)?
                    && is_empty(&txn, path, BLOCK_IDS)?
                    && is_empty(&txn, path, APP)?;
                refuse_unversioned(all_empty, path)?;
                set_version(&txn, path, SCHEMA_VERSION)?;
            }
            Some(SCHEMA_VERSION | SINGLE_FILE_VERSION) => {}
            Some(found) => {
                return Err(StorageError::WrongVersion {
                    path: path.to_path_buf(),
                    found,
                    supported: SCHEMA_VERSION,
                })
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        found
    };
    if found == Some(SINGLE_FILE_VERSION) {
        upgrade_single_file(reader)?;
    }
    let wal_path = &*reader.wal_path;
    WalLog::open(wal_path, || read_redb_wal(wal_path, options))
}

/// The rows of a redb `wal` table and the next sequence number: above both
/// the stored counter and the last row (the counter keeps growing when
/// pruning empties the table).
fn wal_rows(txn: &redb::ReadTransaction, path: &Path) -> Result<(Vec<Entry>, u64), StorageError> {
    const OP: &str = "upgrade";
    let err = |e: redb::Error| db_err(path, OP)(e);
    let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
    let mut rows = Vec::new();
    for row in wal.iter().map_err(|e| err(e.into()))? {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        let (view, is_tip, bytes) = v.value();
        rows.push(Entry {
            seq: k.value(),
            view,
            is_tip,
            bytes: bytes.to_vec(),
        });
    }
    let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
    let stored = meta
        .get(WAL_NEXT_SEQ_KEY)
        .map_err(|e| err(e.into()))?
        .map_or(0, |v| v.value());
    let after_last = rows.last().map_or(0, |e| e.seq.saturating_add(1));
    Ok((rows, stored.max(after_last)))
}

/// Reads a format-1 (redb) WAL file.
fn read_redb_wal(path: &Path, options: StoreOptions) -> Result<(Vec<Entry>, u64), StorageError> {
    let db: Database = open_db(path, REDB_WAL_CACHE_BYTES, options)?;
    let err = |e: redb::Error| db_err(path, "upgrade")(e);
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
    match meta
        .get(SCHEMA_KEY)
        .map_err(|e| err(e.into()))?
        .map(|v| v.value())
    {
        Some(REDB_WAL_VERSION) => {}
        found => {
            return Err(StorageError::WrongVersion {
                path: path.to_path_buf(),
                found: found.unwrap_or(0),
                supported: REDB_WAL_VERSION,
            })
        }
    }
    wal_rows(&txn, path)
}

/// Moves a version-1 main file's WAL into the WAL file.
fn upgrade_single_file(reader: &Reader) -> Result<(), StorageError> {
    const OP: &str = "upgrade";
    let (rows, next_seq) = {
        let path = &*reader.path;
        let txn = reader.db.begin_read().map_err(|e| db_err(path, OP)(e))?;
        wal_rows(&txn, path)?
    };
    // Over whatever an interrupted upgrade left.
    wal_log::write_fresh(&reader.wal_path, &rows, next_seq)?;
    let path = &*reader.path;
    let err = |e: redb::Error| db_err(path, OP)(e);
    let mut txn = reader.db.begin_write().map_err(|e| err(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| err(e.into()))?;
    txn.delete_table(WAL).map_err(|e| err(e.into()))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.remove(WAL_NEXT_SEQ_KEY).map_err(|e| err(e.into()))?;
    }
    set_version(&txn, path, SCHEMA_VERSION)?;
    txn.commit().map_err(|e| err(e.into()))?;
    tracing::info!(
        path = %path.display(),
        entries = rows.len(),
        "moved the WAL to its own file (storage schema 1 -> 2)"
    );
    Ok(())
}

/// The schema version in `txn`'s file; creates the `meta` table. Read before
/// the other tables are opened: another version may have given them other
/// types.
fn read_version(txn: &WriteTransaction, path: &Path) -> Result<Option<u64>, StorageError> {
    let err = |e: redb::Error| db_err(path, "open")(e);
    let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
    let version = meta.get(SCHEMA_KEY).map_err(|e| err(e.into()))?;
    Ok(version.map(|v| v.value()))
}

fn set_version(txn: &WriteTransaction, path: &Path, version: u64) -> Result<(), StorageError> {
    let err = |e: redb::Error| db_err(path, "open")(e);
    let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
    meta.insert(SCHEMA_KEY, version)
        .map_err(|e| err(e.into()))?;
    Ok(())
}

/// Opens (creating) the table `def` and tells whether it holds nothing.
fn is_empty<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &WriteTransaction,
    path: &Path,
    def: TableDefinition<K, V>,
) -> Result<bool, StorageError> {
    let err = |e: redb::Error| db_err(path, "open")(e);
    let table = txn.open_table(def).map_err(|e| err(e.into()))?;
    table.is_empty().map_err(|e| err(e.into()))
}

/// A file without a version must not hold data: refusing it beats guessing
/// what wrote it.
fn refuse_unversioned(all_empty: bool, path: &Path) -> Result<(), StorageError> {
    if all_empty {
        return Ok(());
    }
    Err(StorageError::Corrupt {
        path: path.to_path_buf(),
        reason: "tables hold data but the schema version is missing".into(),
    })
}
