//! The engine task: owns the core, the store and the guard, and executes the
//! core's effects in order, exactly as the simulator does (`chaos/src/sim.rs`,
//! `Sim::apply`), but against the real network, disk and clock.

use super::admission::{Admission, Pending};
use super::beacon::{BeaconWorker, BEACON_SHARE_TAG};
use super::execute::Executor;
use super::fault::CrashAfterWrites;
use super::gossip::{self, GossipBatch, TX_GOSSIP_TAG};
use super::indexer::Indexer;
use super::progress::{catching_up, Progress};
use super::rotation::{
    RotationBook, RotationError, SignedRotation, IDENTITY_ROTATION_TAG, ROTATION_RESEND_MS,
};
use super::timers::Timers;
use super::trace_frame::TRACE_ENVELOPE_TAG;
use super::tx_trace::TxTracer;
use super::txlog::{TxLog, DEFAULT_TX_LOG_ENTRIES};
use super::SubmitError;
use super::{lock, Clock, EngineConfig, EngineError, EngineStatus, Listen, Shared};
use crate::app::beacon_entry::BEACON_ENTRY_BYTES;
use crate::app::mempool::Mempool;
use crate::app::payload::{split_payload, PayloadBuilder, ENTRY_HEADER_BYTES};
use crate::app::state::is_replay;
use crate::app::tx::tx_hash;
use crate::app::tx::MAX_TX_BYTES;
use crate::net::{Incoming, NetConfig, Network, NetworkHandle, PenaltyReason};
use crate::storage::{Reader, Store, TxIndex};
use crate::trace::tracker::Stage;
use crate::trace::unix_now_us;
use bitcraps_consensus::{
    CommittedBlock, Core, Effect, Height, Input, Message, ViewChange, VoteBody, WalEntry,
};
use bitcraps_crypto::guard::{FileGuardStore, SigningGuard};
use bitcraps_crypto::signer::Signer;
use bitcraps_crypto::vote::VoteKind;
use bitcraps_crypto::Hash32;
use bitcraps_crypto::Signature;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

type Guard = SigningGuard<Arc<dyn Signer>, CrashAfterWrites<FileGuardStore>>;
type Signed = (VoteBody, Result<Signature, String>);

/// Verified transactions admitted per wake-up before the loop looks at
/// consensus inputs again (admission must not starve consensus).
const ADMIT_PER_WAKE: usize = 1_024;

/// What [`Runner::open`] hands back to [`super::Engine::start`].
pub(super) struct Opened {
    pub runner: Runner,
    pub status: watch::Receiver<EngineStatus>,
    pub height: watch::Receiver<Height>,
    pub fatal: watch::Receiver<Option<String>>,
    pub network: NetworkHandle,
    pub reader: Reader,
    pub shared: Arc<Shared>,
}

pub(super) struct Runner {
    core: Core,
    store: Store,
    guard: Arc<Guard>,
    network: NetworkHandle,
    incoming: mpsc::Receiver<Incoming>,
    signing: JoinSet<Signed>,
    timers: Timers,
    admitted: mpsc::Receiver<Pending>,
    executor: Executor,
    shared: Arc<Shared>,
    progress: Progress,
    /// The view restored at start; entering a later one means we are live.
    start_view: bitcraps_consensus::View,
    max_payload_bytes: usize,
    /// A proposal we owe the core but delayed because the mempool was empty:
    /// (view, answer by this time in ms).
    payload_wanted: Option<(bitcraps_consensus::View, u64)>,
    empty_block_delay_ms: u64,
    /// When we last committed a block that carried anything (ms, engine
    /// clock): the chain is busy until [`IDLE_AFTER_MS`] after it.
    last_busy_commit_ms: Option<u64>,
    clock: Arc<dyn Clock>,
    status: EngineStatus,
    status_tx: watch::Sender<EngineStatus>,
    /// The committed height alone: long polls wait on it, and a status that
    /// changes on every step (view, commit rate) would wake them for nothing.
    height_tx: watch::Sender<Height>,
    /// Why the engine stopped, once it has stopped on an error.
    fatal_tx: watch::Sender<Option<String>>,
    /// Frames the network refused (shutting down, over the frame limit).
    send_errors: u64,
    /// The dice beacon (`None` on a chain without one).
    beacon: Option<BeaconWorker>,
    /// The beacon round we last put in a proposal, and in which view: our
    /// next proposal usually builds on that one before it is executed here,
    /// so carrying the entry again would only waste space.
    beacon_proposed: Option<(u64, bitcraps_consensus::View)>,
    /// Stage times, spans and trace envelopes of traced transactions.
    trace: TxTracer,
    /// Where gossiped transactions go to be verified.
    admission: Admission,
    /// Client transactions admitted here, waiting to be gossiped.
    gossip_out: GossipBatch,
    /// Transaction ids of recent peers' proposals, until we vote on them
    /// (then they are in flight in our mempool too). Bounded.
    proposed_by_peers: VecDeque<(Hash32, Vec<Hash32>)>,
    /// Keeps the transaction index up to date (`None` without receipts).
    indexer: Option<Indexer>,
}

