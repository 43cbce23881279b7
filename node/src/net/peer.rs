//! Everything we keep about one peer across connections: its outbound queue,
//! counters, rate limiters (relay included), penalty score, circuit breaker and
//! the origins whose relayed messages through it are blocked.
//!
//! The node's handle and the peer's connection tasks share it. Critical sections
//! are a few counter updates, so plain mutexes are enough; no lock is held across
//! an `.await`.

use super::backoff::{Breaker, BreakerState};
use super::frame::{Frame, RelayHeader};
use super::ratelimit::TokenBucket;
use super::stats::{LatencyWindow, PeerStats};
use super::{Limits, PeerInfo, PenaltyReason};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::Instant;

/// Locks, recovering from poisoning: every update leaves the state consistent,
/// and a transport that stops because one task panicked would be worse.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A frame waiting to be written, with when it was queued (for latency).
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) frame: Frame,
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
    /// Since when we have had no connection (from start until the first one).
    down_since: Option<Instant>,
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
    relay_bucket: TokenBucket,
    relayed_in: u64,
    relayed_out: u64,
    relay_dropped: u64,
    relay_duplicates: u64,
    relay_blocks: u64,
    /// Origins whose relayed messages through this peer we drop, and until when
    /// (at most one entry per validator).
    relay_blocked: BTreeMap<u16, Instant>,
}

