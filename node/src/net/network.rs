//! Starting the transport, the accept loop, and the handle the node uses
//! (including the sending half of relaying: see `relay.rs`).

use super::clock::now;
use super::conn::{code, shutdown_requested, Ctx};
use super::frame::{RelayHeader, MAX_RELAY_HOPS, RELAY_HEADER_BYTES};
use super::peer::{lock, Peer};
use super::relay::{pick_relays, RecentDigests};
use super::stats::PeerStats;
use super::task::{run_acceptor, run_dialer};
use super::tls::{self, AllowedKeys, TlsIdentity};
use super::{Incoming, Limits, NetConfig, NetError, PenaltyReason, SendError};
use bitcraps_crypto::PublicKey;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Handshakes in progress at once; more incoming connections are refused so a
/// flood of handshakes cannot exhaust memory or CPU.
const MAX_CONCURRENT_HANDSHAKES: usize = 64;
/// How long [`NetworkHandle::shutdown`] waits for tasks and for the endpoint to
/// drain before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Starts the transport. See the module docs.
#[derive(Debug)]
pub struct Network;

impl Network {
    /// Binds `config.listen` and starts. Must run inside a tokio runtime.
    pub fn start(config: NetConfig) -> Result<(NetworkHandle, mpsc::Receiver<Incoming>), NetError> {
        let socket = UdpSocket::bind(config.listen).map_err(NetError::Bind)?;
        Self::start_with_socket(config, socket)
    }

    /// Starts on an already-bound socket (tests bind port 0 first to learn every
    /// node's address before building configs). `config.listen` is ignored.
    pub fn start_with_socket(
        config: NetConfig,
        socket: UdpSocket,
    ) -> Result<(NetworkHandle, mpsc::Receiver<Incoming>), NetError> {
        config.limits.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NetError::Config(
                "the network must be started inside a tokio runtime".into(),
            ));
        }
        let limits = Arc::new(config.limits);
        let me = config.me;
        let mut infos = BTreeMap::new();
        for p in config.peers.iter().filter(|p| p.index != me) {
            if infos.insert(p.index, p.clone()).is_some() {
                return Err(NetError::Config(format!("peer {} listed twice", p.index)));
            }
        }
        let allowed = AllowedKeys::new(infos.values().map(|p| (p.index, p.identity_key)));
        if infos
            .values()
            .any(|p| p.identity_key == config.identity.public())
            || infos.len()
                != infos
                    .values()
                    .map(|p| p.identity_key)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
        {
            return Err(NetError::Config("identity keys must be distinct".into()));
        }

        tls::install_crypto_provider();
        let identity = TlsIdentity::from_keypair(&config.identity)?;
        let transport = Arc::new(transport_config(&limits)?);
        let server = tls::server_config(&identity, allowed.clone(), Arc::clone(&transport))?;
        socket.set_nonblocking(true).map_err(NetError::Bind)?;
        let local_addr = socket.local_addr().map_err(NetError::Bind)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(NetError::Endpoint)?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let per_peer = limits.inbound_queue_messages;
        let (incoming_tx, incoming_rx) =
            mpsc::channel(per_peer.saturating_mul(infos.len().max(1)).max(1));
        let started = now();
        // Every peer exists before any task starts: a connection's reader may
        // forward a relay frame to any other peer.
        let mut peers = BTreeMap::new();
        let mut handoffs = BTreeMap::new();
        for info in infos.values() {
            let (peer, handoff_rx) = Peer::new(me, info, Arc::clone(&limits), started);
            peers.insert(info.index, peer);
            handoffs.insert(info.index, handoff_rx);
        }
        let peers = Arc::new(peers);
        let ctx = Ctx {
            me,
            limits: Arc::clone(&limits),
            incoming: incoming_tx,
            shutdown: shutdown_rx,
            peers: Arc::clone(&peers),
            recent_relayed: Arc::new(Mutex::new(RecentDigests::new(
                limits.relay_dedup_entries,
                Duration::from_millis(limits.relay_dedup_window_ms),
            ))),
        };
        let mut tasks = Vec::new();
        let my_key = config.identity.public().to_bytes();
        for (info, peer) in infos.values().zip(peers.values()) {
            if peer.we_dial {
                let client = tls::client_config_for(
                    &identity,
                    allowed.clone(),
                    info.index,
                    Arc::clone(&transport),
                )?;
                let seed = jitter_seed(&my_key, me, info.index);
                tasks.push(tokio::spawn(run_dialer(
                    Arc::clone(peer),
                    ctx.clone(),
                    endpoint.clone(),
                    client,
                    allowed.clone(),
                    seed,
                )));
            } else if let Some(handoff_rx) = handoffs.remove(&info.index) {
                tasks.push(tokio::spawn(run_acceptor(
                    Arc::clone(peer),
                    ctx.clone(),
                    handoff_rx,
                )));
            }
        }
        let shared = Arc::new(Shared {
            peers,
            allowed,
            limits,
            refused: AtomicU64::new(0),
        });
        tasks.push(tokio::spawn(accept_loop(
            endpoint.clone(),
            Arc::clone(&shared),
            ctx,
        )));
        let handle = NetworkHandle {
            inner: Arc::new(Inner {
                me,
                local_addr,
                shared,
                shutdown: shutdown_tx,
                endpoint: Mutex::new(Some(endpoint)),
                tasks: Mutex::new(tasks),
            }),
        };
        Ok((handle, incoming_rx))
    }
}

