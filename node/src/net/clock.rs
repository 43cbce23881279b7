//! The transport's only clock read.
//!
//! ARCHITECTURE.md invariant 1 forbids reading the clock outside runtime
//! implementations. This QUIC transport *is* a runtime implementation, and it
//! needs a monotonic clock for rate limiting, backoff, the circuit breaker and
//! latency statistics. Every such read goes through [`now`], so when the node's
//! runtime `Clock` lands it replaces this one function. Everything else in the
//! module takes an `Instant` argument and is testable without a clock.

use tokio::time::Instant;

/// Monotonic now. The single sanctioned clock read of `net`.
#[allow(clippy::disallowed_methods)] // runtime implementation; see module docs
pub(crate) fn now() -> Instant {
    // tokio's Instant follows tokio's (pausable) clock, so tests that pause time
    // see the same time as timers do.
    Instant::now()
}
