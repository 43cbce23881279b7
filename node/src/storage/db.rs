//! Opening the two database files and the write path every block and state
//! change goes through.
//!
//! The main file (`path`) holds the chain:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | name | u64 (`schema_version`) |
//! | `blocks` | height | postcard `CommittedBlock` |
//! | `block_ids` | block id | height |
//! | `app` | application key | application value |
//!
//! The WAL file (`path` + [`WAL_FILE_SUFFIX`]) holds the consensus log, an
//! append-only file of checksummed records (`wal_log.rs`).
//!
//! Two files so that a vote's fsync writes only the WAL: in one file it also
//! flushed every block and state page committed since the previous vote. A
//! WAL record carries the entry's view and kind next to its bytes so pruning
//! never has to decode blocks. Schema versions, creation and the upgrades of
//! earlier layouts are in `schema.rs`.

use super::codec;
use super::flusher::{Durable, Flusher};
use super::schema;
use super::wal_log::WalLog;
use super::StorageError;
use bitcraps_consensus::{Height, View};
use bitcraps_crypto::Hash32;
use redb::{
    Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase, TableDefinition,
    WriteTransaction,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Schema 1 kept the WAL here, in the main file (read only to upgrade it).
pub(crate) const WAL: TableDefinition<u64, (u64, bool, &[u8])> = TableDefinition::new("wal");
pub(crate) const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
pub(crate) const BLOCK_IDS: TableDefinition<[u8; 32], u64> = TableDefinition::new("block_ids");
pub(crate) const APP: TableDefinition<&[u8], &[u8]> = TableDefinition::new("app");

/// Appended to the main file's name to name the WAL file (`db` -> `db-wal`).
pub const WAL_FILE_SUFFIX: &str = "-wal";

/// redb's page cache. redb's default (1 GiB) lets a validator's memory grow
/// with its database for hours: a 10-minute soak grew ~17 MiB/min on every
/// node. Recent blocks and the WAL are what is read back, and the state is
/// held in memory by the executor, so a small cache costs few disk reads.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The WAL file that goes with the main database file at `path`.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(WAL_FILE_SUFFIX);
    PathBuf::from(name)
}

/// How often the flush thread makes committed blocks durable (ms).
pub const DEFAULT_BLOCK_FLUSH_MS: u64 = 100;

/// How to open a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Make committed blocks durable on a background thread this often (ms;
    /// 0: only every [`super::MAX_UNSYNCED_COMMITS`] commits, inline).
    pub block_flush_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            verify_on_open: false,
            quick_repair: false,
            block_flush_ms: DEFAULT_BLOCK_FLUSH_MS,
        }
    }
}

/// Read access, clonable and shareable between tasks (blocks for sync and
/// HTTP, app state). Each call reads one consistent snapshot of one file.
#[derive(Clone)]
pub struct Reader {
    pub(crate) db: Arc<Database>,
    pub(crate) path: Arc<Path>,
    pub(crate) wal_path: Arc<Path>,
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
    /// The WAL file's writer (appends not yet written are lost on crash,
    /// like `SimStorage::unsynced`).
    pub(crate) wal: WalLog,
    /// Blocks committed since the main file's last fsync (see
    /// [`super::MAX_UNSYNCED_COMMITS`]).
    pub(crate) unsynced_commits: u32,
    /// Height, id and view of the highest stored committed block.
    pub(crate) tip: Option<(Height, Hash32, View)>,
    /// The view of the highest block the main file holds durably. The WAL is
    /// never pruned above it, so a crash that loses newer blocks leaves the
    /// WAL entries to commit them again.
    pub(crate) durable: Arc<Durable>,
    /// Flushes committed blocks in the background (`None`: inline only).
    pub(crate) _flusher: Option<Flusher>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.reader.path)
            .field("wal", &self.wal)
            .field("tip", &self.tip)
            .field("durable_view", &self.durable.durable_view())
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

    /// Opens (creating if needed) the database file at `path` and its WAL
    /// file ([`wal_path`]); a single-file database of an earlier version is
    /// upgraded (its WAL moves to the WAL file).
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StorageError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let wal_path: Arc<Path> = Arc::from(wal_path(&path));
        let db = open_db(&path, CACHE_BYTES, options)?;
        let reader = Reader {
            db: Arc::new(db),
            path,
            wal_path,
        };
        let wal = schema::init(&reader, options)?;
        let tip = reader.tip()?;
        // After open the file holds only what was durable.
        let durable = Arc::new(Durable::new(tip.map_or(0, |(_, _, view)| view)));
        let flusher = Flusher::start(Arc::clone(&reader.db), Arc::clone(&durable), options)
            .map_err(|e| open_err(&reader.path, DatabaseError::Storage(e.into())))?;
        Ok(Store {
            reader,
            options,
            wal,
            unsynced_commits: 0,
            tip,
            durable,
            _flusher: flusher,
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

    /// Makes both files durable and closes. Dropping without this loses
    /// unsynced appends and blocks, exactly like a crash.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.sync_blocks()?;
        self.sync()
    }

    /// Makes every committed block and its state durable (one fsync of the
    /// main file). A no-op when nothing was committed since the last one.
    pub fn sync_blocks(&mut self) -> Result<(), StorageError> {
        if self.tip_view() <= self.durable.durable_view() {
            return Ok(());
        }
        self.write("block sync", Durability::Immediate, |_, _| Ok(()))?;
        self.blocks_durable();
        Ok(())
    }

    /// Runs `f` in one write transaction of the main file, committed with
    /// `durability`.
    pub(crate) fn write<T>(
        &mut self,
        op: &'static str,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction, &Path) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let path = &*self.reader.path;
        transact(&self.reader.db, path, op, durability, self.options, f)
    }

    /// Records that everything up to the stored tip is durable (after an
    /// `Immediate` write of the main file).
    pub(crate) fn blocks_durable(&mut self) {
        self.unsynced_commits = 0;
        self.durable.durable_at(self.tip_view());
    }

    /// The view of the highest stored block (0: none).
    pub(crate) fn tip_view(&self) -> View {
        self.tip.map_or(0, |(_, _, view)| view)
    }
}

/// One write transaction on `db`: `f`, then a commit with `durability`.
pub(crate) fn transact<T>(
    db: &Database,
    path: &Path,
    op: &'static str,
    durability: Durability,
    options: StoreOptions,
    f: impl FnOnce(&WriteTransaction, &Path) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let mut txn = db.begin_write().map_err(db_err(path, op))?;
    txn.set_durability(durability).map_err(db_err(path, op))?;
    txn.set_quick_repair(options.quick_repair);
    let out = f(&txn, path)?;
    txn.commit().map_err(db_err(path, op))?;
    Ok(out)
}

pub(crate) fn open_db(
    path: &Path,
    cache_bytes: usize,
    options: StoreOptions,
) -> Result<Database, StorageError> {
    let mut builder = Database::builder();
    builder.set_check_integrity_on_open(options.verify_on_open);
    builder.set_cache_size(cache_bytes);
    builder.create(path).map_err(|e| open_err(path, e))
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