fn transport_config(limits: &Limits) -> Result<quinn::TransportConfig, NetError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(limits.idle_timeout_ms))
        .map_err(|e| NetError::Config(format!("idle_timeout_ms: {e}")))?;
    t.max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(Duration::from_millis(limits.keep_alive_ms)))
        // One unidirectional stream per direction and nothing else.
        .max_concurrent_uni_streams(1u32.into())
        .max_concurrent_bidi_streams(0u32.into())
        .datagram_receive_buffer_size(None);
    Ok(t)
}

/// Seeds reconnect jitter from our key and the pair, so peers redialing the same
/// node spread out.
fn jitter_seed(my_key: &[u8; 32], me: u16, peer: u16) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&my_key[..8]);
    u64::from_le_bytes(head) ^ (u64::from(me) << 16 | u64::from(peer))
}

/// What the accept loop and the handle share.
#[derive(Debug)]
struct Shared {
    peers: Arc<BTreeMap<u16, Arc<Peer>>>,
    allowed: AllowedKeys,
    limits: Arc<Limits>,
    refused: AtomicU64,
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>, ctx: Ctx) {
    let handshakes = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    let mut running = JoinSet::new();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            () = shutdown_requested(&mut shutdown) => return,
            // Reap finished handshakes so the set stays small.
            Some(_) = running.join_next(), if !running.is_empty() => continue,
        };
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            incoming.refuse();
            continue;
        };
        let shared = Arc::clone(&shared);
        running.spawn(async move {
            let _permit = permit;
            handshake(incoming, &shared).await;
        });
    }
}

