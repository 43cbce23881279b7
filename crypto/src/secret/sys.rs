//! The raw memory calls behind [`SecretBuf`](super::SecretBuf): the only module of
//! the workspace that may contain `unsafe` (DESIGN.md, invariant 6).
//!
//! Every `unsafe` block here does exactly one unsafe operation
//! (`clippy::multiple_unsafe_ops_per_block`), carries a `// SAFETY:` comment
//! (`clippy::undocumented_unsafe_blocks`) and has a row in UNSAFE_AUDIT.md with
//! its file and line (`scripts/check-unsafe.sh` checks all three stay true).
//!
//! A [`Mapping`] is one private anonymous mapping laid out as
//!
//! ```text
//!   base                base+page                      base+page+data_len
//!   | leading guard page | data pages (read/write, locked) | trailing guard page |
//!     PROT_NONE                                               PROT_NONE
//! ```
//!
//! It owns the whole range from `mmap` to `munmap`: nothing else in the process
//! has a pointer into it, which is what makes handing out `&[u8]`/`&mut [u8]`
//! views of the data pages sound. On drop it zeroizes the data pages (volatile
//! writes, so the compiler cannot drop them as dead stores), unlocks, and unmaps
//! the guard pages with the data.
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use rustix::io::Errno;
use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};
use std::ffi::c_void;
use std::ptr::NonNull;
use zeroize::Zeroize;

/// A failed system call: which one, and its errno.
pub(super) type SysError = (&'static str, Errno);

/// The system page size (guard pages are one page each).
pub(super) fn page_size() -> usize {
    rustix::param::page_size()
}

/// One guard-paged anonymous mapping (see the module docs).
pub(super) struct Mapping {
    /// Start of the leading guard page; page-aligned (from `mmap`).
    base: NonNull<u8>,
    /// Length of the whole mapping, guard pages included.
    total_len: usize,
    /// One page: the size of each guard and the offset of the data pages.
    page: usize,
    /// Length of the data pages (a non-zero multiple of `page`).
    data_len: usize,
    /// The data pages are PROT_READ|PROT_WRITE (set once `mprotect` succeeded).
    /// Until then they are PROT_NONE and must not be touched, not even by drop.
    writable: bool,
    /// `mlock` succeeded on the data pages, so drop must `munlock` them.
    locked: bool,
}

// SAFETY: a Mapping exclusively owns its pages (no other pointer into them exists,
// it is not Clone, and it hands out views only through &self/&mut self), so moving
// it to another thread moves sole ownership, like a Box<[u8]>.
unsafe impl Send for Mapping {}
// SAFETY: there is no interior mutability: &self methods only read the data pages
// and mutation needs &mut self, so shared references on several threads can only
// read concurrently, which is race-free.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `data_len` bytes rounded up to whole pages between two guard pages.
    /// The data pages come back zero-filled from the kernel. Not yet locked: call
    /// [`Mapping::lock`].
    pub(super) fn new(data_len: usize) -> Result<Mapping, SysError> {
        let page = page_size();
        debug_assert!(page.is_power_of_two());
        let data_len = data_len.max(1).div_ceil(page) * page;
        let total_len = data_len + 2 * page;
        // Map everything inaccessible first, then open the data window: the guard
        // pages are never accessible, not even for an instant.
        // SAFETY: a null hint with no MAP_FIXED lets the kernel choose an unused
        // range, so no existing mapping (and no Rust object) is replaced or aliased.
        let raw = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                total_len,
                ProtFlags::empty(),
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| ("mmap", e))?;
        let base = NonNull::new(raw.cast::<u8>()).ok_or(("mmap", Errno::NOMEM))?;
        // From here on `Drop` owns the unmapping, also on the error paths below.
        let mut map = Mapping {
            base,
            total_len,
            page,
            data_len,
            writable: false,
            locked: false,
        };
        let data = map.data_ptr();
        // SAFETY: `data..data+data_len` lies inside the mapping created above (one
        // page after its page-aligned start), which this function exclusively owns;
        // only its protection changes, no Rust reference to it exists yet.
        unsafe { rustix::mm::mprotect(data, data_len, MprotectFlags::READ | MprotectFlags::WRITE) }
            .map_err(|e| ("mprotect", e))?;
        map.writable = true;
        // Keep the secret out of core dumps and out of the address space of a
        // forked child (it sees zeros). Advice only: failure (an old kernel) is not
        // an error, the buffer is still guarded and wiped.
        for advice in [Advice::LinuxDontDump, Advice::LinuxWipeOnFork] {
            // SAFETY: the range is the data pages of our own mapping; madvise with
            // these two advices changes dump/fork behaviour, never the contents.
            let _ = unsafe { rustix::mm::madvise(data, data_len, advice) };
        }
        Ok(map)
    }

    /// Pins the data pages in RAM (`mlock`) so the secret is never written to
    /// swap. Fails under a small RLIMIT_MEMLOCK without CAP_IPC_LOCK; the caller
    /// decides what to do (SecretBuf counts it, warns once and carries on).
    pub(super) fn lock(&mut self) -> Result<(), SysError> {
        if self.locked {
            return Ok(());
        }
        // SAFETY: the range is exactly the data pages of this live mapping; mlock
        // changes residency, never contents or protection.
        unsafe { rustix::mm::mlock(self.data_ptr(), self.data_len) }.map_err(|e| ("mlock", e))?;
        self.locked = true;
        Ok(())
    }

    pub(super) fn is_locked(&self) -> bool {
        self.locked
    }

    /// Length of the data pages (a multiple of the page size).
    pub(super) fn data_len(&self) -> usize {
        self.data_len
    }

    /// The data pages. Their last byte sits right before the trailing guard page.
    pub(super) fn data(&self) -> &[u8] {
        debug_assert!(self.writable);
        // SAFETY: `data_ptr()` is page-aligned and non-null; the next `data_len` bytes
        // stay mapped, readable and initialized (kernel zero-fill) while `self` lives,
        // and the shared borrow of self rules out any `&mut` view while the slice lives.
        unsafe { std::slice::from_raw_parts(self.data_ptr().cast::<u8>(), self.data_len) }
    }

    /// The data pages, mutably.
    pub(super) fn data_mut(&mut self) -> &mut [u8] {
        debug_assert!(self.writable);
        // SAFETY: as for `data`, and the range is writable; `&mut self` makes this
        // the only view of the pages while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr().cast::<u8>(), self.data_len) }
    }

    /// Start of the data pages: one page after the mapping's start.
    fn data_ptr(&self) -> *mut c_void {
        // `wrapping_add` keeps this free of unsafe; `page < total_len`, so the
        // result is in bounds anyway.
        self.base.as_ptr().wrapping_add(self.page).cast::<c_void>()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.writable {
            // Volatile writes plus a compiler fence (zeroize): not optimised away
            // although the memory is unmapped right after.
            self.data_mut().zeroize();
            #[cfg(test)]
            hooks::before_unmap(self.data());
        }
        if self.locked {
            // SAFETY: exactly the range `lock` locked, still mapped. Unlocking after
            // the wipe means the secret never reaches swap.
            let r = unsafe { rustix::mm::munlock(self.data_ptr(), self.data_len) };
            debug_assert!(r.is_ok(), "munlock: {r:?}");
        }
        // SAFETY: `base`/`total_len` are exactly what mmap returned; `&mut self` in
        // drop means no slice into the pages is alive, and nothing uses them after.
        let r = unsafe { rustix::mm::munmap(self.base.as_ptr().cast::<c_void>(), self.total_len) };
        debug_assert!(r.is_ok(), "munmap: {r:?}");
    }
}

