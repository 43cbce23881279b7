//! Secret memory: [`SecretBuf`], a buffer for keys, PINs, passphrases and tokens.
//!
//! What a `SecretBuf` guarantees, and how:
//!
//! * **Guard pages.** Each buffer is its own anonymous mapping:
//!   `guard page | data pages | guard page`, both guards `PROT_NONE`. The secret
//!   is *right-aligned*: its last byte is the last byte before the trailing guard,
//!   so writing even one byte past the end faults (SIGSEGV) at once. The
//!   consequence: the secret's start is generally not page-aligned (nor aligned
//!   at all: it is a byte buffer), and an underflow is caught only once it runs
//!   past the unused head of the first data page into the leading guard.
//! * **Locked.** The data pages are `mlock`ed so they never reach swap. If
//!   `mlock` fails (a small `RLIMIT_MEMLOCK` without `CAP_IPC_LOCK`), the buffer
//!   still works, unlocked: the failure is counted ([`protection_status`]) and
//!   [`take_lock_warning`] hands the node one warning to log. Check
//!   [`SecretBuf::is_locked`] per buffer.
//! * **Not dumped, not forked.** `MADV_DONTDUMP` and `MADV_WIPEONFORK` (advisory:
//!   ignored where the kernel lacks them).
//! * **Zeroized.** Drop wipes all data pages with volatile writes, then unlocks
//!   and unmaps. [`SecretBuf::wipe`] wipes now, for reuse of the same buffer.
//!   Mappings are never recycled: a new buffer gets fresh zero pages from the
//!   kernel.
//! * **Nothing leaks through formatting.** `Debug` and `Display` print
//!   `SecretBuf(redacted)`: neither the content nor the length. There is no
//!   `Clone` and no serde.
//! * **Constant-time comparison.** [`SecretBuf::ct_eq`] (subtle).
//! * **`Send + Sync`.** A buffer exclusively owns its mapping and has no interior
//!   mutability (reads need `&self`, writes `&mut self`), so it is as thread-safe
//!   as a `Box<[u8]>`; the one `unsafe impl` pair sits on the raw mapping type in
//!   [`sys`] with its reasoning.
//!
//! Limits: one buffer holds 1..=[`MAX_SECRET_BYTES`]; at most
//! [`MAX_LIVE_BUFFERS`] are alive at once (each costs a few kernel mappings and
//! at least one locked page). All `unsafe` lives in the private `sys` module and
//! is audited in UNSAFE_AUDIT.md.

#[allow(unsafe_code)]
mod sys;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Largest secret (bytes).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Most secret buffers alive at once in one process. A node holds a handful
/// (consensus key, QUIC key, keystore passphrase, HSM PIN); the cap stops a leak
/// or a request flood from exhausting locked memory and kernel mappings.
pub const MAX_LIVE_BUFFERS: u64 = 4096;

/// Why a secret buffer could not be made. Messages name no secret content and no
/// requested length.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// A secret of zero bytes was requested.
    #[error("a secret buffer must hold at least one byte")]
    Empty,
    /// More than [`MAX_SECRET_BYTES`] were requested.
    #[error("a secret buffer holds at most {max} bytes", max = MAX_SECRET_BYTES)]
    TooLarge,
    /// [`MAX_LIVE_BUFFERS`] buffers are already alive.
    #[error("too many live secret buffers (at most {max})", max = MAX_LIVE_BUFFERS)]
    TooManyBuffers,
    /// A memory system call failed (`mmap`, `mprotect`): the process is out of
    /// memory or mappings.
    #[error("{call} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Os {
        /// The failing call.
        call: &'static str,
        /// Its raw errno.
        errno: i32,
    },
}

/// A secret in locked, guard-paged, zeroized-on-drop memory (module docs).
///
/// No `Clone`, no serde: a copy of a secret is made on purpose, with
/// [`SecretBuf::from_slice`].
pub struct SecretBuf {
    map: sys::Mapping,
    /// Length of the secret: the last `len` bytes of the data pages.
    len: usize,
}

