//! The WAL file: an append-only log of checksummed records.
//!
//! # Why not a redb table
//!
//! The WAL is written twice per view (a vote or proposal, made durable before
//! it is sent) and read only on restart. In a redb table each of those writes
//! was a B-tree transaction: leaf and branch pages, the allocator state and
//! the header rewritten, then an fsync. perf on a validator of a lightly
//! loaded 4-node cluster put those commits at 14.6% of its CPU, most of it in
//! redb's page bookkeeping rather than in the fsync. Here a durable write is
//! the new records' bytes (one `pwrite`) and one `fdatasync`.
//!
//! # Format
//!
//! ```text
//! file   = header record*
//! header = magic "BCWALLOG" (8) | version u32 LE | 0u32 | base_seq u64 LE
//! record = body_len u32 LE | checksum u64 LE | body
//! body   = kind u8 | seq u64 LE | view u64 LE | payload
//! ```
//!
//! `checksum` is the first 8 bytes of blake3(body), little-endian. Kinds:
//! [`KIND_ENTRY`] and [`KIND_TIP`] carry a postcard `WalEntry` (a tip is a
//! `WalEntry::Committed`, flagged so that pruning never decodes payloads);
//! [`KIND_PRUNE`] carries no payload and prunes below `view` at that point of
//! the log. Reading the file replays appends and prunes in order, with the
//! same [`prune_live`] the writer applies to its in-memory copy, so both
//! always agree. `base_seq` is the next sequence number when the file was
//! written from scratch: sequence numbers keep growing even when pruning and
//! compaction leave no entry.
//!
//! # Crashes
//!
//! Records are only appended, and a sync is one write followed by
//! `fdatasync`. A crash can leave a torn tail: a partial record, zeros, or
//! (since a multi-page write can reach the disk out of order) a bad record
//! followed by good ones that were never acknowledged. Reading stops at the
//! first record that does not check out, and opening for writing truncates
//! the file there, so the log is always a prefix of what was appended: the
//! point-in-time recovery that RocksDB applies to its WAL by default. Records
//! that check out after the bad one are reported in the warning, since they
//! can also mean damage to synced data.
//!
//! # Compaction
//!
//! Pruning appends a mark; the bytes stay until the file is rewritten. After
//! a sync, once the file is over [`COMPACT_MIN_BYTES`] and over
//! [`COMPACT_RATIO`] times the size of what is still live, the live entries
//! are written to a new file (fsynced), renamed over the old one, and the
//! directory is fsynced: a crash leaves either file, both complete. So the
//! file stays within a constant factor of the live log, and each byte is
//! rewritten a bounded number of times on average.

use super::StorageError;
use super::MAX_RECORD_BYTES;
use bitcraps_consensus::View;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"BCWALLOG";
/// The format version in the header.
pub(crate) const LOG_VERSION: u32 = 2;
const HEADER_BYTES: usize = 8 + 4 + 4 + 8;
const RECORD_HEAD_BYTES: usize = 4 + 8;
const BODY_HEAD_BYTES: usize = 1 + 8 + 8;
/// Largest record body: the largest encoded entry plus its fixed fields.
const MAX_BODY_BYTES: usize = MAX_RECORD_BYTES + BODY_HEAD_BYTES;

/// A `WalEntry`.
pub(crate) const KIND_ENTRY: u8 = 1;
/// A `WalEntry::Committed`.
pub(crate) const KIND_TIP: u8 = 2;
/// A prune below `view` (no payload).
pub(crate) const KIND_PRUNE: u8 = 3;

/// A file this large is refused rather than read into memory: compaction
/// keeps a working log within a small multiple of its live entries.
pub const MAX_WAL_FILE_BYTES: u64 = 1 << 30;
/// Compaction is considered once the file is this large (bytes)...
pub const COMPACT_MIN_BYTES: u64 = 8 * 1024 * 1024;
/// ...and this many times larger than its live records.
pub const COMPACT_RATIO: u64 = 4;

