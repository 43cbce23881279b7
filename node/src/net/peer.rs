//! Everything we keep about one peer across connections: its outbound queue,
//! counters, rate limiters, penalty score and circuit breaker.
//!
//! The node's handle and the peer's connection tasks share it. Critical sections
//! are a few counter updates, so plain mutexes are enough; no lock is held across
//! an `.await`.

use super::backoff::Breaker;
use super::ratelimit::TokenBucket;
use super::stats::{LatencyWindow, PeerStats};
use super::{Limits, PeerInfo, PenaltyReason};
use bitcraps_crypto::PublicKey;
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::Instant;

/// Locks, recovering from poisoning: every update leaves the state consistent,
/// and a transport that stops because one task panicked would be worse.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A message waiting to be written, with when it was queued (for latency).
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) bytes: Bytes,
    pub(crate) queued_at: Instant,
}

#[derive(Debug)]
struct OutQueue {
    items: VecDeque<Queued>,
    bytes: usize,
}

/// What the reader should do with a frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Deliver,
    Drop,
    Disconnect,
}

#[derive(Debug)]
struct PeerState {
    conn: Option<quinn::Connection>,
    breaker: Breaker,
    penalty_score: f64,
    penalty_at: Instant,
    messages_bucket: TokenBucket,
    bytes_bucket: TokenBucket,
    latency: LatencyWindow,
    bytes_in: u64,
    bytes_out: u64,
    messages_in: u64,
    messages_out: u64,
    connects: u64,
    errors: u64,
    dropped_queue_full: u64,
    dropped_rate_limited: u64,
    penalty_disconnects: u64,
    last_error: Option<String>,
}

/// Shared per-peer state.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) index: u16,
    pub(crate) key: PublicKey,
    pub(crate) addr: SocketAddr,
    /// We dial this peer (our index is lower); otherwise it dials us.
    pub(crate) we_dial: bool,
    limits: Arc<Limits>,
    queue: Mutex<OutQueue>,
    /// Wakes the connection's writer when the queue gains messages.
    pub(crate) wake_writer: Notify,
    state: Mutex<PeerState>,
    /// Bumped to make the current connection close (penalty).
    kick: watch::Sender<u64>,
    /// Caps the messages from this peer that the node holds.
    pub(crate) inbound_permits: Arc<Semaphore>,
    /// Accepted connections are handed to the peer's task here.
    pub(crate) handoff: mpsc::Sender<quinn::Connection>,
}

impl Peer {
    pub(crate) fn new(
        me: u16,
        info: &PeerInfo,
        limits: Arc<Limits>,
        now: Instant,
    ) -> (Arc<Peer>, mpsc::Receiver<quinn::Connection>) {
        let (handoff, handoff_rx) = mpsc::channel(2);
        let state = PeerState {
            conn: None,
            breaker: Breaker::new(
                limits.breaker_failure_threshold,
                Duration::from_millis(limits.breaker_cooldown_ms),
            ),
            penalty_score: 0.0,
            penalty_at: now,
            messages_bucket: TokenBucket::new(
                limits.inbound_messages_per_s,
                limits.inbound_burst_messages,
                now,
            ),
            bytes_bucket: TokenBucket::new(
                limits.inbound_bytes_per_s,
                limits.inbound_burst_bytes,
                now,
            ),
            latency: LatencyWindow::new(),
            bytes_in: 0,
            bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            connects: 0,
            errors: 0,
            dropped_queue_full: 0,
            dropped_rate_limited: 0,
            penalty_disconnects: 0,
            last_error: None,
        };
        let peer = Peer {
            index: info.index,
            key: info.identity_key,
            addr: info.address,
            we_dial: me < info.index,
            inbound_permits: Arc::new(Semaphore::new(limits.inbound_queue_messages)),
            limits,
            queue: Mutex::new(OutQueue {
                items: VecDeque::new(),
                bytes: 0,
            }),
            wake_writer: Notify::new(),
            state: Mutex::new(state),
            kick: watch::Sender::new(0),
            handoff,
        };
        (Arc::new(peer), handoff_rx)
    }

