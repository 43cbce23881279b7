//! Opening the database, its tables and schema version, and the write path
//! every change goes through.
//!
//! Tables:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | name | u64 (`schema_version`, `wal_next_seq`) |
//! | `wal` | sequence number | (view, is committed tip, postcard `WalEntry`) |
//! | `blocks` | height | postcard `CommittedBlock` |
//! | `block_ids` | block id | height |
//! | `app` | application key | application value |
//!
//! The WAL row carries the entry's view and kind next to its bytes so pruning
//! never has to decode blocks.

use super::codec;
use super::StorageError;
use bitcraps_consensus::{Height, View};
use bitcraps_crypto::Hash32;
use redb::{
    Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use std::path::Path;
use std::sync::Arc;

/// Version of the table layout. Bumped on any incompatible change; a file with
/// another version is refused with [`StorageError::WrongVersion`].
pub const SCHEMA_VERSION: u64 = 1;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const WAL: TableDefinition<u64, (u64, bool, &[u8])> = TableDefinition::new("wal");
pub(crate) const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
pub(crate) const BLOCK_IDS: TableDefinition<[u8; 32], u64> = TableDefinition::new("block_ids");
pub(crate) const APP: TableDefinition<&[u8], &[u8]> = TableDefinition::new("app");

const SCHEMA_KEY: &str = "schema_version";
pub(crate) const WAL_NEXT_SEQ_KEY: &str = "wal_next_seq";

/// redb's page cache. redb's default (1 GiB) lets a validator's memory grow
/// with its database for hours: a 10-minute soak grew ~17 MiB/min on every
/// node. Recent blocks and the WAL are what is read back, and the state is
/// held in memory by the executor, so a small cache costs few disk reads.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How to open a [`Store`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Verify the checksum of every page on open, so a file damaged outside
    /// redb is reported as [`StorageError::Corrupt`] instead of being trusted.
    /// Reads the whole file: slow for a large block store. (After a crash redb
    /// verifies and repairs regardless.)
    pub verify_on_open: bool,
    /// Save redb's allocator state with every commit, so reopening after a crash
    /// is almost instant instead of walking the whole file. Costs a second fsync
    /// per commit (two-phase commit), i.e. slower votes. Off by default.
    pub quick_repair: bool,
}

/// A WAL entry appended but not yet written.
#[derive(Debug)]
pub(crate) struct Pending {
    pub seq: u64,
    pub view: View,
    pub is_tip: bool,
    pub bytes: Vec<u8>,
}

/// Read access, clonable and shareable between tasks (blocks for sync and
/// HTTP, app state). Each call reads one consistent snapshot.
#[derive(Clone)]
pub struct Reader {
    pub(crate) db: Arc<Database>,
    pub(crate) path: Arc<Path>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish()
    }
}

/// The single writer: WAL appends, syncs and prunes, block commits, app state.
/// Dereferences to [`Reader`] for reads.
pub struct Store {
    pub(crate) reader: Reader,
    pub(crate) options: StoreOptions,
    /// Appended, not yet written (lost on crash, like `SimStorage::unsynced`).
    pub(crate) pending: Vec<Pending>,
    pub(crate) next_seq: u64,
    /// A non-durable transaction was committed since the last fsync.
    pub(crate) dirty: bool,
    /// Blocks committed since the last fsync (see [`MAX_UNSYNCED_COMMITS`]).
    pub(crate) unsynced_commits: u32,
    /// Height and id of the highest stored committed block.
    pub(crate) tip: Option<(Height, Hash32)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.reader.path)
            .field("pending", &self.pending.len())
            .field("next_seq", &self.next_seq)
            .field("tip", &self.tip)
            .finish()
    }
}

impl std::ops::Deref for Store {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// Maps a redb error to ours, singling out corruption.
pub(crate) fn db_err<'a, E: Into<redb::Error>>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(E) -> StorageError + 'a {
    move |e| match e.into() {
        redb::Error::Corrupted(reason) => StorageError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        source => StorageError::Db {
            path: path.to_path_buf(),
            op,
            source: Box::new(source),
        },
    }
}

fn open_err(path: &Path, e: DatabaseError) -> StorageError {
    let path = path.to_path_buf();
    match e {
        DatabaseError::DatabaseAlreadyOpen => StorageError::AlreadyOpen { path },
        DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
            StorageError::Corrupt { path, reason }
        }
        e => StorageError::Open {
            path,
            source: Box::new(e.into()),
        },
    }
}