/// Shared per-peer state.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) index: u16,
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
    /// Messages relayed *to* this peer so far; rotates the choice of relays.
    relay_turn: AtomicU64,
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
            down_since: Some(now),
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
            relay_bucket: TokenBucket::new(
                limits.relay_messages_per_s,
                limits.relay_burst_messages,
                now,
            ),
            relayed_in: 0,
            relayed_out: 0,
            relay_dropped: 0,
            relay_duplicates: 0,
            relay_blocks: 0,
            relay_blocked: BTreeMap::new(),
        };
        let peer = Peer {
            index: info.index,
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
            relay_turn: AtomicU64::new(0),
        };
        (Arc::new(peer), handoff_rx)
    }

    /// Queues a message, dropping the oldest ones if the queue is full. Newer
    /// consensus messages (higher views) matter more than older ones.
    pub(crate) fn enqueue(&self, bytes: Bytes, now: Instant) {
        self.enqueue_frame(Frame::Data(bytes), now);
    }

    /// Queues a relay frame for this peer (to forward, or for it as the target).
    pub(crate) fn enqueue_relay(&self, header: RelayHeader, inner: Bytes, now: Instant) {
        lock(&self.state).relayed_out += 1;
        self.enqueue_frame(Frame::Relay { header, inner }, now);
    }

    fn enqueue_frame(&self, frame: Frame, now: Instant) {
        let len = frame.payload_len();
        let mut dropped = 0u64;
        {
            let mut q = lock(&self.queue);
            while !q.items.is_empty()
                && (q.items.len() >= self.limits.outbound_queue_messages
                    || q.bytes + len > self.limits.outbound_queue_bytes)
            {
                if let Some(old) = q.items.pop_front() {
                    q.bytes -= old.frame.payload_len();
                    dropped += 1;
                }
            }
            q.bytes += len;
            q.items.push_back(Queued {
                frame,
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
            let len = front.frame.payload_len();
            if !out.is_empty() && taken + len > max_bytes {
                break;
            }
            let Some(item) = q.items.pop_front() else {
                break;
            };
            taken += len;
            q.bytes -= len;
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

    /// Whether messages for this peer can go over a connection right now: one
    /// is established and not closing, and the breaker is not open (it opens
    /// when we penalize the peer, just before the connection is kicked).
    pub(crate) fn is_live(&self, now: Instant) -> bool {
        Self::live(&lock(&self.state), now)
    }

    fn live(st: &PeerState, now: Instant) -> bool {
        st.conn.as_ref().is_some_and(|c| c.close_reason().is_none())
            && st.breaker.state(now) != BreakerState::Open
    }

    /// Whether messages for this peer should also be relayed: it is not live
    /// and has had no connection for at least `relay_after_ms`. The grace
    /// keeps connection set-up and quick reconnects (which the queue covers)
    /// from producing relayed duplicates.
    pub(crate) fn wants_relay(&self, now: Instant) -> bool {
        let st = lock(&self.state);
        let grace = Duration::from_millis(self.limits.relay_after_ms);
        !Self::live(&st, now)
            && st
                .down_since
                .is_some_and(|t| now.saturating_duration_since(t) >= grace)
    }

    /// The next turn of the relay rotation for messages to this peer.
    pub(crate) fn next_relay_turn(&self) -> u64 {
        self.relay_turn.fetch_add(1, Ordering::Relaxed)
    }

    /// Accounts a well-formed relay frame from this peer claiming `origin`, and
    /// says whether to act on it: not if that origin is blocked through this
    /// peer, nor above the relay rate limit (dropped and counted, not
    /// penalized: an honest relay may burst during a partition).
    pub(crate) fn admit_relay(&self, origin: u16, now: Instant) -> bool {
        let mut st = lock(&self.state);
        st.relayed_in += 1;
        let blocked = st
            .relay_blocked
            .get(&origin)
            .is_some_and(|&until| now < until);
        if blocked || !st.relay_bucket.has(1, now) {
            st.relay_dropped += 1;
            return false;
        }
        st.relay_bucket.take(1);
        true
    }

    /// A relayed message from this peer that we could not deliver or forward,
    /// or a message for this peer that could not be relayed.
    pub(crate) fn count_relay_dropped(&self) {
        lock(&self.state).relay_dropped += 1;
    }

    /// A relayed message from this peer that we had just delivered already.
    pub(crate) fn count_relay_duplicate(&self) {
        lock(&self.state).relay_duplicates += 1;
    }

    /// Drops relayed messages from this peer that claim `origin`, for the
    /// penalty cooldown (the node found one of them undecodable or badly
    /// signed). Neither this peer nor the origin is disconnected: see the
    /// blame discussion in `relay.rs`.
    pub(crate) fn block_relayed_origin(&self, origin: u16, now: Instant) {
        let until = now + Duration::from_millis(self.limits.penalty_cooldown_ms);
        let mut st = lock(&self.state);
        st.relay_blocked.retain(|_, &mut u| now < u);
        st.relay_blocked.insert(origin, until);
        st.relay_blocks += 1;
        st.last_error = Some(format!("relayed messages from {origin} blocked"));
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
        st.down_since = None;
    }

    pub(crate) fn on_disconnected(&self, error: Option<String>, now: Instant) {
        let mut st = lock(&self.state);
        st.conn = None;
        st.down_since = Some(now);
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
            relayed_in: st.relayed_in,
            relayed_out: st.relayed_out,
            relay_dropped: st.relay_dropped,
            relay_duplicates: st.relay_duplicates,
            relay_blocks: st.relay_blocks,
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
        assert_eq!(batch[0].frame, Frame::Data(Bytes::from_static(&[2])));
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

    #[tokio::test]
    async fn relay_bucket_and_blocked_origins() {
        let p = peer(Limits {
            relay_messages_per_s: 1,
            relay_burst_messages: 2,
            penalty_cooldown_ms: 1_000,
            ..Limits::default()
        });
        let t0 = Instant::now();
        assert!(p.admit_relay(3, t0));
        assert!(p.admit_relay(3, t0));
        assert!(!p.admit_relay(3, t0));
        let t1 = t0 + Duration::from_secs(1);
        assert!(p.admit_relay(3, t1));
        p.block_relayed_origin(4, t1);
        let t2 = t1 + Duration::from_secs(5);
        assert!(!p.admit_relay(4, t1 + Duration::from_millis(999)));
        assert!(p.admit_relay(3, t2), "only the blocked origin is dropped");
        assert!(p.admit_relay(4, t2), "the block ends with the cooldown");
        p.count_relay_duplicate();
        let s = p.stats(t2);
        assert_eq!(
            (
                s.relayed_in,
                s.relay_dropped,
                s.relay_duplicates,
                s.relay_blocks
            ),
            (7, 2, 1, 1)
        );
        // Relay frames count against the outbound queue like any other.
        let header = RelayHeader {
            origin: 0,
            target: 1,
            hops_left: 0,
        };
        p.enqueue_relay(header, Bytes::from_static(b"x"), t2);
        let s = p.stats(t2);
        assert_eq!((s.relayed_out, s.queued_messages), (1, 1));
        assert!(!p.is_live(t2));
        assert!(p.wants_relay(t2), "never connected, grace long over");
    }
}
