//! Makes committed blocks durable off the writer's path.
//!
//! Block commits are written without an fsync. A flush is an empty write
//! transaction committed with `Durability::Immediate`, which makes every
//! earlier commit durable. Done inline every [`super::MAX_UNSYNCED_COMMITS`]
//! commits, it stalled the engine for the whole batch (tens of ms under
//! load); this thread flushes every [`StoreOptions::block_flush_ms`] instead,
//! a block or two at a time, and the engine only waits if it commits during
//! one. The inline flush stays as the bound when this thread falls behind.
//!
//! The durable view it publishes can only be too low, never too high: the
//! writer publishes a commit's view after the commit returns, and the flush
//! reads it while holding redb's write lock, so no commit can land between
//! the read and the flush.

use super::db::StoreOptions;
use bitcraps_consensus::View;
use redb::{Database, Durability};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the writer and the flush thread share.
#[derive(Debug, Default)]
pub(crate) struct Durable {
    /// The view of the newest committed block (published after its commit).
    pub tip_view: AtomicU64,
    /// The view of the newest block known durable.
    pub durable_view: AtomicU64,
    /// A flush that failed: the writer reports it on its next block commit.
    pub error: Mutex<Option<redb::Error>>,
}

impl Durable {
    pub(crate) fn new(view: View) -> Durable {
        Durable {
            tip_view: AtomicU64::new(view),
            durable_view: AtomicU64::new(view),
            error: Mutex::new(None),
        }
    }

    /// Raises the durable view (flushes may finish out of order with the
    /// writer's own).
    pub(crate) fn durable_at(&self, view: View) {
        self.durable_view.fetch_max(view, Ordering::AcqRel);
    }

    pub(crate) fn durable_view(&self) -> View {
        self.durable_view.load(Ordering::Acquire)
    }

    pub(crate) fn take_error(&self) -> Option<redb::Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The flush thread; stopped (and joined) on drop.
#[derive(Debug)]
pub(crate) struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts flushing `db` every `options.block_flush_ms` (`None` when 0).
    pub(crate) fn start(
        db: Arc<Database>,
        durable: Arc<Durable>,
        options: StoreOptions,
    ) -> std::io::Result<Option<Flusher>> {
        if options.block_flush_ms == 0 {
            return Ok(None);
        }
        let every = Duration::from_millis(options.block_flush_ms);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("block-flush".into())
            .spawn(move || run(&db, &durable, &stop2, every, options.quick_repair))?;
        Ok(Some(Flusher {
            stop,
            handle: Some(handle),
        }))
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(
    db: &Database,
    durable: &Durable,
    stop: &(Mutex<bool>, Condvar),
    every: Duration,
    quick_repair: bool,
) {
    let (flag, wake) = stop;
    loop {
        {
            let stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
            let (stopped, _) = wake
                .wait_timeout_while(stopped, every, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *stopped {
                return;
            }
        }
        if durable.tip_view.load(Ordering::Acquire) <= durable.durable_view() {
            continue;
        }
        match flush(db, durable, quick_repair) {
            Ok(view) => durable.durable_at(view),
            Err(e) => {
                tracing::error!(error = %e, "flushing committed blocks failed");
                *durable.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
        }
    }
}

/// One flush; returns the view it made durable.
fn flush(db: &Database, durable: &Durable, quick_repair: bool) -> Result<View, redb::Error> {
    let mut txn = db.begin_write()?;
    // Read under the write lock: exactly what this commit makes durable (or
    // less, if the writer has not published its last commit yet).
    let view = durable.tip_view.load(Ordering::Acquire);
    txn.set_durability(Durability::Immediate)?;
    txn.set_quick_repair(quick_repair);
    txn.commit()?;
    Ok(view)
}
