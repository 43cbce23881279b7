//! Relay: consensus messages reach a validator across a partial partition
//! through a validator both sides can still reach.
//!
//! # What
//!
//! When the node sends to a peer we have had no live connection to (never
//! connected, lost, or its breaker is open) for at least
//! [`Limits::relay_after_ms`](super::Limits), the message is still queued for
//! that peer as before (it goes out if the connection comes back), and in
//! addition a copy wrapped in a relay frame ([`super::frame::KIND_RELAY`]:
//! `origin | target | hops_left | message`) is queued to up to
//! [`Limits::relay_fanout`](super::Limits::relay_fanout) peers we *are*
//! connected to. A peer that receives a relay frame addressed to someone else
//! forwards it once, if it has a live connection to the target; the target
//! hands the inner message to the node as an [`Incoming`](super::Incoming) with
//! `from = origin` and `relayed_by = Some(relay)`. A live direct connection is
//! always used alone: no relay frames are written for it. The grace period
//! keeps connection set-up and quick reconnects, which the queue covers in
//! order and without duplicates, from being relayed; it is short next to how
//! long a partition lasts, and QUIC only notices a silently cut link after the
//! idle timeout anyway.
//!
//! Relays are picked deterministically among the live peers: the first ones
//! after the target's index (wrapping around), rotated by one per relayed
//! message to that target. The rotation spreads the load over every common
//! neighbour and means that a relay that cannot reach the target either never
//! swallows *every* relayed message (the others still get some through).
//!
//! # Why one hop
//!
//! The issue is a partial partition: A and B cannot talk but both reach some
//! other validator C. One intermediate hop covers exactly that. It is also what
//! consensus needs: a validator that takes part in consensus is connected to a
//! quorum (2f+1 of 3f+1), and two quorums share at least f+1 validators, so at
//! least one honest common neighbour exists between any two such validators.
//! More hops would need either routing state (who reaches whom, gossiped and
//! itself attackable) or flooding, where every hop multiplies the copies by the
//! fanout (fanout^hops per message) and every node needs loop and duplicate
//! suppression. With one hop, a relay writes at most one frame per frame it
//! receives, and the origin at most `relay_fanout` extra frames per message to
//! an unreachable peer. ([`super::frame::MAX_RELAY_HOPS`] is 1; raising it
//! would be a protocol change, not a setting.)
//!
//! # Who may send what ([`route`])
//!
//! With a single hop there are only two legitimate relay frames:
//!
//! * origin O to relay R: `origin = O` (the connection it arrives on),
//!   `target = T` (not R), `hops_left = 1`. R forwards it with `hops_left = 0`.
//! * relay R to target T: `origin = O` (not R, not T), `hops_left = 0`.
//!
//! Anything else (unknown indices, an origin that is us, a relay claiming to be
//! the origin of a frame it delivers, a forward request that does not come from
//! its origin, wrong hop counts, a truncated header) is a protocol violation:
//! penalized like a broken envelope, and the connection is closed.
//!
//! # Authenticity, and whom to blame
//!
//! A relay forwards only frames whose origin is the TLS-authenticated peer they
//! arrived from, so an *honest* relay never vouches for an origin it did not
//! authenticate. The target cannot check that: a byzantine relay can claim any
//! origin. That is acceptable because the transport's `from` is never trusted
//! for content (ARCHITECTURE.md invariant 7): consensus messages are signed with
//! consensus keys and verified by the core, so a forged origin can only make us
//! attribute garbage to the wrong validator. That attribution is the one thing
//! to get right: penalizing the relay would let a byzantine origin get honest
//! relays disconnected by sending garbage through them, and penalizing the
//! origin would let a byzantine relay get honest validators disconnected by
//! forging their index. So misbehaviour in a relayed message is reported with
//! [`NetworkHandle::penalize_message`](super::NetworkHandle::penalize_message),
//! which blocks only that (relay, origin) path for the penalty cooldown and
//! disconnects nobody: whichever of the two lied loses exactly the path it
//! abused, and an honest origin still has its other relays.
//!
//! # Bounds
//!
//! Relay frames from a peer are charged to that peer like any frame (inbound
//! messages/s and bytes/s buckets, its inbound queue permits), and in addition
//! to its relay bucket ([`Limits::relay_messages_per_s`](super::Limits)), so a
//! peer cannot use us as an amplifier or flood the node under other validators'
//! names. Relay excess is dropped and counted but not penalized: an honest relay
//! carrying a partition's traffic may burst. A relayed message is at most
//! `max_frame_bytes - RELAY_HEADER_BYTES`; a larger one is only queued directly
//! (and counted in the target's `relay_dropped`).
//!
//! # Duplicates
//!
//! With a fanout of 2 the target usually receives each relayed message twice.
//! Consensus messages are idempotent, but each copy costs a decode and signature
//! checks, so the target keeps the digests of recently delivered relayed
//! messages ([`RecentDigests`]: blake3 of origin and message, bounded in entries
//! and age) and drops copies it has just delivered. The age bound
//! ([`Limits::relay_dedup_window_ms`](super::Limits), default 250 ms) is kept
//! below the consensus retry interval (500 ms by default) so that a deliberate
//! rebroadcast of identical bytes is not mistaken for a duplicate. Direct
//! messages are not filtered: they cannot be duplicated by the transport.
//!
//! # Compatibility
//!
//! A node built before relays refuses kind 1 as an unknown envelope kind (a
//! protocol violation). Run with `relay_fanout = 0` until every validator runs a
//! relay-aware build; such a node still forwards and accepts relay frames.

