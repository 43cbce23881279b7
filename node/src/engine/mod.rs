//! The validator engine: one tokio task per validator that drives the pure
//! consensus core (`bitcraps_consensus::Core`) with real time, the QUIC
//! transport ([`crate::net`]), redb storage ([`crate::storage`]) and the
//! signing guard.
//!
//! Why a single task: the runtime contract (`consensus/src/io.rs`) requires the
//! core's effects to run **in order**, and a durable `Persist` to be on disk
//! before any later effect (persist before you speak). One task that owns the
//! core and the [`Store`](crate::storage::Store) gives that ordering for free. It waits, with
//! `tokio::select!`, on:
//!
//! * frames from the network (decoded with `Message::decode`; undecodable frames
//!   penalize the sender),
//! * the earliest pending timer ([`timers`]),
//! * finished signatures (the guard's `sign_vote` runs in a spawned task so a
//!   slow remote signer never stalls the loop),
//! * shutdown.
//!
//! * verified transactions from [`admission`] (signatures are checked in
//!   batches on a verifier thread; the engine checks nonces and fills the
//!   mempool).
//!
//! Payload requests are answered immediately from the bounded
//! [`Mempool`](crate::app::mempool::Mempool); an empty payload is fine.
//! Committed blocks are executed by [`execute`] and stored together with their
//! state changes.
//!
//! Storage calls are synchronous redb transactions made inline on the engine
//! task. That blocks one runtime worker for the length of an fsync, which is
//! the point: nothing else in this validator's consensus may proceed before the
//! write is durable, and keeping the writes on the one task keeps them ordered.
//! Other tasks (network, other engines in tests) keep running on the remaining
//! workers, so run the engine on a multi-thread runtime.
//!
//! Files under `data_dir`: `db` (redb: committed blocks, application state
//! and receipts), `db-wal` (redb: the consensus WAL), `txindex` (redb: transaction id → height, derived
//! from `db` by [`indexer`]), `guard_state` (the signing guard's double-sign
//! protection, kept apart from the database on purpose; see `storage` module
//! docs) and, once a validator rotated its QUIC identity key,
//! `identity_rotations.json` ([`rotation`]).

pub mod admission;
pub mod beacon;
pub mod clock;
mod execute;
pub mod fault;
pub mod gossip;
pub mod indexer;
pub mod progress;
pub mod rotation;
mod runner;
pub mod timers;
pub mod trace_frame;
mod tx_trace;
pub mod txlog;

pub use admission::{SubmitError, SubmitTrace};
pub use beacon::BeaconStats;
pub use clock::{Clock, SystemClock};
pub use execute::VERIFIED_CACHE_ENTRIES;

use crate::app::mempool::{Mempool, MempoolConfig};
use crate::app::state::Receipt;
use crate::app::{AppGenesis, Supply};
use crate::net::{Limits, NetError, NetworkHandle, PeerStats};
use crate::storage::{Reader, StorageError, TxIndex};
use crate::trace::tracker::{CorrelationTracker, TrackerConfig};
use admission::Admission;
use bitcraps_consensus::{Genesis, Height, View};
use bitcraps_crypto::beacon::SecretShare;
use bitcraps_crypto::signer::{InMemorySigner, Signer};
use bitcraps_crypto::{Hash32, Keypair, PublicKey};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use txlog::{TxLog, TxTimes};

/// Default for [`EngineConfig::empty_block_delay_ms`]: an idle chain commits
/// at most ~20 empty blocks per second instead of hundreds.
pub const DEFAULT_EMPTY_BLOCK_DELAY_MS: u64 = 50;

/// Where the engine's QUIC endpoint listens.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address at start.
    Addr(SocketAddr),
    /// Use an already-bound socket (tests bind port 0 first to learn addresses).
    Socket(UdpSocket),
}

/// Everything [`Engine::start`] needs.
#[derive(Debug)]
pub struct EngineConfig {
    /// The chain. Peers' identity keys and addresses come from its validators.
    pub genesis: Genesis,
    /// Our validator index in `genesis`.
    pub me: u16,
    /// QUIC identity key: genesis `identity_key`, or the key of our latest
    /// identity rotation accepted in `data_dir` (see [`rotation`]).
    pub identity: Keypair,
    /// Holds the consensus key (genesis `consensus_key`): in memory, an
    /// encrypted keystore or an HSM. Used only through the signing guard.
    pub signer: Arc<dyn Signer>,
    /// Directory for the database and the guard state (created if missing).
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    /// Initial application state (used when the database is empty).
    pub app: AppGenesis,
    pub mempool: MempoolConfig,
    /// When our mempool is empty, wait this long for transactions before
    /// proposing an empty block (capped at a quarter of the view timeout).
    pub empty_block_delay_ms: u64,
    /// Our share of the dice beacon key (`None`: we sign no beacon rounds,
    /// but still recover and propose rounds from the others' shares).
    pub beacon_share: Option<SecretShare>,
    /// Where transaction stage times go (shared with the HTTP API).
    pub tracker: Arc<CorrelationTracker>,
    /// Store each block's receipts (in the block's commit) and index them by
    /// transaction id in the background ([`indexer`]), so
    /// `GET /api/v1/tx/{hash}` answers for any committed transaction. Off, a
    /// validator that serves no lookups stores no receipts and runs no index
    /// thread; only the recent transaction log then knows a transaction
    /// committed. Not part of consensus: the state root is the same either
    /// way.
    pub index_receipts: bool,
}