impl Store {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StorageError> {
        Self::open_with(path, StoreOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StorageError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(options.verify_on_open);
        builder.set_cache_size(CACHE_BYTES);
        let db = builder.create(&path).map_err(|e| open_err(&path, e))?;
        let reader = Reader {
            db: Arc::new(db),
            path,
        };
        let next_seq = init_schema(&reader)?;
        let tip = reader.tip()?;
        Ok(Store {
            reader,
            options,
            pending: Vec::new(),
            next_seq,
            dirty: false,
            unsynced_commits: 0,
            tip,
        })
    }

    /// A read handle for other tasks.
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.reader.path
    }

    /// Syncs and closes. Dropping without this loses unsynced appends, exactly
    /// like a crash.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.sync()
    }

    /// Runs `f` in one write transaction that first writes every pending WAL
    /// entry, then commits with `durability`. Pending entries are dropped from
    /// memory only once the commit succeeded.
    pub(crate) fn write<T>(
        &mut self,
        op: &'static str,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction, &Path) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let path = &*self.reader.path;
        let mut txn = self.reader.db.begin_write().map_err(db_err(path, op))?;
        txn.set_durability(durability).map_err(db_err(path, op))?;
        txn.set_quick_repair(self.options.quick_repair);
        if !self.pending.is_empty() {
            let mut wal = txn.open_table(WAL).map_err(db_err(path, op))?;
            for p in &self.pending {
                wal.insert(p.seq, (p.view, p.is_tip, p.bytes.as_slice()))
                    .map_err(db_err(path, op))?;
            }
            drop(wal);
            let mut meta = txn.open_table(META).map_err(db_err(path, op))?;
            meta.insert(WAL_NEXT_SEQ_KEY, self.next_seq)
                .map_err(db_err(path, op))?;
        }
        let out = f(&txn, path)?;
        txn.commit().map_err(db_err(path, op))?;
        self.pending.clear();
        self.dirty = matches!(durability, Durability::None);
        if !self.dirty {
            self.unsynced_commits = 0;
        }
        Ok(out)
    }
}

/// Creates the tables and checks (or writes) the schema version. Returns the
/// next WAL sequence number.
fn init_schema(reader: &Reader) -> Result<u64, StorageError> {
    const OP: &str = "open";
    let path = &*reader.path;
    let err = |e: redb::Error| db_err(path, OP)(e);
    let txn = reader.db.begin_write().map_err(|e| err(e.into()))?;
    let next_seq = {
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let version = meta
            .get(SCHEMA_KEY)
            .map_err(|e| err(e.into()))?
            .map(|v| v.value());
        // Checked before the other tables are opened: another version may
        // have given them other types.
        if let Some(found) = version.filter(|v| *v != SCHEMA_VERSION) {
            return Err(StorageError::WrongVersion {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let wal = txn.open_table(WAL).map_err(|e| err(e.into()))?;
        let blocks = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let ids = txn.open_table(BLOCK_IDS).map_err(|e| err(e.into()))?;
        let app = txn.open_table(APP).map_err(|e| err(e.into()))?;
        if version.is_none() {
            let empty = |r: Result<bool, redb::StorageError>| r.map_err(|e| err(e.into()));
            if !(empty(wal.is_empty())?
                && empty(blocks.is_empty())?
                && empty(ids.is_empty())?
                && empty(app.is_empty())?)
            {
                return Err(StorageError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "tables hold data but the schema version is missing".into(),
                });
            }
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                .map_err(|e| err(e.into()))?;
        }
        let stored = meta
            .get(WAL_NEXT_SEQ_KEY)
            .map_err(|e| err(e.into()))?
            .map_or(0, |v| v.value());
        let after_last = wal
            .last()
            .map_err(|e| err(e.into()))?
            .map_or(0, |(k, _)| k.value().saturating_add(1));
        stored.max(after_last)
    };
    txn.commit().map_err(|e| err(e.into()))?;
    Ok(next_seq)
}

impl Reader {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn read(&self, op: &'static str) -> Result<ReadTransaction, StorageError> {
        self.db.begin_read().map_err(db_err(&self.path, op))
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: impl FnOnce() -> String,
        bytes: &[u8],
    ) -> Result<T, StorageError> {
        codec::decode(&self.path, what, bytes)
    }
}