impl SecretBuf {
    /// A zero-filled secret of `len` bytes, 1..=[`MAX_SECRET_BYTES`].
    pub fn new(len: usize) -> Result<SecretBuf, SecretError> {
        if len == 0 {
            return Err(SecretError::Empty);
        }
        if len > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge);
        }
        if LIVE_BUFFERS.fetch_add(1, Ordering::AcqRel) >= MAX_LIVE_BUFFERS {
            LIVE_BUFFERS.fetch_sub(1, Ordering::AcqRel);
            return Err(SecretError::TooManyBuffers);
        }
        let mut map = match sys::Mapping::new(len) {
            Ok(map) => map,
            Err((call, errno)) => {
                LIVE_BUFFERS.fetch_sub(1, Ordering::AcqRel);
                return Err(SecretError::Os {
                    call,
                    errno: errno.raw_os_error(),
                });
            }
        };
        match map.lock() {
            Ok(()) => {
                LOCKED_BYTES.fetch_add(map.data_len() as u64, Ordering::AcqRel);
            }
            Err(e) => record_lock_failure(e),
        }
        if !map.is_locked() {
            UNLOCKED_BUFFERS.fetch_add(1, Ordering::AcqRel);
        }
        Ok(SecretBuf { map, len })
    }

    /// Copies `bytes` into a new buffer. The caller still owns (and should wipe)
    /// its source; prefer [`SecretBuf::from_vec`] when the source is a `Vec`.
    pub fn from_slice(bytes: &[u8]) -> Result<SecretBuf, SecretError> {
        let mut buf = SecretBuf::new(bytes.len())?;
        buf.expose_mut().copy_from_slice(bytes);
        Ok(buf)
    }

    /// Moves a secret vector in: copies it, then zeroizes the original allocation
    /// (its whole capacity) before freeing it. The source is wiped on error too.
    pub fn from_vec(mut v: Vec<u8>) -> Result<SecretBuf, SecretError> {
        let result = SecretBuf::from_slice(&v);
        v.zeroize();
        result
    }

    /// [`SecretBuf::from_vec`] for a string (a passphrase, a PIN, a token).
    pub fn from_string(s: String) -> Result<SecretBuf, SecretError> {
        SecretBuf::from_vec(s.into_bytes())
    }

    /// Length of the secret in bytes (never 0).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a buffer holds at least one byte. Present for the usual
    /// `len`/`is_empty` pair.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The secret. Do not copy it into ordinary memory longer than needed.
    pub fn expose(&self) -> &[u8] {
        let data = self.map.data();
        &data[data.len() - self.len..]
    }

    /// The secret, mutably (to fill it in place, e.g. from a reader).
    pub fn expose_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        let data = self.map.data_mut();
        let start = data.len() - len;
        &mut data[start..]
    }

    /// Compares the secret with `other` in time that does not depend on the
    /// content. A length mismatch returns `false` early: the length of a secret
    /// is not treated as secret here (compare fixed-length values, or digests, when
    /// it is).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.expose().ct_eq(other).into()
    }

    /// Zeroizes the secret now (volatile writes). The buffer stays allocated and
    /// keeps its length, ready to be filled again.
    pub fn wipe(&mut self) {
        self.map.data_mut().zeroize();
    }

    /// Whether `mlock` succeeded for this buffer (its pages cannot be swapped).
    pub fn is_locked(&self) -> bool {
        self.map.is_locked()
    }
}

impl Drop for SecretBuf {
    /// The mapping's own drop (sys) then zeroizes the data pages, unlocks and
    /// unmaps them together with the guard pages.
    fn drop(&mut self) {
        if self.map.is_locked() {
            LOCKED_BYTES.fetch_sub(self.map.data_len() as u64, Ordering::AcqRel);
        } else {
            UNLOCKED_BUFFERS.fetch_sub(1, Ordering::AcqRel);
        }
        LIVE_BUFFERS.fetch_sub(1, Ordering::AcqRel);
    }
}

