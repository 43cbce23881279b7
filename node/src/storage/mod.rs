//! Crash-safe storage for a validator in two files: an embedded [redb]
//! database for the committed blocks with their finalization certificates and
//! the application's key-value state, and an append-only log (`<path>-wal`,
//! `wal_log.rs`) for the consensus write-ahead log.
//!
//! This is the production counterpart of the simulator's `SimStorage`
//! (`chaos/src/storage.rs`) and implements the storage half of the runtime
//! contract in `consensus/src/io.rs`:
//!
//! | effect | call |
//! | --- | --- |
//! | `Persist { entry, durable }` | [`Store::persist`] (or [`Store::append`] then [`Store::sync`]) |
//! | `Commit(block)` | [`Store::commit`] / [`Store::commit_with_state`] |
//! | `Prune { below_view }` | [`Store::prune`] |
//! | `ServeBlocks { id, max_ancestors, .. }` | [`Reader::chain_from`] |
//! | restart | [`Reader::restore_log`] into `Core::restore` |
//!
//! # Why it survives `kill -9`
//!
//! * Every change to the main file is a redb write transaction, so after a
//!   crash it holds exactly the state of some committed transaction; redb
//!   repairs itself on the next open. The WAL file only grows by
//!   checksummed records (or is replaced whole by a rename); after a crash
//!   it is read up to the first record that does not check out.
//! * [`Store::sync`] writes the buffered WAL records and `fdatasync`s the WAL
//!   file before it returns, so a vote or proposal whose WAL entry was
//!   persisted durably is on disk before the runtime sends it ("persist
//!   before you speak"). That fsync writes only the WAL: when blocks shared
//!   the file, each vote's fsync also flushed every block and state page
//!   committed since the last one (about 600 KB per block under load).
//! * Appends are buffered in memory and go to disk, in order, with the next WAL
//!   write. The WAL that survives a crash is therefore always a prefix of what
//!   was appended, never a sequence with holes.
//! * Committed blocks are written without an fsync of their own; a thread
//!   makes them durable every [`StoreOptions::block_flush_ms`] (`flusher.rs`),
//!   and the [`MAX_UNSYNCED_COMMITS`]th commit in a row without a flush is
//!   fsynced inline. Losing the newest
//!   blocks in a crash is safe: they are final, and the WAL still holds what
//!   commits them again, because [`Store::prune`] never drops entries at or
//!   above the newest durable block's view. A committed-tip entry that
//!   outlived its block is dropped on restart ([`Reader::restore_log`]), so
//!   the restored core re-delivers exactly the missing blocks; blocks it
//!   re-delivers that are already stored are recognised ([`Store::commit`]
//!   returns `false`).
//! * Application writes go in the same transaction as the block that caused them
//!   ([`Store::commit_with_state`]), so executed state and committed height never
//!   disagree.
//!
//! The signing guard's state is deliberately **not** here: it lives in its own
//! file (`bitcraps_crypto::guard::FileGuardStore`) outside anything an update
//! replaces, so restoring or replacing this database can never make the node
//! double-sign.
//!
//! # Threads
//!
//! redb and the WAL file are synchronous. [`Store`] is the single writer (owned by the task that
//! runs the consensus core); [`Reader`] is a cheap clonable read handle for other
//! tasks (block sync, HTTP). Call both from blocking-friendly contexts
//! (`tokio::task::spawn_blocking` for anything that may read many blocks).
//!
//! Any error from a write should be treated as fatal: stop the node and restart
//! it; the WAL and block store replay to a consistent state.

mod app;
mod blocks;
mod codec;
mod db;
mod error;
mod flusher;
mod schema;
mod txindex;
mod wal;
mod wal_log;

pub use db::{wal_path, Reader, Store, StoreOptions, DEFAULT_BLOCK_FLUSH_MS, WAL_FILE_SUFFIX};
pub use error::StorageError;
pub use schema::{SCHEMA_VERSION, WAL_SCHEMA_VERSION};
pub use txindex::{TxIndex, MAX_INDEX_BATCH};
pub use wal_log::{COMPACT_MIN_BYTES, COMPACT_RATIO, MAX_WAL_FILE_BYTES};

use bitcraps_consensus::params::MAX_MESSAGE_BYTES;

/// Largest encoded WAL entry or committed block. Twice the wire frame limit:
/// anything the core can accept fits, and a corrupt length cannot make us
/// allocate without bound.
pub const MAX_RECORD_BYTES: usize = 2 * MAX_MESSAGE_BYTES;

/// Largest application state key.
pub const MAX_APP_KEY_BYTES: usize = 1024;

/// Largest application state value.
pub const MAX_APP_VALUE_BYTES: usize = 1024 * 1024;

/// Most application writes in one [`Store::commit_with_state`] batch.
pub const MAX_APP_WRITES_PER_COMMIT: usize = 262_144;

/// Most blocks committed in a row without an fsync: bounds what a crash can
/// lose to re-execute, how many views of entries the WAL keeps for them, and
/// how long redb holds pages of non-durable commits.
pub const MAX_UNSYNCED_COMMITS: u32 = 64;

/// Most blocks one [`Reader::range`] call returns (callers page on).
pub const MAX_RANGE_BLOCKS: usize = 1024;

/// One application write: `Some(value)` sets the key, `None` deletes it.
pub type AppWrite = (Vec<u8>, Option<Vec<u8>>);

/// One stored application entry: (key, value).
pub type AppEntry = (Vec<u8>, Vec<u8>);