/// Peers' proposals whose transaction ids we keep until we vote.
const MAX_REMEMBERED_PROPOSALS: usize = 16;
/// A vote signature (guard fsync included) slower than this is logged: at a
/// tenth of the usual view timeout it already costs every player latency.
const SLOW_SIGNATURE_MS: u64 = 100;

/// The chain counts as busy for this long after a non-empty block commits.
const IDLE_AFTER_MS: u64 = 1_000;
/// A leader's wait for transactions while the chain is busy (ms).
const BUSY_EMPTY_BLOCK_DELAY_MS: u64 = 5;

/// Views after which we offer a beacon entry again if the round is still
/// awaited (the block that carried it may have been skipped).
const BEACON_REPROPOSE_VIEWS: u64 = 3;

/// How often the loop wakes to re-send an unresolved beacon share (ms).
const BEACON_TICK_MS: u64 = 250;

impl Runner {
    /// Everything fallible about starting, done before the task is spawned so
    /// the caller gets the error.
    pub(super) fn open(
        config: EngineConfig,
        admitted: mpsc::Receiver<Pending>,
        admission: Admission,
    ) -> Result<Opened, EngineError> {
        let EngineConfig {
            genesis,
            me,
            identity,
            signer,
            data_dir,
            listen,
            limits,
            clock,
            app,
            mempool,
            empty_block_delay_ms,
            beacon_share,
            tracker,
            index_receipts,
        } = config;
        genesis.validate().map_err(EngineError::Config)?;
        let validator = genesis
            .validators
            .get(usize::from(me))
            .ok_or_else(|| EngineError::Config(format!("validator {me} is not in genesis")))?;
        if validator.consensus_key != signer.public_key() {
            return Err(EngineError::Config(
                "consensus key does not match genesis".into(),
            ));
        }
        std::fs::create_dir_all(&data_dir).map_err(|source| EngineError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let rotations = RotationBook::load(&data_dir, &genesis)
            .map_err(|e| EngineError::Config(format!("identity rotations: {e}")))?;
        // Our identity key: the genesis one, or that of our latest rotation.
        // The key it replaced is still accepted by peers until we connect with
        // the new one, so starting with it (rotation signed, restart pending)
        // is allowed.
        let ours = rotations.latest(me);
        let current = ours.map_or(validator.identity_key, |a| {
            a.rotation.rotation.new_identity_key
        });
        if identity.public() != current {
            if ours.is_some_and(|a| a.previous_key == identity.public()) {
                tracing::warn!(
                    "running with the identity key our rotation replaces; restart with the new key to complete the rotation"
                );
            } else if ours.is_some() {
                return Err(EngineError::Config(
                    "identity key matches neither genesis nor our latest identity rotation".into(),
                ));
            } else {
                return Err(EngineError::Config(
                    "identity key does not match genesis".into(),
                ));
            }
        }
        let rotation_signer = Arc::clone(&signer);

        let store = Store::open(data_dir.join("db"))?;
        let mut executor = Executor::open(&store.reader(), &app, &genesis.chain_id)?;
        executor.index_receipts = index_receipts;
        let txindex = index_receipts
            .then(|| TxIndex::open(data_dir.join("txindex"), &genesis.chain_id))
            .transpose()?;
        let beacon = match (&app.beacon, beacon_share) {
            (None, Some(_)) => {
                return Err(EngineError::Config(
                    "a beacon share is configured but genesis has no beacon".into(),
                ))
            }
            (None, None) => None,
            (Some(public), share) => {
                if let Some(s) = &share {
                    if s.index() != u32::from(me) + 1 {
                        return Err(EngineError::Config(format!(
                            "beacon share {} does not belong to validator {me} (expected share {})",
                            s.index(),
                            u32::from(me) + 1
                        )));
                    }
                }
                Some(BeaconWorker::new(&genesis.chain_id, public.clone(), share))
            }
        };
        let core =
            Core::restore(&genesis, Some(me), store.restore_log()?).map_err(EngineError::Config)?;
        let guard_store = FileGuardStore::open(data_dir.join("guard_state"))
            .map_err(|e| EngineError::Guard(e.to_string()))?;
        let guard_store = CrashAfterWrites::from_env(guard_store);
        let guard = SigningGuard::new(&genesis.chain_id, signer, guard_store)
            .map_err(|e| EngineError::Guard(e.to_string()))?;

        // The restored tip is the stored chain's (`Reader::restore_log`).
        let tip = core.committed();
        let status = EngineStatus {
            height: tip.height,
            view: core.view(),
            committed_id: tip.id,
            committed_view: tip.view,
            state_root: executor.state.state_root(),
            committed_tx: executor.state.committed_tx(),
            supply: executor.state.supply(),
            ..EngineStatus::default()
        };

        let (listen_addr, socket) = match listen {
            Listen::Addr(addr) => (addr, None),
            Listen::Socket(s) => (
                s.local_addr()
                    .map_err(|e| EngineError::Config(format!("listen socket: {e}")))?,
                Some(s),
            ),
        };
        let mut net_config = NetConfig::from_genesis(&genesis, me, identity, listen_addr, limits)?;
        for p in &mut net_config.peers {
            if let Some(key) = rotations.current_key(p.index) {
                p.identity_key = key;
            }
        }
        let (network, incoming) = match socket {
            Some(s) => Network::start_with_socket(net_config, s)?,
            None => Network::start(net_config)?,
        };
        for a in rotations
            .all()
            .filter(|a| a.rotation.rotation.validator != me)
        {
            let r = &a.rotation.rotation;
            network
                .set_peer_keys(r.validator, r.new_identity_key, Some(a.previous_key))
                .map_err(|e| EngineError::Config(format!("identity rotations: {e}")))?;
        }

        let (status_tx, status_rx) = watch::channel(status.clone());
        let (height_tx, height_rx) = watch::channel(status.height);
        let (fatal_tx, fatal_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            mempool: std::sync::Mutex::new(Mempool::new(mempool)),
            txlog: std::sync::Mutex::new(TxLog::new(DEFAULT_TX_LOG_ENTRIES)),
            wipe_requested: std::sync::atomic::AtomicBool::new(false),
            rotations: std::sync::Mutex::new(rotations),
            rotation_signer,
            chain_id: genesis.chain_id.clone(),
            me,
            index_receipts,
            txindex: txindex.clone(),
        });
        let reader = store.reader();
        let indexer = txindex
            .map(|index| Indexer::start(reader.clone(), index))
            .transpose()
            .map_err(|e| EngineError::Task(format!("starting the transaction index: {e}")))?;
        let start_view = core.view();
        let runner = Runner {
            core,
            store,
            guard: Arc::new(guard),
            network: network.clone(),
            incoming,
            signing: JoinSet::new(),
            timers: Timers::default(),
            admitted,
            executor,
            shared: Arc::clone(&shared),
            progress: Progress::new(),
            start_view,
            payload_wanted: None,
            // Never so long that the other validators time the view out.
            empty_block_delay_ms: empty_block_delay_ms.min(genesis.params.view_timeout_ms / 4),
            last_busy_commit_ms: None,
            max_payload_bytes: usize::try_from(genesis.params.max_payload_bytes)
                .unwrap_or(usize::MAX),
            clock,
            status,
            status_tx,
            height_tx,
            fatal_tx,
            send_errors: 0,
            beacon,
            beacon_proposed: None,
            trace: TxTracer::new(tracker, me),
            admission,
            gossip_out: GossipBatch::default(),
            proposed_by_peers: VecDeque::new(),
            indexer,
        };
        Ok(Opened {
            runner,
            status: status_rx,
            height: height_rx,
            fatal: fatal_rx,
            network,
            reader,
            shared,
        })
    }