/// redb's file magic: a WAL file of WAL format version 1 was a redb database.
const REDB_MAGIC: &[u8] = b"redb\x1A\x0A\xA9\x0D\x0A";

/// One live entry: its sequence number, view, kind and postcard bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub seq: u64,
    pub view: View,
    pub is_tip: bool,
    pub bytes: Vec<u8>,
}

impl Entry {
    /// Bytes this entry takes in the file.
    fn record_len(&self) -> u64 {
        (RECORD_HEAD_BYTES + BODY_HEAD_BYTES + self.bytes.len()) as u64
    }
}

/// Applies a prune below `below_view`: drops entries under it, and every
/// committed tip but the newest (whatever its view), as `SimStorage::prune`.
pub(crate) fn prune_live(live: &mut Vec<Entry>, below_view: View) {
    let newest_tip = live.iter().rev().find(|e| e.is_tip).map(|e| e.seq);
    live.retain(|e| {
        if e.is_tip {
            Some(e.seq) == newest_tip
        } else {
            e.view >= below_view
        }
    });
}

/// What a file holds.
#[derive(Debug)]
pub(crate) struct Replay {
    /// The live entries, in append order.
    pub entries: Vec<Entry>,
    /// The next sequence number to hand out.
    pub next_seq: u64,
    /// Bytes up to the end of the last good record.
    pub good_len: u64,
    /// Bytes after it (a torn tail), and whether a good record follows in them.
    pub dropped: Option<(u64, bool)>,
}

/// What is at `path`.
pub(crate) enum Found {
    Missing,
    /// A WAL file of format version 1 (a redb database).
    Redb,
    Log(Replay),
}

fn io_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn corrupt(path: &Path, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

/// Reads the WAL file at `path`.
pub(crate) fn read(path: &Path) -> Result<Found, StorageError> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(io_err(path, "WAL read")(e)),
    };
    if len > MAX_WAL_FILE_BYTES {
        return Err(corrupt(
            path,
            format!("WAL file is {len} bytes, over the {MAX_WAL_FILE_BYTES}-byte limit"),
        ));
    }
    let bytes = std::fs::read(path).map_err(io_err(path, "WAL read"))?;
    if bytes.starts_with(REDB_MAGIC) {
        return Ok(Found::Redb);
    }
    replay(path, &bytes).map(Found::Log)
}