/// Completes an incoming handshake and hands the connection to its peer task.
async fn handshake(incoming: quinn::Incoming, shared: &Shared) {
    let refuse = |conn: Option<&quinn::Connection>, reason: &'static [u8]| {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = conn {
            c.close(code::REFUSED.into(), reason);
        }
    };
    let timeout = Duration::from_millis(shared.limits.connect_timeout_ms);
    let conn = match tokio::time::timeout(timeout, incoming).await {
        Ok(Ok(c)) => c,
        // Unknown keys fail here, inside the TLS handshake.
        _ => return refuse(None, b""),
    };
    let key = tls::peer_public_key(&conn);
    let peer = key
        .as_ref()
        .and_then(|k| shared.allowed.index_of(k))
        .and_then(|i| shared.peers.get(&i));
    let (Some(peer), Some(key)) = (peer, key) else {
        return refuse(Some(&conn), b"unknown identity");
    };
    if !tls::negotiated_alpn(&conn) {
        return refuse(Some(&conn), b"alpn");
    }
    if peer.we_dial {
        // One connection per pair: we dial this peer, it must not dial us.
        return refuse(Some(&conn), b"wrong direction");
    }
    if peer.breaker_wait(now()).is_some() {
        return refuse(Some(&conn), b"cooling down");
    }
    if let Err(e) = peer.handoff.try_send(conn) {
        let conn = e.into_inner();
        return refuse(Some(&conn), b"busy");
    }
    if shared.allowed.confirm(peer.index, &key) {
        tracing::info!(
            peer = peer.index,
            "peer uses its rotated identity key; previous key retired"
        );
    }
}

/// The node's handle on the transport. Cheap to clone. Dropping the last clone
/// stops the transport (without waiting); prefer [`NetworkHandle::shutdown`].
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    me: u16,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    endpoint: Mutex<Option<quinn::Endpoint>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(ep) = lock(&self.endpoint).take() {
            ep.close(code::SHUTDOWN.into(), b"shutdown");
        }
    }
}