    /// Runs until shutdown (or a fatal error), then releases the network, the
    /// guard and the database.
    pub(super) async fn run(
        mut self,
        mut shutdown: oneshot::Receiver<()>,
    ) -> Result<(), EngineError> {
        let result = self.main_loop(&mut shutdown).await;
        if let Err(e) = &result {
            let why = e.to_string();
            self.status.fatal = Some(why.clone());
            self.status_tx.send_replace(self.status.clone());
            self.fatal_tx.send_replace(Some(why));
        }
        let Runner {
            store,
            guard,
            network,
            mut signing,
            indexer,
            ..
        } = self;
        network.shutdown().await;
        if let Some(ix) = indexer {
            // Waits for at most one batch: off the runtime.
            let _ = tokio::task::spawn_blocking(move || ix.stop()).await;
        }
        // In-flight signatures hold the guard (and its file lock); wait for them
        // so a restart from the same data_dir can take the lock.
        while signing.join_next().await.is_some() {}
        drop(guard);
        let closed = store.close();
        result.and(closed.map_err(EngineError::from))
    }

    async fn main_loop(&mut self, shutdown: &mut oneshot::Receiver<()>) -> Result<(), EngineError> {
        self.step(Input::Start)?;
        // A restart may land between betting closing and the roll: sign now.
        self.after_execution();
        let mut beacon_tick = tokio::time::interval(Duration::from_millis(BEACON_TICK_MS));
        beacon_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rotation_tick = tokio::time::interval(Duration::from_millis(ROTATION_RESEND_MS));
        rotation_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let payload_at = self.payload_wanted.map(|(_, at)| at);
            let wait_ms = match (self.timers.next_deadline(), payload_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|at| at.saturating_sub(self.clock.now_ms()));
            let timer = async move {
                match wait_ms {
                    Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A dropped handle counts as a shutdown request.
                _ = &mut *shutdown => return Ok(()),
                incoming = self.incoming.recv() => match incoming {
                    Some(incoming) => self.on_frame(incoming)?,
                    None => return Err(EngineError::Task("the network stopped".into())),
                },
                () = timer => {
                    self.answer_payload(false)?;
                    for (view, kind) in self.timers.pop_due(self.clock.now_ms()) {
                        if view == self.core.view() {
                            // A live view that timed out: worth a line, it is
                            // a stall every player in it feels.
                            tracing::debug!(
                                view,
                                ?kind,
                                payload_wanted = ?self.payload_wanted,
                                signing = self.signing.len(),
                                "view timer fired"
                            );
                        }
                        self.step(Input::Timeout { view, kind })?;
                    }
                }
                Some(pending) = self.admitted.recv() => {
                    self.admit(pending);
                    for _ in 1..ADMIT_PER_WAKE {
                        match self.admitted.try_recv() {
                            Ok(pending) => self.admit(pending),
                            Err(_) => break,
                        }
                    }
                    // Everything admitted in this wake-up goes out in one frame.
                    if let Some(frame) = self.gossip_out.take() {
                        self.broadcast_raw(frame);
                    }
                    self.answer_payload(true)?;
                    self.publish();
                }
                _ = beacon_tick.tick(), if self.beacon.is_some() => {
                    if self.shared.wipe_requested.load(std::sync::atomic::Ordering::SeqCst)
                        && !self.status.beacon_share_wiped
                    {
                        if let Some(b) = self.beacon.as_mut() {
                            b.wipe_share();
                        }
                        self.status.beacon_share_wiped = true;
                        tracing::warn!("emergency wipe: beacon key share zeroized");
                        self.publish();
                    }
                    let now_ms = self.clock.now_ms();
                    if let Some(msg) = self.beacon.as_mut().and_then(|b| b.resend(now_ms)) {
                        self.broadcast_raw(msg);
                    }
                }
                _ = rotation_tick.tick() => self.resend_rotations(),
                Some(joined) = self.signing.join_next() => {
                    let (vote, result) = joined.map_err(|e| EngineError::Task(format!("signing task: {e}")))?;
                    let input = match result {
                        Ok(signature) => Input::SignatureReady { vote, signature },
                        Err(reason) => Input::SignatureRefused { vote, reason },
                    };
                    self.step(input)?;
                }
            }
        }
    }

