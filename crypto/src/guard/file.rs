//! [`FileGuardStore`]: the guard state in one file of two checksummed slots,
//! overwritten in place.
//!
//! # Why two slots
//!
//! The guard writes its state before every new signature, a few times per
//! view, on the consensus critical path. The first version wrote a temp file,
//! fsynced it, renamed it over the old one and fsynced the directory: two
//! fsyncs plus file creation and a rename, which ext4 journals. Measured on
//! this machine that costs 2.8 ms per store (11 ms under load), against 0.35 ms
//! (3.7 ms) for one in-place write plus `fdatasync` of a preallocated file.
//!
//! In place needs care: a crash (power loss) in the middle of a write can
//! leave a torn record. So the file holds two slots; each store goes to the
//! slot that does *not* hold the last acknowledged state, and a load takes the
//! valid slot with the highest sequence number. A torn write can only damage
//! the slot being written, whose store never returned `Ok`, so no signature
//! was released for it and the other slot's state is the right one to resume
//! from.
//!
//! # Layout
//!
//! The file is exactly `2 * SLOT_BYTES` long. A slot is
//! `magic (8) | seq: u64 LE | len: u32 LE | blake3(seq | len | payload) (32) | payload (len) | zeros`,
//! with a postcard-encoded [`GuardState`] as payload. An all-zero slot is an
//! unused one. Files of the first format (`BCGUARD\x01`, one record) are read
//! and rewritten in this format, atomically, on the next store.
//!
//! # Failure modes
//!
//! * A missing file means "never signed".
//! * Neither slot valid (damage, truncation, a foreign file) is an error, never
//!   a silent reset.
//! * Exactly one slot valid is the torn-write case and resumes from it. Silent
//!   disk corruption of the newer slot would look the same; no local file can
//!   tell the two apart, and the old single-file format could not survive that
//!   corruption either (it refused to start instead).

use super::{io_error, GuardState, GuardStore, GuardStoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// First format: magic, blake3 of the payload, postcard payload.
pub(super) const V1_MAGIC: &[u8; 8] = b"BCGUARD\x01";
/// Magic at the start of every used slot of the current format.
pub(super) const SLOT_MAGIC: &[u8; 8] = b"BCGUARD\x02";
const CHECKSUM_LEN: usize = 32;
const SLOT_HEADER: usize = SLOT_MAGIC.len() + 8 + 4 + CHECKSUM_LEN;
/// One slot; the state is a few hundred bytes (three signed records and a
/// chain id of at most 64 bytes), so 4 KiB leaves ample room.
pub(super) const SLOT_BYTES: usize = 4096;
/// The whole file.
pub(super) const FILE_BYTES: usize = 2 * SLOT_BYTES;
/// Largest file `load` reads (the first format's limit was 16 KiB).
const MAX_READ_BYTES: u64 = 16 * 1024;

/// A [`GuardStore`] in one file. Holds an exclusive lock (on `<path>.lock`) for
/// its lifetime so two processes can never sign from the same state.
#[derive(Debug)]
pub struct FileGuardStore {
    path: PathBuf,
    /// Keeps the advisory lock; released when the store is dropped.
    _lock: File,
    /// The open file and the sequence number of the last state written or
    /// read; `None` until the first store (which reads the file first).
    slots: Mutex<Option<OpenSlots>>,
}

#[derive(Debug)]
struct OpenSlots {
    file: File,
    /// Sequence number of the newest valid slot (0: none yet).
    seq: u64,
}

/// What a file on disk holds.
enum OnDisk {
    Missing,
    /// The first format: must be rewritten before writing in place.
    V1(GuardState),
    /// The current format: the newest valid slot, if any.
    Slots(Option<(u64, GuardState)>),
}

impl FileGuardStore {
    /// Opens (without reading) the state at `path` and takes its lock. The
    /// directory must exist.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, GuardStoreError> {
        let path = path.into();
        let lock_path = sibling(&path, ".lock");
        let lock = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| io_error("open", &lock_path, source))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(GuardStoreError::Locked { path });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(io_error("lock", &lock_path, source));
            }
        }
        Ok(FileGuardStore {
            path,
            _lock: lock,
            slots: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, reason: impl Into<String>) -> GuardStoreError {
        GuardStoreError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn read(&self) -> Result<OnDisk, GuardStoreError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OnDisk::Missing),
            Err(source) => return Err(io_error("open", &self.path, source)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| io_error("read", &self.path, source))?;
        if bytes.len() as u64 > MAX_READ_BYTES {
            return Err(self.corrupt(format!("larger than {MAX_READ_BYTES} bytes")));
        }
        if bytes.starts_with(V1_MAGIC) {
            return decode_v1(&bytes)
                .map(OnDisk::V1)
                .map_err(|reason| self.corrupt(reason));
        }
        if bytes.len() != FILE_BYTES {
            return Err(self.corrupt(format!(
                "{} bytes, expected {FILE_BYTES} (two slots) or the first format",
                bytes.len()
            )));
        }
        let (a, b) = bytes.split_at(SLOT_BYTES);
        let newest = match (decode_slot(a), decode_slot(b)) {
            (Ok(a), Ok(b)) => Some(if a.0 >= b.0 { a } else { b }),
            (Ok(one), Err(_)) | (Err(_), Ok(one)) => Some(one),
            (Err(ea), Err(eb)) if ea == UNUSED && eb == UNUSED => None,
            (Err(ea), Err(eb)) => {
                return Err(self.corrupt(format!("no valid slot (first: {ea}; second: {eb})")))
            }
        };
        Ok(OnDisk::Slots(newest))
    }

    /// Opens the current-format file for in-place writes.
    fn open_rw(&self, seq: u64) -> Result<OpenSlots, GuardStoreError> {
        let file = private_options()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|source| io_error("open", &self.path, source))?;
        Ok(OpenSlots { file, seq })
    }

    /// Replaces the whole file, atomically, by one holding `slot` (sequence
    /// number `seq`) in its slot and an unused other slot: temp file, fsync,
    /// rename, fsync the directory. Runs for a new data directory and for a
    /// file of the first format, whose state is replaced by the one being
    /// stored in the same rename, so a crash leaves either the old file or
    /// the new one.
    fn replace_with(&self, seq: u64, payload: &[u8]) -> Result<(), GuardStoreError> {
        let mut bytes = vec![0u8; FILE_BYTES];
        let offset = slot_offset(seq);
        bytes[offset..offset + SLOT_BYTES].copy_from_slice(&encode_slot(seq, payload));
        let tmp = sibling(&self.path, ".tmp");
        if let Err(e) = write_new_file(&tmp, &bytes) {
            // Best effort: the stale file is also removed before the next write.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &self.path).map_err(|source| io_error("rename", &tmp, source))?;
        sync_parent_dir(&self.path)
    }
}