impl EngineConfig {
    /// A config with default limits, the system clock and the default mempool.
    pub fn new(
        genesis: Genesis,
        me: u16,
        identity: Keypair,
        consensus_key: Keypair,
        data_dir: impl Into<PathBuf>,
        listen: Listen,
    ) -> Self {
        let signer: Arc<dyn Signer> = Arc::new(InMemorySigner::new(consensus_key));
        Self::with_signer(genesis, me, identity, signer, data_dir, listen)
    }

    /// Like [`EngineConfig::new`], with the consensus key behind any backend.
    pub fn with_signer(
        genesis: Genesis,
        me: u16,
        identity: Keypair,
        signer: Arc<dyn Signer>,
        data_dir: impl Into<PathBuf>,
        listen: Listen,
    ) -> Self {
        EngineConfig {
            genesis,
            me,
            identity,
            signer,
            data_dir: data_dir.into(),
            listen,
            limits: Limits::default(),
            clock: Arc::new(SystemClock::new()),
            app: AppGenesis::default(),
            mempool: MempoolConfig::default(),
            empty_block_delay_ms: DEFAULT_EMPTY_BLOCK_DELAY_MS,
            beacon_share: None,
            tracker: Arc::new(CorrelationTracker::new(TrackerConfig::default())),
            index_receipts: true,
        }
    }
}

/// A snapshot of the engine's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStatus {
    /// Highest committed height.
    pub height: Height,
    /// The view the core is in.
    pub view: View,
    /// Id of the block at `height` (the genesis block's id at height 0).
    pub committed_id: Hash32,
    /// Peers with a live connection.
    pub peers_connected: usize,
    /// View of the block at `height`.
    pub committed_view: View,
    /// Application state root after executing `height`.
    pub state_root: Hash32,
    /// Transactions executed since genesis (accepted and rejected).
    pub committed_tx: u64,
    /// Far behind the views heard from peers (see [`progress`]).
    pub catching_up: bool,
    /// Blocks committed per second over the last window, in thousandths (an
    /// integer so the status stays `Eq`).
    pub commit_rate_milli: u64,
    /// The validator has heard from the network since it started (entered a
    /// later view or committed a block); until then its state may be stale.
    pub live: bool,
    /// Evidence of double signing seen so far.
    pub evidence: u64,
    /// Dice beacon counters (all zero on a chain without a beacon).
    pub beacon: BeaconStats,
    /// Where the chips are at `height` (the conservation check).
    pub supply: Supply,
    /// The beacon key share was wiped (emergency wipe).
    pub beacon_share_wiped: bool,
    /// Views entered since start, by how the previous one ended.
    pub view_changes: ViewChanges,
    /// From seeing (or making) a block's proposal to committing it, on this
    /// validator's clock.
    pub commit_latency: LatencyHistogram,
    /// Blocks this process executed and stored since it started (the height
    /// can jump on restore; this counts only work done).
    pub blocks_committed: u64,
    /// Views between the current view and that of the last committed block:
    /// how far commits lag behind consensus (large while syncing).
    pub sync_lag_views: u64,
    /// Set when the engine stopped on an error (storage failure, ...).
    pub fatal: Option<String>,
}

/// Upper bounds (ms) of [`LatencyHistogram`]'s buckets.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/// A fixed-bucket latency histogram (cumulative counts are derived when
/// rendered). Integer µs so the status stays `Eq`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Observations at or below each bound of [`LATENCY_BUCKETS_MS`] and above
    /// the previous one; the last slot counts those above every bound.
    pub counts: [u64; LATENCY_BUCKETS_MS.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn observe(&mut self, us: u64) {
        let slot = LATENCY_BUCKETS_MS
            .iter()
            .position(|&ms| us <= ms * 1_000)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[slot] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// `(upper bound in seconds, cumulative count)` per bucket, for
    /// Prometheus (the `+Inf` bucket is the total).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        LATENCY_BUCKETS_MS
            .iter()
            .zip(self.counts)
            .map(|(&ms, n)| {
                total += n;
                (ms as f64 / 1_000.0, total)
            })
            .collect()
    }
}

