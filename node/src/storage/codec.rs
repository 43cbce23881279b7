//! postcard encoding of stored records, with the size limit checked before
//! writing and before parsing, and trailing bytes refused (a record that does
//! not parse exactly is corruption, not something to guess about).

use super::{StorageError, MAX_RECORD_BYTES};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    let bytes = postcard::to_stdvec(value).map_err(|e| StorageError::Encode {
        what,
        reason: e.to_string(),
    })?;
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(StorageError::TooLarge {
            what,
            len: bytes.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    Ok(bytes)
}

pub(crate) fn decode<T: DeserializeOwned>(
    path: &Path,
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, StorageError> {
    let fail = |what: String, reason: String| StorageError::Decode {
        path: path.to_path_buf(),
        what,
        reason,
    };
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(fail(
            what(),
            format!(
                "{} bytes, over the {MAX_RECORD_BYTES}-byte limit",
                bytes.len()
            ),
        ));
    }
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(fail(what(), format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(fail(what(), e.to_string())),
    }
}