    fn on_frame(&mut self, incoming: Incoming) -> Result<(), EngineError> {
        let (from, relayed_by) = (incoming.from, incoming.relayed_by);
        if incoming.bytes.first() == Some(&BEACON_SHARE_TAG) {
            return self.on_beacon_share(incoming);
        }
        if incoming.bytes.first() == Some(&TX_GOSSIP_TAG) {
            self.on_gossip(from, relayed_by, &incoming.bytes);
            return Ok(());
        }
        if incoming.bytes.first() == Some(&TRACE_ENVELOPE_TAG) {
            if let Err(e) = self.trace.envelope(from, &incoming.bytes) {
                tracing::debug!(peer = from, error = %e, "bad trace envelope");
                self.network
                    .penalize_message(from, relayed_by, PenaltyReason::Garbage);
            }
            return Ok(());
        }
        if incoming.bytes.first() == Some(&IDENTITY_ROTATION_TAG) {
            let decoded = SignedRotation::decode(&incoming.bytes);
            drop(incoming);
            self.on_rotation(from, relayed_by, decoded);
            return Ok(());
        }
        let decoded = Message::decode(&incoming.bytes);
        // Release the sender's inbound queue slot as soon as the bytes are decoded.
        drop(incoming);
        match decoded {
            Ok(message) => {
                if let Message::Proposal(p) = &message {
                    let id = p.block.id();
                    self.trace.proposal_seen(id);
                    self.remember_proposal(id, &p.block.payload);
                }
                self.step(Input::Message { from, message })
            }
            Err(_) => {
                // For a relayed message the origin is only claimed by the relay:
                // block that (relay, origin) path rather than blaming either.
                self.network
                    .penalize_message(from, relayed_by, PenaltyReason::Garbage);
                Ok(())
            }
        }
    }