/// Views entered since the engine started, by cause (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewChanges {
    /// The previous view notarized a block (the normal path).
    pub notarized: u64,
    /// The previous view timed out and was nullified (a view change proper).
    pub nullified: u64,
    /// A finalization moved us forward (catching up).
    pub finalized: u64,
}

/// Why the engine could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("creating data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("signing guard: {0}")]
    Guard(String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("the engine task failed: {0}")]
    Task(String),
}

/// State the engine task shares with readers (HTTP): locked briefly by both.
#[derive(Debug)]
pub(crate) struct Shared {
    pub mempool: Mutex<Mempool>,
    pub txlog: Mutex<TxLog>,
    /// Set by an emergency wipe: the engine drops its beacon key share at its
    /// next beacon tick (the consensus key is wiped by the signer's owner).
    pub wipe_requested: std::sync::atomic::AtomicBool,
    /// Accepted identity rotations (ours and peers'), persisted.
    pub rotations: Mutex<rotation::RotationBook>,
    /// The consensus key's signer, for identity rotations only (votes go
    /// through the guard; see [`rotation`] for why this is not a vote).
    pub rotation_signer: Arc<dyn Signer>,
    pub chain_id: String,
    pub me: u16,
    /// [`EngineConfig::index_receipts`].
    pub index_receipts: bool,
    /// Transaction id → height ([`indexer`]); `None` without receipts.
    pub txindex: Option<TxIndex>,
}

/// Locks `m`, ignoring poisoning: the data behind these locks stays
/// consistent between statements, and a panicked reader must not stop the
/// validator.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts engines.
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Opens storage, restores the core from its WAL, loads the guard, starts
    /// the network and spawns the engine task. Must run inside a (multi-thread)
    /// tokio runtime.
    pub fn start(config: EngineConfig) -> Result<EngineHandle, EngineError> {
        let (admission, admitted) =
            Admission::start(config.genesis.chain_id.clone(), Arc::clone(&config.tracker))
                .map_err(|e| EngineError::Task(format!("starting the verifier thread: {e}")))?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let tracker = Arc::clone(&config.tracker);
        let opened = runner::Runner::open(config, admitted, admission.clone())?;
        let task = tokio::spawn(opened.runner.run(shutdown_rx));
        Ok(EngineHandle {
            client: EngineClient {
                status: opened.status,
                height: opened.height,
                fatal: opened.fatal,
                network: opened.network,
                reader: opened.reader,
                shared: opened.shared,
                admission,
                tracker,
            },
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }
}

/// Controls a running engine. Dropping it without [`Self::shutdown`] stops the
/// engine task at its next wake-up. Dereferences to an [`EngineClient`].
#[derive(Debug)]
pub struct EngineHandle {
    client: EngineClient,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), EngineError>>>,
}

impl std::ops::Deref for EngineHandle {
    type Target = EngineClient;
    fn deref(&self) -> &EngineClient {
        &self.client
    }
}

/// Reads status and submits transactions; cheap to clone, usable from any
/// task (the HTTP API holds one). Stops working, without panicking, once the
/// engine has shut down.
#[derive(Debug, Clone)]
pub struct EngineClient {
    status: watch::Receiver<EngineStatus>,
    height: watch::Receiver<Height>,
    fatal: watch::Receiver<Option<String>>,
    network: NetworkHandle,
    reader: Reader,
    shared: Arc<Shared>,
    admission: Admission,
    tracker: Arc<CorrelationTracker>,
}

impl EngineHandle {
    /// A clonable client of this engine.
    pub fn client(&self) -> EngineClient {
        self.client.clone()
    }

    /// Stops the engine: closes the network, waits for in-flight signatures,
    /// and closes the database and the guard file, so the same `data_dir` can be
    /// reopened. Returns the error the engine stopped on, if any.
    pub async fn shutdown(mut self) -> Result<(), EngineError> {
        if let Some(tx) = self.shutdown.take() {
            // The task may already have stopped on an error; that is reported below.
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| EngineError::Task(e.to_string()))?,
            None => Ok(()),
        }
    }
}

impl EngineClient {
    /// The latest progress, with the current number of connected peers.
    pub fn status(&self) -> EngineStatus {
        let mut s = self.status.borrow().clone();
        s.peers_connected = self.network.stats().iter().filter(|p| p.connected).count();
        s
    }

    /// The committed height, changing only when a block commits: what a long
    /// poll waits on. (The status changes on almost every step of the engine,
    /// thousands of times a second under load; waking a waiter for each would
    /// cost a thread wake-up each.)
    pub fn watch_height(&self) -> watch::Receiver<Height> {
        self.height.clone()
    }

