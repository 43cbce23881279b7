//! Creating the tables, checking schema versions, and upgrading a database
//! written by an earlier version.
//!
//! Version 1 kept the WAL in the main file; version 2 moved it to its own
//! file (see `db.rs` for why). Opening a version-1 file copies its WAL into
//! the WAL file (durably), then drops it from the main file and bumps the
//! version in one transaction. A crash in between leaves a version-1 file,
//! and the next open copies again over whatever the first attempt wrote.

use super::db::{db_err, Reader, APP, BLOCKS, BLOCK_IDS, META, WAL};
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
/// Version of the WAL file's table layout.
pub const WAL_SCHEMA_VERSION: u64 = 1;

/// The main-file version that still held the WAL.
const SINGLE_FILE_VERSION: u64 = 1;

const SCHEMA_KEY: &str = "schema_version";
const WAL_NEXT_SEQ_KEY: &str = "wal_next_seq";

type WalRow = (u64, (u64, bool, Vec<u8>));

/// Creates or checks both files, upgrading a version-1 main file. Returns
/// the next WAL sequence number.
pub(crate) fn init(reader: &Reader) -> Result<u64, StorageError> {
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
    init_wal(reader)?;
    if found == Some(SINGLE_FILE_VERSION) {
        upgrade_single_file(reader)?;
    }
    next_seq(&reader.wal_db, &reader.wal_path)
}

/// Creates or checks the WAL file.
fn init_wal(reader: &Reader) -> Result<(), StorageError> {
    const OP: &str = "open";
    let path = &*reader.wal_path;
    let err = |e: redb::Error| db_err(path, OP)(e);
    let txn = reader.wal_db.begin_write().map_err(|e| err(e.into()))?;
    match read_version(&txn, path)? {
        None => {
            refuse_unversioned(is_empty(&txn, path, WAL)?, path)?;
            set_version(&txn, path, WAL_SCHEMA_VERSION)?;
        }
        Some(WAL_SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(StorageError::WrongVersion {
                path: path.to_path_buf(),
                found,
                supported: WAL_SCHEMA_VERSION,
            })
        }
    }
    txn.commit().map_err(|e| err(e.into()))
}

/// Moves a version-1 main file's WAL into the WAL file.
fn upgrade_single_file(reader: &Reader) -> Result<(), StorageError> {
    const OP: &str = "upgrade";
    let (rows, stored_next) = {
        let path = &*reader.path;
        let err = |e: redb::Error| db_err(path, OP)(e);
        let txn = reader.db.begin_read().map_err(|e| err(e.into()))?;
        let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        let mut rows: Vec<WalRow> = Vec::new();
        for row in wal.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let (view, is_tip, bytes) = v.value();
            rows.push((k.value(), (view, is_tip, bytes.to_vec())));
        }
        let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let next = meta
            .get(WAL_NEXT_SEQ_KEY)
            .map_err(|e| err(e.into()))?
            .map_or(0, |v| v.value());
        (rows, next)
    };
    {
        let path = &*reader.wal_path;
        let err = |e: redb::Error| db_err(path, OP)(e);
        let mut txn = reader.wal_db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        {
            // Over whatever an interrupted upgrade left.
            let mut wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
            wal.retain(|_, _| false).map_err(|e| err(e.into()))?;
            for (seq, (view, is_tip, bytes)) in &rows {
                wal.insert(*seq, (*view, *is_tip, bytes.as_slice()))
                    .map_err(|e| err(e.into()))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            meta.insert(WAL_NEXT_SEQ_KEY, stored_next)
                .map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))?;
    }
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

/// The next WAL sequence number: above both the stored counter and the last
/// entry (the counter keeps growing when pruning empties the table).
fn next_seq(db: &Database, path: &Path) -> Result<u64, StorageError> {
    const OP: &str = "open";
    let err = |e: redb::Error| db_err(path, OP)(e);
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
    let stored = meta
        .get(WAL_NEXT_SEQ_KEY)
        .map_err(|e| err(e.into()))?
        .map_or(0, |v| v.value());
    let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
    let after_last = wal
        .last()
        .map_err(|e| err(e.into()))?
        .map_or(0, |(k, _)| k.value().saturating_add(1));
    Ok(stored.max(after_last))
}

/// Writes the WAL's next sequence number in `txn` (with the entries it covers).
pub(crate) fn store_next_seq(
    txn: &WriteTransaction,
    path: &Path,
    next: u64,
) -> Result<(), StorageError> {
    let mut meta = txn.open_table(META).map_err(db_err(path, "WAL write"))?;
    meta.insert(WAL_NEXT_SEQ_KEY, next)
        .map_err(db_err(path, "WAL write"))?;
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