    /// A beacon share: kept for recovery; a share that is malformed or claims
    /// another validator's index costs the sender (or the relay path).
    fn on_beacon_share(&mut self, incoming: Incoming) -> Result<(), EngineError> {
        let (from, relayed_by) = (incoming.from, incoming.relayed_by);
        let state = &self.executor.state;
        let (awaiting, height) = (state.awaiting_round(), state.height());
        let Some(beacon) = self.beacon.as_mut() else {
            self.network
                .penalize_message(from, relayed_by, PenaltyReason::Garbage);
            return Ok(());
        };
        match beacon.on_share(from, &incoming.bytes, awaiting, height) {
            Ok(true) => {
                self.status.beacon = beacon.stats();
                // A proposal waiting for transactions can go now: the roll is
                // something to propose.
                self.answer_payload(true)?;
                self.publish();
            }
            Ok(false) => self.status.beacon = beacon.stats(),
            Err(e) => {
                tracing::debug!(peer = from, error = %e, "bad beacon share");
                self.network
                    .penalize_message(from, relayed_by, PenaltyReason::Garbage);
            }
        }
        Ok(())
    }

    /// An identity rotation from a peer (its own or gossiped: rotations are
    /// self-authenticating). Newer ones update the keys the transport accepts;
    /// stale copies are normal gossip and cost nothing; forged or malformed
    /// ones cost the sender (or the relay path).
    fn on_rotation(
        &mut self,
        from: u16,
        relayed_by: Option<u16>,
        decoded: Result<SignedRotation, RotationError>,
    ) {
        let result = decoded.and_then(|s| lock(&self.shared.rotations).accept(s));
        let penalty = match result {
            Ok(a) => {
                let r = &a.rotation.rotation;
                tracing::info!(
                    validator = r.validator,
                    sequence = r.sequence,
                    new_identity_key = ?r.new_identity_key,
                    "identity rotation accepted"
                );
                if r.validator != self.network.me() {
                    if let Err(e) = self.network.set_peer_keys(
                        r.validator,
                        r.new_identity_key,
                        Some(a.previous_key),
                    ) {
                        tracing::warn!(validator = r.validator, error = %e, "rotated identity key not applied");
                    }
                }
                // Pass it on at once so peers we reach and the rotator does
                // not learn it quickly.
                self.broadcast_raw(a.rotation.encode());
                None
            }
            Err(RotationError::Stale { .. }) => None,
            Err(e @ (RotationError::Io { .. } | RotationError::Corrupt { .. })) => {
                tracing::error!(error = %e, "identity rotation not persisted");
                None
            }
            // Signed by the validator itself: its choice, not the sender's fault.
            Err(e @ RotationError::KeyInUse(_)) => {
                tracing::warn!(peer = from, error = %e, "identity rotation refused");
                None
            }
            Err(RotationError::BadSignature) => Some(PenaltyReason::BadSignature),
            Err(e) => {
                tracing::debug!(peer = from, error = %e, "bad identity rotation");
                Some(PenaltyReason::Garbage)
            }
        };
        if let Some(reason) = penalty {
            self.network.penalize_message(from, relayed_by, reason);
        }
    }

    /// Re-broadcasts every rotation we hold, so peers that were away (and the
    /// rotated validator's new connections) learn them.
    fn resend_rotations(&mut self) {
        let frames: Vec<Vec<u8>> = {
            let book = lock(&self.shared.rotations);
            book.all().map(|a| a.rotation.encode()).collect()
        };
        for f in frames {
            self.broadcast_raw(f);
        }
    }

    /// After executing blocks: sign the awaited beacon round if its block is in.
    fn after_execution(&mut self) {
        let state = &self.executor.state;
        let (awaiting, height) = (state.awaiting_round(), state.height());
        let now_ms = self.clock.now_ms();
        let Some(beacon) = self.beacon.as_mut() else {
            return;
        };
        let msg = beacon.on_executed(awaiting, height, now_ms);
        self.status.beacon = beacon.stats();
        if let Some(msg) = msg {
            self.broadcast_raw(msg);
        }
    }

