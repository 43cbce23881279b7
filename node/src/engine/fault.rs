//! Fault injection for crash tests, off unless its environment variable is set.
//!
//! `BITCRAPS_FAULT_CRASH_AFTER_GUARD_WRITES=N` makes the process abort right
//! after its N-th durable write of the signing guard's state: a signature has
//! just been recorded, and is neither returned to the engine nor broadcast.
//! That is the window where a careless restart could sign a conflicting vote;
//! `node/tests/cluster.rs` crashes a validator there and checks that nobody
//! ever sees two conflicting signatures from it.
//!
//! Read once when the engine opens; costs one relaxed load per guard write.

use bitcraps_crypto::guard::{GuardState, GuardStore, GuardStoreError};
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms the crash.
pub const CRASH_AFTER_GUARD_WRITES_ENV: &str = "BITCRAPS_FAULT_CRASH_AFTER_GUARD_WRITES";

/// A guard store that aborts the process after a number of writes.
#[derive(Debug)]
pub struct CrashAfterWrites<G> {
    inner: G,
    /// Writes left before the crash; 0 = disarmed.
    remaining: AtomicU64,
}

impl<G: GuardStore> CrashAfterWrites<G> {
    /// Armed from [`CRASH_AFTER_GUARD_WRITES_ENV`] if it holds a positive number.
    pub fn from_env(inner: G) -> Self {
        let n = std::env::var(CRASH_AFTER_GUARD_WRITES_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if n > 0 {
            tracing::warn!(
                writes = n,
                "fault injection armed: crash after guard writes"
            );
        }
        CrashAfterWrites {
            inner,
            remaining: AtomicU64::new(n),
        }
    }
}

impl<G: GuardStore> GuardStore for CrashAfterWrites<G> {
    fn load(&self) -> Result<Option<GuardState>, GuardStoreError> {
        self.inner.load()
    }

    fn store(&self, state: &GuardState) -> Result<(), GuardStoreError> {
        self.inner.store(state)?;
        if self.remaining.load(Ordering::Relaxed) > 0
            && self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
        {
            eprintln!("fault injection: aborting after a durable guard write");
            std::process::abort();
        }
        Ok(())
    }
}