    /// Queues a message, dropping the oldest ones if the queue is full. Newer
    /// consensus messages (higher views) matter more than older ones.
    pub(crate) fn enqueue(&self, bytes: Bytes, now: Instant) {
        let mut dropped = 0u64;
        {
            let mut q = lock(&self.queue);
            while !q.items.is_empty()
                && (q.items.len() >= self.limits.outbound_queue_messages
                    || q.bytes + bytes.len() > self.limits.outbound_queue_bytes)
            {
                if let Some(old) = q.items.pop_front() {
                    q.bytes -= old.bytes.len();
                    dropped += 1;
                }
            }
            q.bytes += bytes.len();
            q.items.push_back(Queued {
                bytes,
                queued_at: now,
            });
        }
        if dropped > 0 {
            lock(&self.state).dropped_queue_full += dropped;
        }
        self.wake_writer.notify_one();
    }

    /// Takes queued messages totalling about `max_bytes` (at least one).
    pub(crate) fn drain(&self, max_bytes: usize) -> Vec<Queued> {
        let mut q = lock(&self.queue);
        let mut out = Vec::new();
        let mut taken = 0usize;
        while let Some(front) = q.items.front() {
            if !out.is_empty() && taken + front.bytes.len() > max_bytes {
                break;
            }
            let Some(item) = q.items.pop_front() else {
                break;
            };
            taken += item.bytes.len();
            q.bytes -= item.bytes.len();
            out.push(item);
        }
        out
    }

    /// Accounts a batch that QUIC accepted.
    pub(crate) fn record_sent(&self, batch: &[Queued], wire_bytes: usize, now: Instant) {
        let mut st = lock(&self.state);
        st.messages_out += batch.len() as u64;
        st.bytes_out += wire_bytes as u64;
        for q in batch {
            st.latency
                .record(now.saturating_duration_since(q.queued_at));
        }
    }

    /// Rate-limits one inbound frame of `wire_bytes`.
    pub(crate) fn admit_inbound(&self, wire_bytes: usize, now: Instant) -> Admit {
        {
            let mut st = lock(&self.state);
            let cost = wire_bytes as u64;
            if st.messages_bucket.has(1, now) && st.bytes_bucket.has(cost, now) {
                st.messages_bucket.take(1);
                st.bytes_bucket.take(cost);
                st.messages_in += 1;
                st.bytes_in += cost;
                return Admit::Deliver;
            }
            st.dropped_rate_limited += 1;
        }
        if self.penalize(PenaltyReason::RateLimited, now) {
            Admit::Disconnect
        } else {
            Admit::Drop
        }
    }

    /// Adds a penalty; at the threshold, opens the breaker for the penalty
    /// cooldown and kicks the current connection. Returns whether it did.
    pub(crate) fn penalize(&self, reason: PenaltyReason, now: Instant) -> bool {
        let limits = &self.limits;
        {
            let mut st = lock(&self.state);
            let elapsed_s = now.saturating_duration_since(st.penalty_at).as_secs_f64();
            st.penalty_score =
                (st.penalty_score - elapsed_s * f64::from(limits.penalty_decay_per_s)).max(0.0)
                    + f64::from(reason.points());
            st.penalty_at = now;
            if st.penalty_score < f64::from(limits.penalty_threshold) {
                return false;
            }
            st.penalty_score = 0.0;
            st.penalty_disconnects += 1;
            st.last_error = Some(format!("disconnected for misbehaviour: {reason:?}"));
            st.breaker
                .trip(now, Duration::from_millis(limits.penalty_cooldown_ms));
        }
        self.kick
            .send_modify(|epoch| *epoch = epoch.wrapping_add(1));
        true
    }

    /// A receiver that changes when the peer is kicked.
    pub(crate) fn kicks(&self) -> watch::Receiver<u64> {
        self.kick.subscribe()
    }

    /// How long until we may dial or accept this peer (`None`: now).
    pub(crate) fn breaker_wait(&self, now: Instant) -> Option<Duration> {
        lock(&self.state).breaker.wait(now)
    }

    pub(crate) fn on_connected(&self, conn: &quinn::Connection) {
        let mut st = lock(&self.state);
        st.breaker.on_success();
        st.connects += 1;
        st.conn = Some(conn.clone());
    }

