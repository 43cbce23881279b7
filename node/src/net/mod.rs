//! QUIC transport between validators.
//!
//! What it gives the node: `send(to, bytes)` / `broadcast(bytes)` that never
//! block, and one channel of [`Incoming`] messages tagged with the sending
//! validator's index. What it hides: connections, TLS, framing, reconnection and
//! abuse control.
//!
//! * **Authentication** ([`tls`]): mutual TLS 1.3 where each side's certificate
//!   is self-signed over its ed25519 *identity* key from genesis (not the
//!   consensus key). No CA; a key not in genesis is refused during the handshake.
//! * **One connection per peer pair**: the lower validator index dials, the
//!   higher accepts, so two nodes never race to build two connections. A new
//!   connection from the same peer replaces the old one (it restarted).
//! * **Framing** ([`frame`]): one long-lived unidirectional stream per direction,
//!   `u32` length-prefixed frames with a versioned envelope and a hard size
//!   limit checked before allocation; writes are coalesced.
//! * **Pool** (`task.rs`, `backoff.rs`): redial with jittered exponential backoff,
//!   behind a circuit breaker that also enforces cooldowns after misbehaviour.
//! * **Limits** ([`Limits`]): bounded per-peer outbound queues (oldest dropped
//!   and counted when full), per-peer inbound token buckets (messages/s and
//!   bytes/s; excess dropped and counted), a per-peer cap on messages waiting for
//!   the node (back-pressure goes to that peer only), and penalty scores: a peer
//!   that sends oversize frames or broken envelopes, or that the node reports
//!   through [`NetworkHandle::penalize`] (undecodable or badly signed
//!   messages), is disconnected and refused for a cooldown. Others keep flowing.
//! * **Relay** (`relay.rs`, read its docs): a message for a validator we have no
//!   live connection to also goes, wrapped in a relay frame, through up to
//!   [`Limits::relay_fanout`] validators we do reach, which forward it once. So
//!   consensus keeps working across a partial partition (A and B cut apart, both
//!   reaching C). The receiver sees `from` = the origin and `relayed_by` = the
//!   relay; relayed traffic is rate-limited per relay and de-duplicated.
//! * **Stats** ([`PeerStats`]): rtt, p95 send latency, bytes and messages, reconnects,
//!   errors, breaker state, drop counters and relay counters per peer.
//!
//! The module reads the clock in exactly one place (`clock.rs`).

mod backoff;
mod clock;
mod conn;
pub mod frame;
mod network;
mod peer;
mod ratelimit;
mod relay;
mod stats;
mod task;
pub mod tls;

pub use backoff::BreakerState;
pub use network::{Network, NetworkHandle};
pub use stats::PeerStats;

use bitcraps_crypto::{Keypair, PublicKey};
use bytes::Bytes;
use std::net::{SocketAddr, ToSocketAddrs};
use tokio::sync::OwnedSemaphorePermit;

/// One message received from a validator, directly or through a relay.
///
/// Holding it counts against the inbound queue limit of the connection it
/// arrived on ([`Limits::inbound_queue_messages`]; for a relayed message, the
/// relay's); drop it once handled.
///
/// **Whom to penalize.** For a direct message `from` is the TLS-authenticated
/// peer. For a relayed one it is only what the relay claims (an honest relay
/// checks it, a byzantine one may lie), and `relayed_by` is the connection it
/// came on. So report an undecodable or badly signed message with
/// [`NetworkHandle::penalize_message`]`(from, relayed_by, reason)`, never with
/// `penalize(from)`: for a relayed message that blocks only the (relay,
/// origin) path, because blaming either one alone lets the other get an honest
/// validator cut off (see `relay.rs`). Never trust `from` for content: consensus
/// messages carry their own signatures.
#[derive(Debug)]
pub struct Incoming {
    /// The validator that wrote the message: the TLS-authenticated peer when
    /// `relayed_by` is `None`, the origin claimed by the relay otherwise.
    pub from: u16,
    /// `None` for a direct message; `Some(relay)` when the message arrived
    /// wrapped in a relay frame on `relay`'s connection.
    pub relayed_by: Option<u16>,
    /// The payload (for consensus: an encoded `Message`).
    pub bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// A validator we connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Index in the genesis validator list.
    pub index: u16,
    /// Its QUIC identity key (genesis `identity_key`).
    pub identity_key: PublicKey,
    /// Where its endpoint listens.
    pub address: SocketAddr,
}

/// Everything [`Network::start`] needs.
#[derive(Debug)]
pub struct NetConfig {
    /// Our validator index.
    pub me: u16,
    /// Our QUIC identity key pair (not the consensus key).
    pub identity: Keypair,
    /// The other validators. An entry with our own index is ignored.
    pub peers: Vec<PeerInfo>,
    /// Where to listen (ignored by [`Network::start_with_socket`]).
    pub listen: SocketAddr,
    pub limits: Limits,
}

