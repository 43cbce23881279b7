//! The one error type of the storage module. Messages name the file and the
//! operation so an operator can tell a full disk from a corrupt file from a
//! version mismatch without reading code.

use bitcraps_consensus::Height;
use bitcraps_crypto::Hash32;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage {path} is already open (by this or another process)")]
    AlreadyOpen { path: PathBuf },

    #[error("storage {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    #[error(
        "storage {path} has schema version {found}, this build reads version {supported}; \
         use a matching build or move the file away"
    )]
    WrongVersion {
        path: PathBuf,
        found: u64,
        supported: u64,
    },

    #[error("cannot open storage {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },

    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("storage {path}: {op} failed: {source}")]
    Db {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: Box<redb::Error>,
    },

    #[error("storage {path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },

    #[error("{what} is {len} entries, over the limit of {max}")]
    TooMany {
        what: &'static str,
        len: usize,
        max: usize,
    },

    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },

    #[error("storage {path}: cannot decode {what}: {reason}")]
    Decode {
        path: PathBuf,
        what: String,
        reason: String,
    },

    #[error(
        "conflicting committed blocks at height {height}: stored {stored}, new {new} \
         (two finalized blocks at one height: a safety violation)"
    )]
    Conflict {
        height: Height,
        stored: Hash32,
        new: Hash32,
    },

    #[error(
        "committed block at height {got} does not extend the stored tip at height {tip}: {reason}"
    )]
    NotContiguous {
        tip: Height,
        got: Height,
        reason: &'static str,
    },
}