/// Test-only hooks into the real drop path and the guard pages.
#[cfg(test)]
pub(super) mod hooks {
    use std::cell::{Cell, RefCell};

    /// What the last armed drop on this thread saw: (address, bytes) of the data
    /// pages after the zeroize and before munmap.
    pub(in crate::secret) type Seen = (usize, Vec<u8>);

    thread_local! {
        static ARMED: Cell<bool> = const { Cell::new(false) };
        static SEEN: RefCell<Option<Seen>> = const { RefCell::new(None) };
    }

    /// The next `Mapping` dropped on this thread records its data pages.
    pub(in crate::secret) fn arm_before_unmap() {
        SEEN.with(|s| s.borrow_mut().take());
        ARMED.with(|a| a.set(true));
    }

    pub(in crate::secret) fn take_before_unmap() -> Option<Seen> {
        SEEN.with(|s| s.borrow_mut().take())
    }

    pub(super) fn before_unmap(data: &[u8]) {
        if ARMED.with(|a| a.replace(false)) {
            SEEN.with(|s| *s.borrow_mut() = Some((data.as_ptr() as usize, data.to_vec())));
        }
    }

    /// Writes one byte at `at` (an address inside a guard page of a live
    /// mapping). Only the guard-page child test calls this, and it dies here.
    pub(in crate::secret) fn poke_guard(at: *mut u8) {
        // SAFETY: deliberately invalid: `at` is in a PROT_NONE guard page of our own
        // live mapping, so the MMU faults before any byte changes and the kernel kills
        // the (child) process with SIGSEGV; no Rust object lives there to observe it.
        unsafe { std::ptr::write_volatile(at, 0x41) };
    }
}