impl NetConfig {
    /// Peers from genesis: every validator except `me`, with its `address`
    /// resolved. Resolution may block on DNS, so call it at start-up only.
    pub fn from_genesis(
        genesis: &bitcraps_consensus::Genesis,
        me: u16,
        identity: Keypair,
        listen: SocketAddr,
        limits: Limits,
    ) -> Result<Self, NetError> {
        let mut peers = Vec::new();
        for (i, v) in genesis.validators.iter().enumerate() {
            let index =
                u16::try_from(i).map_err(|_| NetError::Config("too many validators".into()))?;
            if index == me {
                continue;
            }
            let address = v
                .address
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    NetError::Config(format!(
                        "validator {index}: cannot resolve address {:?}",
                        v.address
                    ))
                })?;
            peers.push(PeerInfo {
                index,
                identity_key: v.identity_key,
                address,
            });
        }
        Ok(NetConfig {
            me,
            identity,
            peers,
            listen,
            limits,
        })
    }
}

/// Every bound the transport enforces. Units are in the names.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest payload accepted or sent (at most [`frame::MAX_FRAME_BYTES`]).
    pub max_frame_bytes: usize,
    /// Per-peer outbound queue: messages. When full, the oldest is dropped.
    pub outbound_queue_messages: usize,
    /// Per-peer outbound queue: bytes. When full, the oldest are dropped.
    pub outbound_queue_bytes: usize,
    /// Per-peer messages delivered to the node and not yet dropped by it. When
    /// reached, we stop reading from that peer (QUIC flow control pushes back).
    pub inbound_queue_messages: usize,
    /// Inbound token bucket: sustained messages per second per peer.
    pub inbound_messages_per_s: u64,
    /// Inbound token bucket: burst in messages.
    pub inbound_burst_messages: u64,
    /// Inbound token bucket: sustained bytes per second per peer.
    pub inbound_bytes_per_s: u64,
    /// Inbound token bucket: burst in bytes.
    pub inbound_burst_bytes: u64,
    /// Coalesce queued frames into writes of up to this many bytes.
    pub write_batch_bytes: usize,
    /// First redial delay; doubles per failure (with jitter).
    pub reconnect_base_ms: u64,
    /// Largest redial delay.
    pub reconnect_max_ms: u64,
    /// A dial or an accepted handshake that takes longer fails.
    pub connect_timeout_ms: u64,
    /// Consecutive dial failures that open the circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an opened breaker stays open after failures.
    pub breaker_cooldown_ms: u64,
    /// Penalty score at which a peer is disconnected.
    pub penalty_threshold: u32,
    /// Penalty points forgiven per second.
    pub penalty_decay_per_s: u32,
    /// How long a peer disconnected for misbehaviour is refused.
    pub penalty_cooldown_ms: u64,
    /// QUIC keep-alive interval.
    pub keep_alive_ms: u64,
    /// A connection silent for this long is dead.
    pub idle_timeout_ms: u64,
    /// Live peers a message for an unreachable peer is relayed through (0: we
    /// never ask for relays; we still forward and accept them). At most
    /// [`MAX_RELAY_FANOUT`].
    pub relay_fanout: usize,
    /// A peer must have been without a live connection this long before our
    /// messages to it are also relayed (connection set-up and quick
    /// reconnects are covered by its queue, without duplicates).
    pub relay_after_ms: u64,
    /// Relay token bucket: sustained relay frames per second accepted from one
    /// peer (for us or to forward), on top of the inbound limits.
    pub relay_messages_per_s: u64,
    /// Relay token bucket: burst in relay frames.
    pub relay_burst_messages: u64,
    /// Digests of recently delivered relayed messages kept to drop duplicate
    /// copies (0 disables the filter).
    pub relay_dedup_entries: usize,
    /// How long a delivered relayed message's digest is kept. Keep it below the
    /// consensus retry interval so deliberate rebroadcasts are not dropped.
    pub relay_dedup_window_ms: u64,
}

/// Upper bound on [`Limits::relay_fanout`]: every relay is one more copy of the
/// message on the wire.
pub const MAX_RELAY_FANOUT: usize = 8;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: frame::MAX_FRAME_BYTES,
            outbound_queue_messages: 8192,
            outbound_queue_bytes: 64 * 1024 * 1024,
            inbound_queue_messages: 1024,
            inbound_messages_per_s: 50_000,
            inbound_burst_messages: 100_000,
            inbound_bytes_per_s: 64 * 1024 * 1024,
            inbound_burst_bytes: 128 * 1024 * 1024,
            write_batch_bytes: 256 * 1024,
            reconnect_base_ms: 100,
            reconnect_max_ms: 10_000,
            connect_timeout_ms: 5_000,
            breaker_failure_threshold: 5,
            breaker_cooldown_ms: 30_000,
            penalty_threshold: 100,
            penalty_decay_per_s: 1,
            penalty_cooldown_ms: 60_000,
            keep_alive_ms: 1_000,
            idle_timeout_ms: 10_000,
            relay_fanout: 2,
            relay_after_ms: 1_000,
            relay_messages_per_s: 10_000,
            relay_burst_messages: 20_000,
            relay_dedup_entries: 4096,
            relay_dedup_window_ms: 250,
        }
    }
}