/// Parses a whole file's bytes.
fn replay(path: &Path, bytes: &[u8]) -> Result<Replay, StorageError> {
    let header = bytes.get(..HEADER_BYTES).ok_or_else(|| {
        corrupt(
            path,
            format!("WAL file is {} bytes, shorter than its header", bytes.len()),
        )
    })?;
    if &header[..8] != MAGIC {
        return Err(corrupt(path, "not a WAL file (bad magic)".into()));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
    if version != LOG_VERSION {
        return Err(StorageError::WrongVersion {
            path: path.to_path_buf(),
            found: u64::from(version),
            supported: u64::from(LOG_VERSION),
        });
    }
    let mut next_seq = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
    let mut entries = Vec::new();
    let mut at = HEADER_BYTES;
    while at < bytes.len() {
        let Some((kind, seq, view, payload, end)) = record_at(bytes, at) else {
            let later = (at + 1..bytes.len()).any(|o| record_at(bytes, o).is_some());
            return Ok(Replay {
                entries,
                next_seq,
                good_len: at as u64,
                dropped: Some(((bytes.len() - at) as u64, later)),
            });
        };
        match kind {
            KIND_PRUNE => prune_live(&mut entries, view),
            _ => {
                entries.push(Entry {
                    seq,
                    view,
                    is_tip: kind == KIND_TIP,
                    bytes: payload.to_vec(),
                });
                next_seq = next_seq.max(seq.saturating_add(1));
            }
        }
        at = end;
    }
    Ok(Replay {
        entries,
        next_seq,
        good_len: at as u64,
        dropped: None,
    })
}

/// The record at `at`, if one checks out there: (kind, seq, view, payload, end).
fn record_at(bytes: &[u8], at: usize) -> Option<(u8, u64, View, &[u8], usize)> {
    let head = bytes.get(at..at.checked_add(RECORD_HEAD_BYTES)?)?;
    let body_len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    if !(BODY_HEAD_BYTES..=MAX_BODY_BYTES).contains(&body_len) {
        return None;
    }
    let start = at + RECORD_HEAD_BYTES;
    let body = bytes.get(start..start.checked_add(body_len)?)?;
    let kind = body[0];
    if !matches!(kind, KIND_ENTRY | KIND_TIP | KIND_PRUNE) {
        return None;
    }
    if u64::from_le_bytes(head[4..].try_into().ok()?) != checksum(body) {
        return None;
    }
    let seq = u64::from_le_bytes(body[1..9].try_into().ok()?);
    let view = u64::from_le_bytes(body[9..17].try_into().ok()?);
    Some((kind, seq, view, &body[BODY_HEAD_BYTES..], start + body_len))
}

fn checksum(body: &[u8]) -> u64 {
    let h = bitcraps_crypto::hash(body);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// Appends one record to `out`.
fn encode_record(out: &mut Vec<u8>, kind: u8, seq: u64, view: View, payload: &[u8]) {
    let body_len = BODY_HEAD_BYTES + payload.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&view.to_le_bytes());
    out.extend_from_slice(payload);
    let sum = checksum(&out[start + RECORD_HEAD_BYTES..]);
    out[start + 4..start + RECORD_HEAD_BYTES].copy_from_slice(&sum.to_le_bytes());
}

fn encode_entry(out: &mut Vec<u8>, e: &Entry) {
    let kind = if e.is_tip { KIND_TIP } else { KIND_ENTRY };
    encode_record(out, kind, e.seq, e.view, &e.bytes);
}

/// Writes a complete file holding `entries` at `path`, durably and
/// atomically: a temporary file, fsynced, renamed over `path`, then the
/// directory fsynced. Returns the open file and its length.
pub(crate) fn write_fresh(
    path: &Path,
    entries: &[Entry],
    next_seq: u64,
) -> Result<(File, u64), StorageError> {
    let mut bytes = Vec::with_capacity(
        HEADER_BYTES
            + entries
                .iter()
                .map(|e| e.record_len() as usize)
                .sum::<usize>(),
    );
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&LOG_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&next_seq.to_le_bytes());
    for e in entries {
        encode_entry(&mut bytes, e);
    }
    let tmp = tmp_path(path);
    let op = "WAL rewrite";
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp, op))?;
        f.write_all(&bytes).map_err(io_err(&tmp, op))?;
        f.sync_all().map_err(io_err(&tmp, op))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path, op))?;
    sync_dir(path)?;
    let file = open_rw(path)?;
    Ok((file, bytes.len() as u64))
}

/// The temporary file a rewrite goes through.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn open_rw(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path, "WAL open"))
}

/// fsyncs the directory holding `path`, so a rename into it is durable.
fn sync_dir(path: &Path) -> Result<(), StorageError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "WAL directory sync"))
}

/// The single writer of the WAL file. Keeps the live entries in memory (the
/// log is pruned every few views, so they are few) to compact without reading.
pub(crate) struct WalLog {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Every appended entry not pruned, written or not, in order.
    live: Vec<Entry>,
    /// Encoded records appended or pruned but not yet written, in order.
    unwritten: Vec<u8>,
    /// Whether bytes were written since the last fsync.
    unsynced: bool,
    next_seq: u64,
}

