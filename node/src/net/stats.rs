//! Per-peer transport statistics: what `/status`, `/metrics` and operators see.

use super::backoff::BreakerState;
use serde::Serialize;
use std::time::Duration;

/// A snapshot of one peer's connection and traffic. Counters are totals since
/// the network started, across reconnects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerStats {
    /// Validator index.
    pub peer: u16,
    /// A connection is established right now.
    pub connected: bool,
    pub breaker: BreakerState,
    /// QUIC's smoothed round-trip time of the current connection.
    pub rtt_us: Option<u64>,
    /// 95th percentile of the send latency of recent messages: from
    /// [`super::NetworkHandle::send`] to the frame being handed to QUIC. It
    /// measures our queueing and flow-control wait, the part we control.
    pub send_latency_p95_us: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    /// Connections established (first one included).
    pub connects: u64,
    /// Connections established after the first.
    pub reconnects: u64,
    /// Failed dials, connection losses and protocol violations.
    pub errors: u64,
    /// Outbound messages dropped because the peer's queue was full (oldest first).
    pub dropped_queue_full: u64,
    /// Inbound messages dropped by the rate limiter.
    pub dropped_rate_limited: u64,
    /// Times we disconnected the peer for misbehaviour.
    pub penalty_disconnects: u64,
    /// Current penalty score (decays over time).
    pub penalty_score: u32,
    /// Messages waiting in the outbound queue.
    pub queued_messages: usize,
    /// The last error, for operators (never contains key material).
    pub last_error: Option<String>,
    /// Well-formed relay frames received from this peer (relayed to us, or for
    /// us to forward), whatever became of them. Also counted in `messages_in`.
    pub relayed_in: u64,
    /// Relay frames queued to this peer: our messages for a validator we do not
    /// reach, or messages we forward to this peer for another validator.
    pub relayed_out: u64,
    /// Relay frames from this peer that we dropped (relay rate limit, blocked
    /// origin, no live connection to the target), plus messages for this peer
    /// too large to be relayed (those still go out directly on reconnect).
    pub relay_dropped: u64,
    /// Relay frames from this peer carrying a message we had just delivered
    /// through another relay (dropped before the node sees them).
    pub relay_duplicates: u64,
    /// Times the node blocked an origin's relayed messages through this peer
    /// (see `NetworkHandle::penalize_message`).
    pub relay_blocks: u64,
}

/// The most recent send latencies, for percentiles.
#[derive(Debug, Clone)]
pub(crate) struct LatencyWindow {
    samples_us: Vec<u64>,
    next: usize,
}

/// Samples kept per peer.
const LATENCY_WINDOW_SAMPLES: usize = 512;

impl LatencyWindow {
    pub(crate) fn new() -> Self {
        LatencyWindow {
            samples_us: Vec::with_capacity(LATENCY_WINDOW_SAMPLES),
            next: 0,
        }
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if self.samples_us.len() < LATENCY_WINDOW_SAMPLES {
            self.samples_us.push(us);
        } else if let Some(slot) = self.samples_us.get_mut(self.next) {
            *slot = us;
        }
        self.next = (self.next + 1) % LATENCY_WINDOW_SAMPLES;
    }

    /// Nearest-rank 95th percentile.
    pub(crate) fn p95_us(&self) -> Option<u64> {
        if self.samples_us.is_empty() {
            return None;
        }
        let mut sorted = self.samples_us.clone();
        sorted.sort_unstable();
        let rank = (sorted.len() * 95).div_ceil(100).max(1);
        sorted.get(rank - 1).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_of_a_window() {
        let mut w = LatencyWindow::new();
        assert_eq!(w.p95_us(), None);
        for us in 1..=100 {
            w.record(Duration::from_micros(us));
        }
        assert_eq!(w.p95_us(), Some(95));
        // The window forgets old samples.
        for _ in 0..LATENCY_WINDOW_SAMPLES {
            w.record(Duration::from_micros(7));
        }
        assert_eq!(w.p95_us(), Some(7));
    }
}