    /// Transactions a peer gossiped: those we do not hold yet go to the
    /// verifier, then to the mempool. A malformed frame costs the sender (or
    /// the relay path); a full verification queue drops the overflow.
    fn on_gossip(&mut self, from: u16, relayed_by: Option<u16>, bytes: &[u8]) {
        let txs = match gossip::decode(bytes, MAX_TX_BYTES) {
            Ok(txs) => txs,
            Err(e) => {
                tracing::debug!(peer = from, error = %e, "bad transaction gossip");
                self.network
                    .penalize_message(from, relayed_by, PenaltyReason::Garbage);
                return;
            }
        };
        let now = unix_now_us();
        for g in txs {
            let hash = tx_hash(&g.encoded);
            if lock(&self.shared.mempool).contains(&hash) || self.executor.cache.contains(&hash) {
                continue;
            }
            if let Some((id, origin)) = g.trace {
                // So that if we propose it, the trace envelope carries it.
                self.trace
                    .tracker()
                    .begin(id, hash, origin, Stage::Mempool, now);
            }
            match self.admission.submit_gossip(g.encoded, hash) {
                Ok(()) => {}
                Err(SubmitError::Malformed(_)) => {
                    self.network
                        .penalize_message(from, relayed_by, PenaltyReason::Garbage);
                    return;
                }
                // Busy or stopping: the rest would be dropped too.
                Err(_) => return,
            }
        }
    }

    /// Keeps the transaction ids of a peer's proposal until we vote on it.
    fn remember_proposal(&mut self, block: Hash32, payload: &[u8]) {
        if self.proposed_by_peers.iter().any(|(b, _)| *b == block) {
            return;
        }
        let hashes = split_payload(payload)
            .map(|txs| txs.iter().map(|raw| tx_hash(raw)).collect())
            .unwrap_or_default();
        if self.proposed_by_peers.len() >= MAX_REMEMBERED_PROPOSALS {
            self.proposed_by_peers.pop_front();
        }
        self.proposed_by_peers.push_back((block, hashes));
    }

    /// We are voting for `block` at `view`: if a peer proposed it, its
    /// transactions are in flight in our mempool from now on (only after the
    /// core accepted the proposal, so a forged one cannot freeze our pool).
    fn peer_proposal_voted(&mut self, view: bitcraps_consensus::View, block: &Hash32) {
        let Some(pos) = self.proposed_by_peers.iter().position(|(b, _)| b == block) else {
            return; // ours, or never seen in full
        };
        if let Some((_, hashes)) = self.proposed_by_peers.remove(pos) {
            lock(&self.shared.mempool).mark_in_flight(view, &hashes);
        }
    }

    fn broadcast_raw(&mut self, msg: Vec<u8>) {
        if self.network.broadcast(Bytes::from(msg)).is_err() {
            self.send_errors += 1;
        }
    }

    /// Feeds one input to the core and executes its effects in order. Inputs the
    /// runtime can answer at once (payloads) are queued behind the current
    /// effects, so ordering is preserved.
    fn step(&mut self, input: Input) -> Result<(), EngineError> {
        let mut pending = VecDeque::from([input]);
        while let Some(input) = pending.pop_front() {
            let effects = self.core.handle(self.clock.now_ms(), input);
            for effect in effects {
                self.apply(effect, &mut pending)?;
            }
        }
        self.status.view = self.core.view();
        self.publish();
        Ok(())
    }

    /// How long a leader with nothing to propose waits for transactions. An
    /// idle chain waits the full `empty_block_delay_ms` (few empty blocks);
    /// a busy one only [`BUSY_EMPTY_BLOCK_DELAY_MS`]: transactions wait in
    /// the mempool of the validator they were sent to until its turn, so
    /// every slow empty view in between is latency for them.
    fn empty_block_wait_ms(&self) -> u64 {
        let busy = self
            .last_busy_commit_ms
            .is_some_and(|at| self.clock.now_ms().saturating_sub(at) < IDLE_AFTER_MS);
        if busy {
            self.empty_block_delay_ms.min(BUSY_EMPTY_BLOCK_DELAY_MS)
        } else {
            self.empty_block_delay_ms
        }
    }

    /// Answers a delayed payload request: at once when `only_if_nonempty` is
    /// false and the delay is over, or as soon as there is something to propose.
    fn answer_payload(&mut self, only_if_nonempty: bool) -> Result<(), EngineError> {
        let Some((view, at_ms)) = self.payload_wanted else {
            return Ok(());
        };
        if !only_if_nonempty && at_ms > self.clock.now_ms() {
            return Ok(());
        }
        let payload = self.take_payload(view);
        if only_if_nonempty && payload.is_empty() {
            return Ok(());
        }
        self.payload_wanted = None;
        self.step(Input::PayloadReady { view, payload })
    }