impl std::fmt::Debug for WalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalLog")
            .field("len", &self.len)
            .field("live", &self.live.len())
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl WalLog {
    /// Opens the log file at `path`, creating it if missing; a torn tail is
    /// cut off. A WAL file of format version 1 (redb) is handed to
    /// `from_redb`, which returns its entries and next sequence number, and
    /// is rewritten in this format.
    pub(crate) fn open(
        path: &Path,
        from_redb: impl FnOnce() -> Result<(Vec<Entry>, u64), StorageError>,
    ) -> Result<WalLog, StorageError> {
        // Left by a rewrite that a crash interrupted (the rename had not
        // happened, so `path` is the complete old file).
        let _ = std::fs::remove_file(tmp_path(path));
        let fresh = |entries: Vec<Entry>, next_seq: u64| {
            write_fresh(path, &entries, next_seq).map(|(file, len)| {
                let replay = Replay {
                    entries,
                    next_seq,
                    good_len: len,
                    dropped: None,
                };
                (replay, file)
            })
        };
        let (replay, file) = match read(path)? {
            Found::Missing => fresh(Vec::new(), 0)?,
            Found::Redb => {
                let (entries, next_seq) = from_redb()?;
                tracing::info!(
                    path = %path.display(),
                    entries = entries.len(),
                    "rewriting the WAL file from redb to the append-only log (WAL format 1 -> 2)"
                );
                fresh(entries, next_seq)?
            }
            Found::Log(replay) => {
                let file = open_rw(path)?;
                if let Some((bytes, later_records)) = replay.dropped {
                    tracing::warn!(
                        path = %path.display(),
                        kept_bytes = replay.good_len,
                        dropped_bytes = bytes,
                        later_records,
                        "WAL file ends in a record that does not check out (a write torn by a \
                         crash); replaying up to it and cutting the rest off"
                    );
                    file.set_len(replay.good_len)
                        .and_then(|()| file.sync_all())
                        .map_err(io_err(path, "WAL truncate"))?;
                }
                (replay, file)
            }
        };
        Ok(WalLog {
            path: path.to_path_buf(),
            file,
            len: replay.good_len,
            live: replay.entries,
            unwritten: Vec::new(),
            unsynced: false,
            next_seq: replay.next_seq,
        })
    }

    /// Buffers an entry (postcard bytes of a `WalEntry` of `view`); returns
    /// its sequence number.
    pub(crate) fn append(&mut self, view: View, is_tip: bool, bytes: Vec<u8>) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        let entry = Entry {
            seq,
            view,
            is_tip,
            bytes,
        };
        encode_entry(&mut self.unwritten, &entry);
        self.live.push(entry);
        seq
    }

    /// Prunes below `below_view` (see [`prune_live`]), buffered entries
    /// included, and writes it without an fsync: a lost prune only leaves
    /// extra entries.
    pub(crate) fn prune(&mut self, below_view: View) -> Result<(), StorageError> {
        encode_record(
            &mut self.unwritten,
            KIND_PRUNE,
            self.next_seq,
            below_view,
            &[],
        );
        prune_live(&mut self.live, below_view);
        self.write()
    }

    /// Writes everything buffered and fsyncs: on return every entry appended
    /// so far is durable. May compact the file. A no-op when nothing is
    /// buffered or unsynced.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.write()?;
        if !self.unsynced {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(io_err(&self.path, "WAL sync"))?;
        self.unsynced = false;
        // What a fresh file would hold, summed only once the file is big.
        if self.len > COMPACT_MIN_BYTES
            && self.len > COMPACT_RATIO * self.live.iter().map(Entry::record_len).sum::<u64>()
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Writes the buffered records at the end of the file (no fsync).
    fn write(&mut self) -> Result<(), StorageError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        // Refused here rather than written into a file `read` would refuse
        // on the next start.
        let after = self.len + self.unwritten.len() as u64;
        if after > MAX_WAL_FILE_BYTES {
            return Err(StorageError::TooLarge {
                what: "WAL file (pruning has stalled)",
                len: usize::try_from(after).unwrap_or(usize::MAX),
                max: MAX_WAL_FILE_BYTES as usize,
            });
        }
        self.file
            .write_all_at(&self.unwritten, self.len)
            .map_err(io_err(&self.path, "WAL write"))?;
        self.len += self.unwritten.len() as u64;
        self.unwritten.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Rewrites the file with only the live entries (after a sync, so every
    /// one of them is already durable in the old file too).
    fn compact(&mut self) -> Result<(), StorageError> {
        let before = self.len;
        let (file, len) = write_fresh(&self.path, &self.live, self.next_seq)?;
        self.file = file;
        self.len = len;
        tracing::debug!(
            before,
            after = len,
            entries = self.live.len(),
            "WAL compacted"
        );
        Ok(())
    }

    /// Bytes in the file (written records, synced or not).
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// Entries appended and not pruned (buffered ones included).
    pub(crate) fn live_len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, view: View, is_tip: bool) -> Entry {
        Entry {
            seq,
            view,
            is_tip,
            bytes: vec![seq as u8; (seq % 7) as usize],
        }
    }

    fn file_with(entries: &[Entry]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        write_fresh(&path, entries, 0).unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn a_record_round_trips_and_any_flipped_bit_is_caught() {
        let e = entry(5, 9, true);
        let mut out = Vec::new();
        encode_entry(&mut out, &e);
        assert_eq!(out.len() as u64, e.record_len());
        let (kind, seq, view, payload, end) = record_at(&out, 0).unwrap();
        assert_eq!(
            (kind, seq, view, payload, end),
            (KIND_TIP, 5, 9, &e.bytes[..], out.len())
        );
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(record_at(&bad, 0).is_none(), "bit {bit} flipped unnoticed");
        }
    }

    #[test]
    fn a_torn_tail_is_dropped_and_reported() {
        let entries: Vec<Entry> = (0..4).map(|s| entry(s, s, false)).collect();
        let whole = file_with(&entries);
        let last = entries[3].record_len() as usize;
        for cut in 1..last {
            let torn = &whole[..whole.len() - cut];
            let r = replay(Path::new("wal"), torn).unwrap();
            assert_eq!(r.entries, entries[..3].to_vec(), "cut {cut}");
            assert_eq!(r.good_len as usize, whole.len() - last);
            assert_eq!(r.dropped, Some(((last - cut) as u64, false)));
        }
        // Zeros after the last record (an extent allocated, never written).
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0u8; 100]);
        let r = replay(Path::new("wal"), &zeros).unwrap();
        assert_eq!(r.entries, entries);
        assert_eq!(r.dropped, Some((100, false)));
    }

    #[test]
    fn a_bad_record_ends_the_log_even_with_good_ones_after_it() {
        let entries: Vec<Entry> = (0..4).map(|s| entry(s, s, false)).collect();
        let mut bytes = file_with(&entries);
        let second = HEADER_BYTES + entries[0].record_len() as usize;
        bytes[second + RECORD_HEAD_BYTES + 3] ^= 0xFF;
        let r = replay(Path::new("wal"), &bytes).unwrap();
        assert_eq!(r.entries, entries[..1].to_vec());
        let (dropped, later) = r.dropped.unwrap();
        assert_eq!(dropped as usize, bytes.len() - second);
        assert!(later, "the records after the bad one are reported");
    }

    #[test]
    fn replay_applies_prunes_in_log_order() {
        let mut bytes = file_with(&[]);
        let log = [
            entry(0, 1, false),
            entry(1, 1, true),
            entry(2, 2, true),
            entry(3, 5, false),
        ];
        for e in &log[..3] {
            encode_entry(&mut bytes, e);
        }
        encode_record(&mut bytes, KIND_PRUNE, 3, 4, &[]);
        encode_entry(&mut bytes, &log[3]);
        let r = replay(Path::new("wal"), &bytes).unwrap();
        // Below view 4 only the newest tip stays; the entry after the prune is untouched.
        assert_eq!(r.entries, vec![log[2].clone(), log[3].clone()]);
        assert_eq!(r.next_seq, 4);
        assert_eq!(r.dropped, None);
    }

    #[test]
    fn headers_are_checked() {
        let good = file_with(&[entry(0, 0, false)]);
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(matches!(
            replay(Path::new("wal"), &magic),
            Err(StorageError::Corrupt { .. })
        ));
        let mut version = good.clone();
        version[8] = 9;
        assert!(matches!(
            replay(Path::new("wal"), &version),
            Err(StorageError::WrongVersion { found: 9, .. })
        ));
        assert!(matches!(
            replay(Path::new("wal"), &good[..HEADER_BYTES - 1]),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