    pub(crate) fn on_disconnected(&self, error: Option<String>) {
        let mut st = lock(&self.state);
        st.conn = None;
        if let Some(e) = error {
            st.errors += 1;
            st.last_error = Some(e);
        }
    }

    pub(crate) fn on_dial_failure(&self, error: String, now: Instant) {
        let mut st = lock(&self.state);
        st.errors += 1;
        st.last_error = Some(error);
        st.breaker.on_failure(now);
    }

    pub(crate) fn stats(&self, now: Instant) -> PeerStats {
        let queued_messages = lock(&self.queue).items.len();
        let st = lock(&self.state);
        let decayed = (st.penalty_score
            - now.saturating_duration_since(st.penalty_at).as_secs_f64()
                * f64::from(self.limits.penalty_decay_per_s))
        .max(0.0);
        let breaker = st.breaker.state(now);
        PeerStats {
            peer: self.index,
            connected: st.conn.is_some(),
            breaker,
            rtt_us: st
                .conn
                .as_ref()
                .map(|c| u64::try_from(c.rtt().as_micros()).unwrap_or(u64::MAX)),
            send_latency_p95_us: st.latency.p95_us(),
            bytes_in: st.bytes_in,
            bytes_out: st.bytes_out,
            messages_in: st.messages_in,
            messages_out: st.messages_out,
            connects: st.connects,
            reconnects: st.connects.saturating_sub(1),
            errors: st.errors,
            dropped_queue_full: st.dropped_queue_full,
            dropped_rate_limited: st.dropped_rate_limited,
            penalty_disconnects: st.penalty_disconnects,
            // Scores are small; truncation to whole points is intended.
            penalty_score: decayed.min(f64::from(u32::MAX)) as u32,
            queued_messages,
            last_error: st.last_error.clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn breaker_state(&self, now: Instant) -> super::backoff::BreakerState {
        lock(&self.state).breaker.state(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_crypto::Keypair;

    fn peer(limits: Limits) -> Arc<Peer> {
        let info = PeerInfo {
            index: 1,
            identity_key: Keypair::from_seed(&[1; 32]).public(),
            address: "127.0.0.1:1".parse().unwrap(),
        };
        Peer::new(0, &info, Arc::new(limits), Instant::now()).0
    }

    #[tokio::test]
    async fn full_queue_drops_oldest_and_counts() {
        let p = peer(Limits {
            outbound_queue_messages: 3,
            ..Limits::default()
        });
        let now = Instant::now();
        for i in 0..5u8 {
            p.enqueue(Bytes::from(vec![i]), now);
        }
        let s = p.stats(now);
        assert_eq!((s.queued_messages, s.dropped_queue_full), (3, 2));
        let batch = p.drain(1);
        // At least one message per drain, oldest surviving first.
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].bytes[..], [2]);
        let rest = p.drain(usize::MAX);
        assert_eq!(rest.len(), 2);
    }

    #[tokio::test]
    async fn penalties_trip_the_breaker_and_decay() {
        let p = peer(Limits {
            penalty_threshold: 3,
            penalty_decay_per_s: 1,
            inbound_messages_per_s: 1,
            inbound_burst_messages: 1,
            ..Limits::default()
        });
        let t0 = Instant::now();
        let kicks = p.kicks();
        assert_eq!(p.admit_inbound(10, t0), Admit::Deliver);
        assert_eq!(p.admit_inbound(10, t0), Admit::Drop);
        // Decay forgives slow abuse...
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(p.admit_inbound(10, t1), Admit::Deliver);
        assert_eq!(p.admit_inbound(10, t1), Admit::Drop);
        assert_eq!(p.admit_inbound(10, t1), Admit::Drop);
        assert!(!kicks.has_changed().unwrap());
        // ...but not persistent abuse.
        assert_eq!(p.admit_inbound(10, t1), Admit::Disconnect);
        assert!(kicks.has_changed().unwrap());
        assert_eq!(p.breaker_state(t1), crate::net::BreakerState::Open);
        assert!(p.breaker_wait(t1).is_some());
        let s = p.stats(t1);
        assert_eq!((s.dropped_rate_limited, s.penalty_disconnects), (4, 1));
        assert!(p.penalize(PenaltyReason::Garbage, t1));
    }
}