impl NetworkHandle {
    /// Our validator index.
    pub fn me(&self) -> u16 {
        self.inner.me
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    fn check(&self, len: usize) -> Result<(), SendError> {
        if *self.inner.shutdown.borrow() {
            return Err(SendError::ShuttingDown);
        }
        let max = self.inner.shared.limits.max_frame_bytes;
        if len > max {
            return Err(SendError::TooLarge { len, max });
        }
        Ok(())
    }

    /// Queues `bytes` for validator `to`. Never blocks: if the peer's queue is
    /// full the oldest queued message is dropped (and counted in its stats).
    /// Messages queued while disconnected go out after the reconnect; once `to`
    /// has been without a live connection for [`super::Limits::relay_after_ms`],
    /// a copy is also relayed through up to [`super::Limits::relay_fanout`] live
    /// peers (see `relay.rs`).
    pub fn send(&self, to: u16, bytes: Bytes) -> Result<(), SendError> {
        self.check(bytes.len())?;
        let peer = self
            .inner
            .shared
            .peers
            .get(&to)
            .ok_or(SendError::UnknownPeer(to))?;
        let at = now();
        let mut live = None;
        self.route(peer, bytes, at, &mut live);
        Ok(())
    }

    /// Queues `bytes` for every peer (not ourselves), like [`Self::send`].
    pub fn broadcast(&self, bytes: Bytes) -> Result<(), SendError> {
        self.check(bytes.len())?;
        let at = now();
        let mut live = None;
        for peer in self.inner.shared.peers.values() {
            self.route(peer, bytes.clone(), at, &mut live);
        }
        Ok(())
    }

    /// Queues `bytes` for `target`, plus relay copies if it is not live.
    /// `live` caches the live peers across the targets of one broadcast.
    fn route(&self, target: &Peer, bytes: Bytes, at: Instant, live: &mut Option<Vec<u16>>) {
        let shared = &self.inner.shared;
        let fanout = shared.limits.relay_fanout;
        let relayable = bytes.len() + RELAY_HEADER_BYTES <= shared.limits.max_frame_bytes;
        let needs_relay = fanout > 0 && target.wants_relay(at);
        if needs_relay && relayable {
            let live = live.get_or_insert_with(|| {
                shared
                    .peers
                    .values()
                    .filter(|p| p.is_live(at))
                    .map(|p| p.index)
                    .collect()
            });
            let candidates: Vec<u16> = live
                .iter()
                .copied()
                .filter(|&i| i != target.index)
                .collect();
            let header = RelayHeader {
                origin: self.inner.me,
                target: target.index,
                hops_left: MAX_RELAY_HOPS,
            };
            let turn = target.next_relay_turn();
            for relay in pick_relays(&candidates, target.index, fanout, turn) {
                if let Some(r) = shared.peers.get(&relay) {
                    r.enqueue_relay(header, bytes.clone(), at);
                }
            }
        } else if needs_relay {
            target.count_relay_dropped();
        }
        // The direct copy is queued either way: if the connection comes back
        // first, or the relays cannot reach the target, it still arrives.
        target.enqueue(bytes, at);
    }

    /// Reports misbehaviour the node detected on a *connection* (for messages,
    /// prefer [`Self::penalize_message`]). Returns true if the peer was
    /// disconnected for it.
    pub fn penalize(&self, peer: u16, reason: PenaltyReason) -> bool {
        match self.inner.shared.peers.get(&peer) {
            Some(p) => p.penalize(reason, now()),
            None => false,
        }
    }

    /// Reports misbehaviour in a received message (undecodable payload, bad
    /// signature), given its [`Incoming::from`] and [`Incoming::relayed_by`].
    ///
    /// A direct message penalizes its sender like [`Self::penalize`]. A
    /// relayed one blocks relayed messages claiming `from` through
    /// `relayed_by` for the penalty cooldown and disconnects nobody: the
    /// origin is only the relay's claim, so blaming either one alone would let
    /// the other get an honest validator cut off (see `relay.rs`). Returns true
    /// if a peer was disconnected or a relay path blocked.
    pub fn penalize_message(
        &self,
        from: u16,
        relayed_by: Option<u16>,
        reason: PenaltyReason,
    ) -> bool {
        let Some(relay) = relayed_by else {
            return self.penalize(from, reason);
        };
        let peers = &self.inner.shared.peers;
        match peers.get(&relay) {
            Some(r) if from != self.inner.me && peers.contains_key(&from) => {
                r.block_relayed_origin(from, now());
                true
            }
            _ => false,
        }
    }

    /// A snapshot of every peer's statistics, by index.
    pub fn stats(&self) -> Vec<PeerStats> {
        let at = now();
        self.inner
            .shared
            .peers
            .values()
            .map(|p| p.stats(at))
            .collect()
    }

    /// One peer's statistics.
    pub fn peer_stats(&self, peer: u16) -> Option<PeerStats> {
        self.inner.shared.peers.get(&peer).map(|p| p.stats(now()))
    }

    /// Sets the identity keys accepted for validator `index` (identity key
    /// rotation): `current`, and `previous` until a connection authenticated
    /// by `current` is established. Takes effect at the next handshake; live
    /// connections are kept.
    pub fn set_peer_keys(
        &self,
        index: u16,
        current: PublicKey,
        previous: Option<PublicKey>,
    ) -> Result<(), tls::KeyConflict> {
        self.inner.shared.allowed.set(index, current, previous)
    }

    /// The identity keys accepted for validator `index`: (current, previous).
    pub fn peer_keys(&self, index: u16) -> Option<(PublicKey, Option<PublicKey>)> {
        let allowed = &self.inner.shared.allowed;
        Some((allowed.current(index)?, allowed.previous(index)))
    }

    /// Incoming connections refused: unknown keys, failed handshakes, wrong
    /// direction, peers in cooldown, handshake floods.
    pub fn refused_connections(&self) -> u64 {
        self.inner.shared.refused.load(Ordering::Relaxed)
    }

    /// Closes every connection and the endpoint, and waits (bounded) for the
    /// tasks to finish and the socket to be released. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let endpoint = lock(&self.inner.endpoint).take();
        if let Some(ep) = &endpoint {
            ep.close(code::SHUTDOWN.into(), b"shutdown");
        }
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        for mut task in tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        if let Some(ep) = endpoint {
            // Lets the peers receive our CONNECTION_CLOSE; bounded so an
            // unresponsive peer cannot hold shutdown up.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, ep.wait_idle()).await;
        }
    }
}