/// Where the slot for sequence number `seq` starts: alternating, so the next
/// write never lands on the slot holding the last acknowledged state.
fn slot_offset(seq: u64) -> usize {
    if seq.is_multiple_of(2) {
        0
    } else {
        SLOT_BYTES
    }
}

impl GuardStore for FileGuardStore {
    fn load(&self) -> Result<Option<GuardState>, GuardStoreError> {
        Ok(match self.read()? {
            OnDisk::Missing | OnDisk::Slots(None) => None,
            OnDisk::V1(state) => Some(state),
            OnDisk::Slots(Some((_, state))) => Some(state),
        })
    }

    fn store(&self, state: &GuardState) -> Result<(), GuardStoreError> {
        let payload = encode_slot_payload(state)?;
        let mut open = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slots = match open.as_mut() {
            Some(slots) => slots,
            None => match self.read() {
                Ok(OnDisk::Slots(newest)) => {
                    open.insert(self.open_rw(newest.map_or(0, |(seq, _)| seq))?)
                }
                // Missing, first format, or unreadable (the guard loads before
                // it stores, so an unreadable file has already stopped it; this
                // serves `store` on a fresh path): replace the file as a whole.
                Ok(OnDisk::Missing | OnDisk::V1(_)) | Err(GuardStoreError::Corrupt { .. }) => {
                    self.replace_with(1, &payload)?;
                    *open = Some(self.open_rw(1)?);
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
        };
        let seq = slots.seq + 1;
        let bytes = encode_slot(seq, &payload);
        slots
            .file
            .seek(SeekFrom::Start(slot_offset(seq) as u64))
            .and_then(|_| slots.file.write_all(&bytes))
            .map_err(|source| io_error("write", &self.path, source))?;
        slots
            .file
            .sync_data()
            .map_err(|source| io_error("fdatasync", &self.path, source))?;
        // Only now is `seq` the newest: a failed write is retried into the same
        // slot, never into the one holding the last acknowledged state.
        slots.seq = seq;
        Ok(())
    }
}

/// `decode_slot`'s answer for an all-zero (never written) slot.
const UNUSED: &str = "unused";

fn encode_slot_payload(state: &GuardState) -> Result<Vec<u8>, GuardStoreError> {
    let payload = postcard::to_stdvec(state).map_err(|e| GuardStoreError::Encode(e.to_string()))?;
    if payload.len() > SLOT_BYTES - SLOT_HEADER {
        return Err(GuardStoreError::Encode(format!(
            "state of {} bytes does not fit a {SLOT_BYTES}-byte slot",
            payload.len()
        )));
    }
    Ok(payload)
}

fn slot_checksum(seq: u64, payload: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// A full slot (padded with zeros to `SLOT_BYTES`). `payload` fits (checked by
/// `encode_slot_payload`).
fn encode_slot(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SLOT_BYTES);
    out.extend_from_slice(SLOT_MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(slot_checksum(seq, payload).as_bytes());
    out.extend_from_slice(payload);
    out.resize(SLOT_BYTES, 0);
    out
}

/// The sequence number and state in `slot`, or why it holds none.
fn decode_slot(slot: &[u8]) -> Result<(u64, GuardState), &'static str> {
    if slot.iter().all(|b| *b == 0) {
        return Err(UNUSED);
    }
    if slot.len() != SLOT_BYTES || !slot.starts_with(SLOT_MAGIC) {
        return Err("bad magic");
    }
    let field = |at: usize, len: usize| &slot[at..at + len];
    let at = SLOT_MAGIC.len();
    let seq = u64::from_le_bytes(field(at, 8).try_into().map_err(|_| "bad header")?);
    let len = u32::from_le_bytes(field(at + 8, 4).try_into().map_err(|_| "bad header")?) as usize;
    let checksum = field(at + 12, CHECKSUM_LEN);
    if len > SLOT_BYTES - SLOT_HEADER {
        return Err("length out of range");
    }
    let payload = &slot[SLOT_HEADER..SLOT_HEADER + len];
    if slot_checksum(seq, payload).as_bytes() != checksum {
        return Err("checksum mismatch");
    }
    if slot[SLOT_HEADER + len..].iter().any(|b| *b != 0) {
        return Err("bytes after the payload");
    }
    let (state, trailing) =
        postcard::take_from_bytes::<GuardState>(payload).map_err(|_| "undecodable payload")?;
    if !trailing.is_empty() {
        return Err("trailing bytes in the payload");
    }
    Ok((seq, state))
}

/// A file of the first format: magic, blake3 of the payload, payload.
fn decode_v1(bytes: &[u8]) -> Result<GuardState, String> {
    let header = V1_MAGIC.len() + CHECKSUM_LEN;
    if bytes.len() < header {
        return Err("truncated header".into());
    }
    let (checksum, payload) = bytes[V1_MAGIC.len()..].split_at(CHECKSUM_LEN);
    if blake3::hash(payload).as_bytes() != checksum {
        return Err("checksum mismatch".into());
    }
    let (state, trailing) = postcard::take_from_bytes::<GuardState>(payload)
        .map_err(|e| format!("undecodable payload: {e}"))?;
    if !trailing.is_empty() {
        return Err("trailing bytes after payload".into());
    }
    Ok(state)
}

/// Writes `bytes` to a new private file at `path` (replacing a stale one) and
/// fsyncs it.
fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), GuardStoreError> {
    // A temp file left by a crash is stale: replace it rather than trust its
    // permissions or contents.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error("remove stale", path, source)),
    }
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| io_error("create", path, source))?;
    file.write_all(bytes)
        .map_err(|source| io_error("write", path, source))?;
    file.sync_all()
        .map_err(|source| io_error("fsync", path, source))
}

/// `dir/name` → `dir/name<suffix>`.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Options for files only the node's user may read: the state holds signatures
/// and, more importantly, must not be editable by others.
fn private_options() -> OpenOptions {
    #[allow(unused_mut)] // only mutated on unix
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Makes a rename durable: without this a crash can bring back the old file
/// even though the caller saw success.
fn sync_parent_dir(path: &Path) -> Result<(), GuardStoreError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| io_error("fsync directory", dir, source))?;
    }
    #[cfg(not(unix))]
    let _ = path; // Directories cannot be opened for fsync on this platform.
    Ok(())
}
