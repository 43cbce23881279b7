//! The HTTP server's only clock read.
//!
//! ARCHITECTURE.md invariant 1 keeps clock reads out of everything but runtime
//! implementations. The HTTP server is one: it needs a monotonic clock to refill
//! per-client token buckets and to measure request latency. Every such read
//! goes through [`now`]; everything else in the module takes an `Instant`
//! argument, so the rate limiter is testable with made-up times.
//!
//! (`net` has the same function, but it is private to the transport, and the
//! two modules should not depend on each other.)

use tokio::time::Instant;

/// Monotonic now. The single sanctioned clock read of `http`.
#[allow(clippy::disallowed_methods)] // runtime implementation; see module docs
pub(crate) fn now() -> Instant {
    // tokio's Instant follows tokio's (pausable) clock, so a test that pauses
    // time sees the same time as the server's timers do.
    Instant::now()
}