use super::frame::RelayHeader;
use crate::fifo::FifoMap;
use bitcraps_crypto::hash::{hash_parts, Hash32};
use std::time::Duration;
use tokio::time::Instant;

/// What to do with a well-formed relay frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// It is for us: deliver the inner message as from `origin`.
    Deliver,
    /// Forward it to `target` with one hop less.
    Forward,
}

/// Decides what a relay frame that arrived on `from`'s connection means to us
/// (`me`), or why it breaks the protocol. `known` says whether an index is in
/// the validator set. See the module docs for the rules.
pub(crate) fn route(
    header: &RelayHeader,
    me: u16,
    from: u16,
    known: impl Fn(u16) -> bool,
) -> Result<Route, &'static str> {
    if !known(header.origin) || !known(header.target) {
        return Err("origin or target not in the validator set");
    }
    if header.target == me {
        if header.origin == me {
            return Err("relayed message claims to come from us");
        }
        if header.origin == from {
            return Err("relay claims to be the origin");
        }
        if header.hops_left != 0 {
            return Err("a delivered relay frame must have no hops left");
        }
        return Ok(Route::Deliver);
    }
    if header.origin != from {
        return Err("forward request not sent by its origin");
    }
    if header.target == from {
        return Err("forward request back to its sender");
    }
    if header.hops_left == 0 {
        return Err("forward request without hops left");
    }
    Ok(Route::Forward)
}

/// Up to `fanout` relays for `target` among `live` (ascending indices, neither
/// us nor the target): the first after `target`, wrapping around, rotated by
/// `turn` so that successive messages use successive relays.
pub(crate) fn pick_relays(live: &[u16], target: u16, fanout: usize, turn: u64) -> Vec<u16> {
    let n = live.len();
    if n == 0 || fanout == 0 {
        return Vec::new();
    }
    let after_target = live.partition_point(|&i| i <= target);
    // n is a peer count (at most u16::MAX + 1), so it fits a u64 and the
    // remainder fits a usize.
    let rotation = usize::try_from(turn % n as u64).unwrap_or(0);
    (0..fanout.min(n))
        .filter_map(|k| live.get((after_target + rotation + k) % n).copied())
        .collect()
}

/// The digest a relayed message is de-duplicated by.
pub(crate) fn digest(origin: u16, inner: &[u8]) -> Hash32 {
    hash_parts(&[&origin.to_be_bytes(), inner])
}

/// Digests of relayed messages delivered recently: at most `capacity` of them,
/// none older than `window`. Pure: callers pass the time in.
#[derive(Debug)]
pub(crate) struct RecentDigests {
    /// False for capacity 0: every message counts as new.
    enabled: bool,
    window: Duration,
    /// Digest → when it was first seen; oldest first.
    seen: FifoMap<Hash32, Instant>,
}