impl Limits {
    /// Refuses limits that cannot work.
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |what: &str| Err(NetError::Config(format!("limits: {what}")));
        if self.max_frame_bytes == 0 || self.max_frame_bytes > frame::MAX_FRAME_BYTES {
            return bad("max_frame_bytes must be 1..=MAX_FRAME_BYTES");
        }
        if self.outbound_queue_messages == 0 || self.outbound_queue_bytes < self.max_frame_bytes {
            return bad("the outbound queue must hold at least one maximum frame");
        }
        if self.inbound_queue_messages == 0 || self.write_batch_bytes == 0 {
            return bad("inbound_queue_messages and write_batch_bytes must be positive");
        }
        if self.inbound_messages_per_s == 0 || self.inbound_bytes_per_s == 0 {
            return bad("inbound rates must be positive");
        }
        if self.reconnect_base_ms == 0 || self.reconnect_max_ms < self.reconnect_base_ms {
            return bad("need 0 < reconnect_base_ms <= reconnect_max_ms");
        }
        if self.connect_timeout_ms == 0 || self.idle_timeout_ms == 0 {
            return bad("timeouts must be positive");
        }
        if self.penalty_threshold == 0 {
            return bad("penalty_threshold must be positive");
        }
        if self.relay_fanout > MAX_RELAY_FANOUT {
            return bad("relay_fanout must be at most MAX_RELAY_FANOUT");
        }
        if self.relay_messages_per_s == 0 {
            return bad("relay_messages_per_s must be positive");
        }
        Ok(())
    }
}

/// Why the node (or this peer's traffic) earned a penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenaltyReason {
    /// A payload that does not decode.
    Garbage,
    /// A message whose signature does not verify.
    BadSignature,
    /// A frame above the size limit.
    Oversize,
    /// A broken envelope or stream misuse.
    Protocol,
    /// Traffic above the inbound rate limit (per dropped message).
    RateLimited,
}

impl PenaltyReason {
    /// Points added to the score. Honest validators never send garbage,
    /// oversize or badly signed messages, so each of those costs the full
    /// default threshold: one is enough to be disconnected. Bursts above the rate
    /// limit can happen to honest peers, so only persistent excess adds up.
    pub fn points(self) -> u32 {
        match self {
            PenaltyReason::Garbage
            | PenaltyReason::BadSignature
            | PenaltyReason::Oversize
            | PenaltyReason::Protocol => 100,
            PenaltyReason::RateLimited => 1,
        }
    }
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network configuration: {0}")]
    Config(String),
    #[error("binding the UDP socket: {0}")]
    Bind(#[source] std::io::Error),
    #[error("creating the QUIC endpoint: {0}")]
    Endpoint(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Why a message was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("unknown peer {0}")]
    UnknownPeer(u16),
    #[error("message of {len} bytes exceeds the {max}-byte frame limit")]
    TooLarge { len: usize, max: usize },
    #[error("the network is shutting down")]
    ShuttingDown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_consensus::{Genesis, Validator};

    #[test]
    fn peers_from_genesis_skip_ourselves_and_resolve_addresses() {
        let key = |i: u8| Keypair::from_seed(&[i; 32]).public();
        let genesis = Genesis {
            chain_id: "net-test".into(),
            genesis_time_ms: 0,
            validators: (0..3u8)
                .map(|i| Validator {
                    name: format!("v{i}"),
                    consensus_key: key(i),
                    identity_key: key(100 + i),
                    address: format!("127.0.0.1:{}", 7000 + u16::from(i)),
                })
                .collect(),
            params: Default::default(),
        };
        let listen = "127.0.0.1:0".parse().unwrap();
        let cfg = NetConfig::from_genesis(
            &genesis,
            1,
            Keypair::from_seed(&[101; 32]),
            listen,
            Limits::default(),
        )
        .unwrap();
        let got: Vec<_> = cfg
            .peers
            .iter()
            .map(|p| (p.index, p.address.port()))
            .collect();
        assert_eq!(got, vec![(0, 7000), (2, 7002)]);
        assert_eq!(cfg.peers[1].identity_key, key(102));
        let mut bad = genesis.clone();
        bad.validators[2].address = "not an address".into();
        let err = NetConfig::from_genesis(
            &bad,
            1,
            Keypair::from_seed(&[101; 32]),
            listen,
            Limits::default(),
        );
        assert!(matches!(err, Err(NetError::Config(_))));
        assert!(Limits::default().validate().is_ok());
        let tiny_queue = Limits {
            outbound_queue_bytes: 10,
            ..Limits::default()
        };
        assert!(tiny_queue.validate().is_err());
        let wide = Limits {
            relay_fanout: MAX_RELAY_FANOUT + 1,
            ..Limits::default()
        };
        assert!(wide.validate().is_err());
    }
}