impl zeroize::ZeroizeOnDrop for SecretBuf {}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBuf(redacted)")
    }
}

impl fmt::Display for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBuf(redacted)")
    }
}

/// Process-wide secret-memory protection, for `/status`, the
/// `/api/v1/memory-protection/status` route and metrics. Each counter is read on
/// its own: a status taken while other threads create or drop buffers may mix
/// moments (it is a gauge reading, not a transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProtectionStatus {
    /// No `mlock` has failed in this process so far (sticky: one failure turns
    /// it false for good, since that buffer's secret may have been swapped).
    pub mlock_available: bool,
    /// Secret buffers alive now.
    pub live_buffers: u64,
    /// Bytes locked in RAM now (whole pages).
    pub locked_bytes: u64,
    /// `mlock` failures since start (each left one buffer unlocked).
    pub lock_failures: u64,
    /// Every live buffer sits between guard pages. Always true: a buffer whose
    /// guard pages cannot be set up is refused, never handed out unguarded.
    pub guard_pages: bool,
    /// Live buffers that are not locked (their `mlock` failed).
    pub unlocked_buffers: u64,
}

/// The current process-wide counters.
pub fn protection_status() -> ProtectionStatus {
    ProtectionStatus {
        mlock_available: !MLOCK_EVER_FAILED.load(Ordering::Acquire),
        live_buffers: LIVE_BUFFERS.load(Ordering::Acquire),
        locked_bytes: LOCKED_BYTES.load(Ordering::Acquire),
        lock_failures: LOCK_FAILURES.load(Ordering::Acquire),
        guard_pages: true,
        unlocked_buffers: UNLOCKED_BUFFERS.load(Ordering::Acquire),
    }
}

/// Returns the human-readable warning exactly once after the first `mlock`
/// failure (the node logs it), `None` otherwise.
pub fn take_lock_warning() -> Option<String> {
    WARNING_STATE
        .compare_exchange(
            WARN_PENDING,
            WARN_TAKEN,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .ok()
        .and_then(|_| LOCK_WARNING.get().cloned())
}

static LIVE_BUFFERS: AtomicU64 = AtomicU64::new(0);
static LOCKED_BYTES: AtomicU64 = AtomicU64::new(0);
static LOCK_FAILURES: AtomicU64 = AtomicU64::new(0);
static UNLOCKED_BUFFERS: AtomicU64 = AtomicU64::new(0);
static MLOCK_EVER_FAILED: AtomicBool = AtomicBool::new(false);
static LOCK_WARNING: OnceLock<String> = OnceLock::new();
static WARNING_STATE: AtomicU8 = AtomicU8::new(WARN_NONE);
const WARN_NONE: u8 = 0;
const WARN_PENDING: u8 = 1;
const WARN_TAKEN: u8 = 2;

fn record_lock_failure((call, errno): (&'static str, rustix::io::Errno)) {
    LOCK_FAILURES.fetch_add(1, Ordering::AcqRel);
    MLOCK_EVER_FAILED.store(true, Ordering::Release);
    // The first failure writes the warning; it is published (PENDING) only after
    // the text is in place, so take_lock_warning never sees PENDING without it.
    if LOCK_WARNING.set(lock_warning_text(call, errno)).is_ok() {
        WARNING_STATE.store(WARN_PENDING, Ordering::Release);
    }
}

fn lock_warning_text(call: &str, errno: rustix::io::Errno) -> String {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock);
    let limit = match limit.current {
        Some(bytes) => format!("{bytes} bytes"),
        None => "unlimited".to_string(),
    };
    format!(
        "{call} failed ({err}): secret buffers (keys, PINs, passphrases) stay usable but \
         may be written to swap. RLIMIT_MEMLOCK is {limit}; raise it (ulimit -l, systemd \
         LimitMEMLOCK=, docker --ulimit memlock=-1) or grant CAP_IPC_LOCK. Reported by \
         /api/v1/memory-protection/status and metrics.",
        err = std::io::Error::from_raw_os_error(errno.raw_os_error()),
    )
}