impl RecentDigests {
    /// A filter remembering `capacity` digests for `window` (0 disables it).
    pub(crate) fn new(capacity: usize, window: Duration) -> Self {
        RecentDigests {
            enabled: capacity > 0,
            window,
            seen: FifoMap::new(capacity),
        }
    }

    /// True the first time `digest` is offered within the window (and remembers
    /// it); false for a repeat.
    pub(crate) fn first_sighting(&mut self, digest: Hash32, now: Instant) -> bool {
        if !self.enabled {
            return true;
        }
        while let Some((_, &at)) = self.seen.oldest() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            self.seen.pop_oldest();
        }
        if self.seen.contains_key(&digest) {
            return false;
        }
        self.seen.get_or_insert_with(digest, || now);
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(origin: u16, target: u16, hops_left: u8) -> RelayHeader {
        RelayHeader {
            origin,
            target,
            hops_left,
        }
    }

    #[test]
    fn routing_rules() {
        // We are 1 in a set of 0..4.
        let known = |i: u16| i < 4;
        let r = |hd: RelayHeader, from: u16| route(&hd, 1, from, known);
        assert_eq!(r(h(0, 1, 0), 2), Ok(Route::Deliver));
        assert_eq!(r(h(0, 2, 1), 0), Ok(Route::Forward));
        // Delivery side.
        assert!(r(h(1, 1, 0), 2).is_err(), "origin is us");
        assert!(r(h(2, 1, 0), 2).is_err(), "relay claims to be the origin");
        assert!(r(h(0, 1, 1), 2).is_err(), "hops left at the target");
        assert!(r(h(9, 1, 0), 2).is_err(), "unknown origin");
        // Forwarding side.
        assert!(r(h(3, 2, 1), 0).is_err(), "forged origin");
        assert!(r(h(0, 0, 1), 0).is_err(), "back to the sender");
        assert!(r(h(0, 2, 0), 0).is_err(), "no hops left");
        assert!(r(h(0, 9, 1), 0).is_err(), "unknown target");
    }

    #[test]
    fn relays_start_after_the_target_and_rotate() {
        let live = [1, 3, 4, 6];
        assert_eq!(pick_relays(&live, 2, 2, 0), vec![3, 4]);
        assert_eq!(pick_relays(&live, 5, 2, 0), vec![6, 1]);
        assert_eq!(pick_relays(&live, 6, 2, 0), vec![1, 3]);
        assert_eq!(pick_relays(&live, 2, 2, 1), vec![4, 6]);
        assert_eq!(pick_relays(&live, 2, 2, 5), vec![4, 6]);
        assert_eq!(pick_relays(&live, 2, 9, 0), vec![3, 4, 6, 1]);
        assert_eq!(pick_relays(&live, 2, 0, 0), Vec::<u16>::new());
        assert_eq!(pick_relays(&[], 2, 2, 0), Vec::<u16>::new());
        // Over a full rotation every relay carries the same share.
        let mut uses = [0u32; 7];
        for turn in 0..400 {
            for r in pick_relays(&live, 0, 2, turn) {
                uses[usize::from(r)] += 1;
            }
        }
        assert_eq!(uses, [0, 200, 0, 200, 200, 0, 200]);
    }

    #[test]
    fn recent_digests_forget_by_age_and_by_count() {
        let t0 = Instant::now();
        let window = Duration::from_millis(100);
        let mut f = RecentDigests::new(3, window);
        let d = |i: u8| digest(0, &[i]);
        assert!(f.first_sighting(d(1), t0));
        assert!(!f.first_sighting(d(1), t0));
        assert!(
            f.first_sighting(digest(1, &[1]), t0),
            "origin is part of it"
        );
        // Age: after the window the same digest is new again.
        let t1 = t0 + window;
        assert!(f.first_sighting(d(1), t1));
        assert!(!f.first_sighting(d(1), t1));
        // Count: never more than the capacity, oldest forgotten first.
        for i in 10..20 {
            assert!(f.first_sighting(d(i), t1));
            assert!(f.len() <= 3);
        }
        assert!(!f.first_sighting(d(19), t1));
        assert!(f.first_sighting(d(10), t1));
        let mut off = RecentDigests::new(0, window);
        assert!(off.first_sighting(d(1), t0) && off.first_sighting(d(1), t0));
    }
}