    /// Our proposal's payload: the awaited beacon round first, if we have
    /// recovered it, then transactions from the mempool.
    fn take_payload(&mut self, view: bitcraps_consensus::View) -> Vec<u8> {
        let state = &self.executor.state;
        let (awaiting, height) = (state.awaiting_round(), state.height());
        let recent = self.beacon_proposed;
        let entry = self
            .beacon
            .as_mut()
            .and_then(|b| b.entry(awaiting, height))
            .filter(|e| match recent {
                Some((round, v)) => round != e.round || view >= v + BEACON_REPROPOSE_VIEWS,
                None => true,
            });
        let reserve = if entry.is_some() {
            BEACON_ENTRY_BYTES + ENTRY_HEADER_BYTES
        } else {
            0
        };
        let txs = lock(&self.shared.mempool)
            .take_payload(view, self.max_payload_bytes.saturating_sub(reserve), |k| {
                state.account(k).nonce
            })
            .0;
        if !txs.is_empty() {
            self.trace.payload_taken(view);
        }
        let Some(entry) = entry else {
            return txs;
        };
        let mut first = PayloadBuilder::new(reserve, 1);
        if !first.try_push(&entry.encode()) {
            return txs;
        }
        self.beacon_proposed = Some((entry.round, view));
        let mut payload = first.finish();
        payload.extend_from_slice(&txs);
        payload
    }

