//! Application state: an ordered key-value map the executed game writes.
//!
//! Writes only happen together with the block that caused them
//! ([`Store::commit_with_state`](super::Store::commit_with_state)), so the
//! state on disk is always the result of executing exactly the stored blocks.
//! Keys iterate in byte order, which is deterministic on every machine.

use super::db::{db_err, Reader, APP};
use super::{
    AppEntry, AppWrite, StorageError, MAX_APP_KEY_BYTES, MAX_APP_VALUE_BYTES,
    MAX_APP_WRITES_PER_COMMIT,
};
use redb::WriteTransaction;
use std::ops::Bound;
use std::path::Path;

/// Refuses a batch before anything is written.
pub(crate) fn check_writes(writes: &[AppWrite]) -> Result<(), StorageError> {
    if writes.len() > MAX_APP_WRITES_PER_COMMIT {
        return Err(StorageError::TooMany {
            what: "application write batch",
            len: writes.len(),
            max: MAX_APP_WRITES_PER_COMMIT,
        });
    }
    for (k, v) in writes {
        if k.len() > MAX_APP_KEY_BYTES {
            return Err(StorageError::TooLarge {
                what: "application key",
                len: k.len(),
                max: MAX_APP_KEY_BYTES,
            });
        }
        if let Some(v) = v.as_ref().filter(|v| v.len() > MAX_APP_VALUE_BYTES) {
            return Err(StorageError::TooLarge {
                what: "application value",
                len: v.len(),
                max: MAX_APP_VALUE_BYTES,
            });
        }
    }
    Ok(())
}

/// Applies a checked batch, in order, inside `txn`.
pub(crate) fn apply_writes(
    txn: &WriteTransaction,
    path: &Path,
    writes: &[AppWrite],
) -> Result<(), StorageError> {
    if writes.is_empty() {
        return Ok(());
    }
    let err = |e: redb::Error| db_err(path, "application write")(e);
    let mut app = txn.open_table(APP).map_err(|e| err(e.into()))?;
    for (k, v) in writes {
        match v {
            Some(v) => app.insert(k.as_slice(), v.as_slice()).map(drop),
            None => app.remove(k.as_slice()).map(drop),
        }
        .map_err(|e| err(e.into()))?;
    }
    Ok(())
}

impl Reader {
    /// The application value stored under `key`.
    pub fn app_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        const OP: &str = "application read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let app = txn.open_table(APP).map_err(|e| err(e.into()))?;
        let v = app.get(key).map_err(|e| err(e.into()))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Up to `limit` application entries with keys after `after` (from the
    /// first key when `None`), in key order. Page on with the last key returned.
    pub fn app_scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<AppEntry>, StorageError> {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.app_rows((lower, Bound::Unbounded), limit)
    }

    /// Up to `limit` application entries with `start <= key < end`, in key order.
    pub fn app_range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<AppEntry>, StorageError> {
        self.app_rows((Bound::Included(start), Bound::Excluded(end)), limit)
    }

    fn app_rows(
        &self,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
        limit: usize,
    ) -> Result<Vec<AppEntry>, StorageError> {
        const OP: &str = "application read";
        let err = |e: redb::Error| db_err(&self.path, OP)(e);
        let txn = self.read(OP)?;
        let app = txn.open_table(APP).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for row in app
            .range::<&[u8]>(bounds)
            .map_err(|e| err(e.into()))?
            .take(limit)
        {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}