    /// Set once, to the error the engine stopped on.
    pub fn watch_fatal(&self) -> watch::Receiver<Option<String>> {
        self.fatal.clone()
    }

    /// The UDP address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.network.local_addr()
    }

    /// Admits an encoded signed transaction into the mempool: decodes it,
    /// verifies its signature (batched with other submissions), checks its
    /// nonce against the committed state. Returns its hash.
    pub async fn submit(&self, tx: Vec<u8>) -> Result<Hash32, SubmitError> {
        self.admission.submit(tx, None).await
    }

    /// [`EngineClient::submit`] for a request the correlation tracker (and,
    /// with export on, the trace) follows across the cluster.
    pub async fn submit_traced(
        &self,
        tx: Vec<u8>,
        trace: SubmitTrace,
    ) -> Result<Hash32, SubmitError> {
        self.admission.submit(tx, Some(trace)).await
    }

    /// The correlation tracker this engine records into.
    pub fn tracker(&self) -> &Arc<CorrelationTracker> {
        &self.tracker
    }

    /// Read access to the committed blocks and application state.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Per-peer transport statistics.
    pub fn peers(&self) -> Vec<PeerStats> {
        self.network.stats()
    }

    /// Emergency wipe: the engine zeroizes its dice beacon key share within
    /// one beacon tick and signs no beacon round from then on.
    pub fn wipe_keys(&self) {
        self.shared
            .wipe_requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Announces `new_identity_key` as our QUIC identity key: signs an
    /// identity rotation with the consensus key (next sequence), persists it
    /// and broadcasts it to every peer (and keeps re-broadcasting it). Peers
    /// then accept both our old and new key until we connect with the new one,
    /// so restart with the new key to complete the rotation.
    pub async fn rotate_identity(
        &self,
        new_identity_key: PublicKey,
    ) -> Result<rotation::SignedRotation, rotation::RotationError> {
        let shared = &self.shared;
        let unsigned = rotation::IdentityRotation {
            chain_id: shared.chain_id.clone(),
            validator: shared.me,
            new_identity_key,
            sequence: lock(&shared.rotations).next_sequence(shared.me),
        };
        let signed = unsigned.sign(shared.rotation_signer.as_ref()).await?;
        lock(&shared.rotations).accept(signed.clone())?;
        // Best effort: the engine re-broadcasts it every ROTATION_RESEND_MS.
        let _ = self.network.broadcast(bytes::Bytes::from(signed.encode()));
        tracing::info!(
            sequence = signed.rotation.sequence,
            new_identity_key = ?new_identity_key,
            "identity rotation signed and broadcast; restart with the new identity key to complete it"
        );
        Ok(signed)
    }

    /// Our latest accepted identity rotation, if any.
    pub fn identity_rotation(&self) -> Option<rotation::Accepted> {
        lock(&self.shared.rotations).latest(self.shared.me).cloned()
    }

    /// The identity keys this node accepts for peer `index`: (current,
    /// previous still in its transition window).
    pub fn peer_identity_keys(&self, index: u16) -> Option<(PublicKey, Option<PublicKey>)> {
        self.network.peer_keys(index)
    }

    /// Verified transactions waiting for a block.
    pub fn mempool_len(&self) -> usize {
        lock(&self.shared.mempool).len()
    }

    /// Whether `hash` is waiting in this node's mempool.
    pub fn is_pending(&self, hash: &Hash32) -> bool {
        lock(&self.shared.mempool).contains(hash)
    }

    /// The next nonce for `account` counting its pending transactions here.
    pub fn pending_nonce(&self, account: &PublicKey, committed_nonce: u64) -> u64 {
        lock(&self.shared.mempool).pending_nonce(account, committed_nonce)
    }

    /// When this node admitted and executed `hash`, if it still remembers.
    pub fn tx_times(&self, hash: &Hash32) -> Option<TxTimes> {
        lock(&self.shared.txlog).get(hash)
    }

    /// Whether this node stores receipts ([`EngineConfig::index_receipts`]).
    pub fn indexes_receipts(&self) -> bool {
        self.shared.index_receipts
    }

    /// The stored receipt of committed transaction `hash` (see [`indexer`]
    /// for where it is looked up). `None` when not committed or not stored
    /// here; `Err` when the database or the index cannot be read.
    pub fn receipt(&self, hash: &Hash32) -> Result<Option<Receipt>, String> {
        if !self.shared.index_receipts {
            return Ok(None);
        }
        let recent = self.tx_times(hash).and_then(|t| t.height);
        indexer::find_receipt(&self.reader, self.shared.txindex.as_ref(), recent, hash)
    }
}