    /// Admits one verified transaction: the nonce check needs the committed
    /// state, which only this task holds.
    fn admit(&mut self, pending: Pending) {
        let Pending {
            tx,
            encoded,
            hash,
            reply,
            traced,
            gossiped,
        } = pending;
        let committed_nonce = self.executor.state.account(&tx.tx.from).nonce;
        // The decoded transaction goes in the verdict cache too: executing its
        // block then skips both the signature check and the decoding.
        let result = lock(&self.shared.mempool).insert(tx, encoded, hash, committed_nonce);
        let result = match result {
            Ok(()) => {
                self.executor.cache.insert_tx(hash, tx);
                lock(&self.shared.txlog).received(hash, self.clock.now_ms());
                if traced {
                    let tracker = self.trace.tracker();
                    tracker.record(&hash, Stage::Mempool, unix_now_us());
                }
                if !gossiped {
                    let trace = traced
                        .then(|| self.trace.tracker().origin_of(&hash))
                        .flatten();
                    let tx = lock(&self.shared.mempool).get(&hash).map(<[u8]>::to_vec);
                    if let Some(frame) = tx.and_then(|tx| self.gossip_out.push(&tx, trace)) {
                        self.broadcast_raw(frame);
                    }
                }
                Ok(hash)
            }
            Err(e) => {
                if traced {
                    self.trace.tracker().set_outcome(&hash, e.code());
                }
                Err(e.into())
            }
        };
        // The submitter may have gone away (HTTP client disconnected); a
        // gossiped transaction has no submitter here.
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    /// Publishes the status to watchers if anything changed.
    fn publish(&mut self) {
        let now_ms = self.clock.now_ms();
        let s = &mut self.status;
        s.catching_up = catching_up(s.view, s.committed_view);
        s.sync_lag_views = s.view.saturating_sub(s.committed_view);
        s.commit_rate_milli = (self.progress.rate_blocks_per_s(now_ms) * 1_000.0) as u64;
        s.live = s.live || s.view > self.start_view;
        let status = self.status.clone();
        let height = status.height;
        self.status_tx.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
        self.height_tx.send_if_modified(|h| {
            let changed = *h != height;
            *h = height;
            changed
        });
    }

    /// Executes and stores a committed block, then lets the mempool drop what
    /// it committed (and re-offer what a dead proposal of ours carried).
    fn commit(&mut self, cb: &CommittedBlock) -> Result<(), EngineError> {
        let header = &cb.block.header;
        if let Some(us) = self.trace.committed(cb.block.id()) {
            self.status.commit_latency.observe(us);
        }
        let Some(result) = self.executor.commit(&mut self.store, cb)? else {
            return Ok(());
        };
        let cache = &self.executor.cache;
        self.trace.executed(cb, &result, |h| cache.get(h).copied());
        let now_ms = self.clock.now_ms();
        // One receipt per transaction entry (the beacon entry has none and
        // was never in a mempool).
        let hashes: Vec<Hash32> = result.receipts.iter().map(|r| r.hash).collect();
        let state = &self.executor.state;
        lock(&self.shared.mempool).on_commit(header.view, &hashes, |k| state.account(k).nonce);
        {
            let stored = self.executor.index_receipts;
            let mut log = lock(&self.shared.txlog);
            for r in &result.receipts {
                // Where its receipt is stored: not in a block that replayed it.
                let at = (stored && !is_replay(r)).then_some(header.height);
                log.committed(r.hash, now_ms, at);
            }
        }
        self.progress.committed(now_ms, header.height);
        self.status.blocks_committed += 1;
        if !hashes.is_empty() {
            self.last_busy_commit_ms = Some(now_ms);
        }
        if !result.rolls.is_empty() {
            tracing::debug!(
                height = header.height,
                tables = result.rolls.len(),
                "dice rolled"
            );
        }
        let s = &mut self.status;
        s.height = header.height;
        s.committed_id = cb.block.id();
        s.committed_view = header.view;
        s.state_root = result.state_root;
        s.committed_tx = state.committed_tx();
        s.supply = state.supply();
        s.live = true;
        tracing::debug!(
            height = header.height,
            view = header.view,
            txs = hashes.len(),
            accepted = result.accepted,
            rejected = result.rejected,
            "committed"
        );
        self.after_execution();
        Ok(())
    }

    fn apply(&mut self, effect: Effect, pending: &mut VecDeque<Input>) -> Result<(), EngineError> {
        match effect {
            Effect::Broadcast(m) => {
                let envelope = match &m {
                    Message::Proposal(p) if p.block.header.proposer == self.network.me() => {
                        self.trace.own_proposal(&p.block)
                    }
                    _ => None,
                };
                if self.network.broadcast(Bytes::from(m.encode())).is_err() {
                    self.send_errors += 1;
                }
                // Right behind the proposal, on the same ordered streams.
                if let Some(envelope) = envelope {
                    self.broadcast_raw(envelope);
                }
            }
            Effect::Send { to, message } => self.send(to, &message),
            // Durable: fsync before returning, so before any later effect runs.
            Effect::Persist { entry, durable } => {
                if let WalEntry::Certificate(c) = &entry {
                    if c.body.kind == VoteKind::Notarize {
                        self.trace.certified(c.body.block);
                    }
                }
                self.store.persist(&entry, durable)?;
            }
            Effect::RequestSignature(vote) => {
                if vote.kind == VoteKind::Notarize {
                    self.trace.voted(vote.block);
                    self.peer_proposal_voted(vote.view, &vote.block);
                }
                let guard = Arc::clone(&self.guard);
                let clock = Arc::clone(&self.clock);
                self.signing.spawn(async move {
                    let started_ms = clock.now_ms();
                    let result = guard.sign_vote(&vote).await.map_err(|e| e.to_string());
                    let took_ms = clock.now_ms().saturating_sub(started_ms);
                    if took_ms >= SLOW_SIGNATURE_MS {
                        // The guard's fsync or the signer held up a vote: a
                        // view that waits for it may time out.
                        tracing::warn!(view = vote.view, kind = ?vote.kind, took_ms, "slow vote signature");
                    }
                    (vote, result)
                });
            }
            Effect::RequestPayload { view, .. } => {
                let payload = self.take_payload(view);
                let delay_ms = self.empty_block_wait_ms();
                if payload.is_empty() && delay_ms > 0 {
                    // Wait briefly for transactions instead of committing a
                    // stream of empty blocks (each one an fsync on every
                    // validator).
                    let at_ms = self.clock.now_ms() + delay_ms;
                    self.payload_wanted = Some((view, at_ms));
                } else {
                    self.payload_wanted = None;
                    pending.push_back(Input::PayloadReady { view, payload });
                }
            }
            Effect::ScheduleTimeout { view, kind, at_ms } => {
                self.timers.schedule(at_ms, view, kind);
            }
            // Re-delivered heights after a restart are recognised and skipped.
            Effect::Commit(cb) => self.commit(&cb)?,
            Effect::Prune { below_view } => self.store.prune(below_view)?,
            Effect::ServeBlocks {
                to,
                id,
                max_ancestors,
            } => {
                let chain = self.store.chain_from(&id, max_ancestors)?;
                if !chain.is_empty() {
                    self.send(to, &Message::Blocks(chain));
                }
            }
            Effect::Evidence(_) => self.status.evidence += 1,
            Effect::ViewEntered { view, via } => {
                self.status.view = view;
                let c = &mut self.status.view_changes;
                match via {
                    ViewChange::Start => {}
                    ViewChange::Notarized => c.notarized += 1,
                    ViewChange::Nullified => c.nullified += 1,
                    ViewChange::Finalized => c.finalized += 1,
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, to: u16, message: &Message) {
        if self
            .network
            .send(to, Bytes::from(message.encode()))
            .is_err()
        {
            self.send_errors += 1;
        }
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("view", &self.core.view())
            .field("status", &self.status)
            .field("timers", &self.timers.len())
            .field("signing", &self.signing.len())
            .field("send_errors", &self.send_errors)
            .finish_non_exhaustive()
    }
}
