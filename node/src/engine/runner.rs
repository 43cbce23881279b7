//! The engine task: owns the core, the store and the guard, and executes the
//! core's effects in order, exactly as the simulator does (`chaos/src/sim.rs`,
//! `Sim::apply`), but against the real network, disk and clock.

use super::mempool::Mempool;
use super::timers::Timers;
use super::{Clock, EngineConfig, EngineError, EngineStatus, Listen};
use crate::net::{Incoming, NetConfig, Network, NetworkHandle, PenaltyReason};
use crate::storage::Store;
use bitcraps_consensus::{Core, Effect, Input, Message, VoteBody};
use bitcraps_crypto::guard::{FileGuardStore, SigningGuard};
use bitcraps_crypto::signer::InMemorySigner;
use bitcraps_crypto::Signature;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

type Guard = SigningGuard<InMemorySigner, FileGuardStore>;
type Signed = (VoteBody, Result<Signature, String>);

pub(super) struct Runner {
    core: Core,
    store: Store,
    guard: Arc<Guard>,
    network: NetworkHandle,
    incoming: mpsc::Receiver<Incoming>,
    signing: JoinSet<Signed>,
    timers: Timers,
    mempool: Mempool,
    max_payload_bytes: usize,
    clock: Arc<dyn Clock>,
    status: EngineStatus,
    status_tx: watch::Sender<EngineStatus>,
    /// Frames the network refused (shutting down, over the frame limit).
    send_errors: u64,
}

impl Runner {
    /// Everything fallible about starting, done before the task is spawned so
    /// the caller gets the error.
    pub(super) fn open(
        config: EngineConfig,
        mempool_rx: mpsc::Receiver<Vec<u8>>,
    ) -> Result<(Runner, watch::Receiver<EngineStatus>, NetworkHandle), EngineError> {
        let EngineConfig {
            genesis,
            me,
            identity,
            consensus_key,
            data_dir,
            listen,
            limits,
            clock,
            mempool_capacity: _,
        } = config;
        genesis.validate().map_err(EngineError::Config)?;
        let validator = genesis
            .validators
            .get(usize::from(me))
            .ok_or_else(|| EngineError::Config(format!("validator {me} is not in genesis")))?;
        if validator.consensus_key != consensus_key.public() {
            return Err(EngineError::Config(
                "consensus key does not match genesis".into(),
            ));
        }
        if validator.identity_key != identity.public() {
            return Err(EngineError::Config(
                "identity key does not match genesis".into(),
            ));
        }
        std::fs::create_dir_all(&data_dir).map_err(|source| EngineError::DataDir {
            path: data_dir.clone(),
            source,
        })?;

        let store = Store::open(data_dir.join("db"))?;
        let core = Core::restore(&genesis, Some(me), store.wal()?).map_err(EngineError::Config)?;
        let guard_store = FileGuardStore::open(data_dir.join("guard_state"))
            .map_err(|e| EngineError::Guard(e.to_string()))?;
        let guard = SigningGuard::new(
            &genesis.chain_id,
            InMemorySigner::new(consensus_key),
            guard_store,
        )
        .map_err(|e| EngineError::Guard(e.to_string()))?;

        // The store can be a block ahead of the WAL's committed tip (blocks are
        // committed before the tip is persisted), so report the higher of the two.
        let tip = core.committed();
        let mut status = EngineStatus {
            height: tip.height,
            view: core.view(),
            committed_id: tip.id,
            ..EngineStatus::default()
        };
        let stored = store.committed_height()?;
        if stored > status.height {
            if let Some(cb) = store.block_by_height(stored)? {
                status.height = stored;
                status.committed_id = cb.block.id();
            }
        }

        let (listen_addr, socket) = match listen {
            Listen::Addr(addr) => (addr, None),
            Listen::Socket(s) => (
                s.local_addr()
                    .map_err(|e| EngineError::Config(format!("listen socket: {e}")))?,
                Some(s),
            ),
        };
        let net_config = NetConfig::from_genesis(&genesis, me, identity, listen_addr, limits)?;
        let (network, incoming) = match socket {
            Some(s) => Network::start_with_socket(net_config, s)?,
            None => Network::start(net_config)?,
        };

        let (status_tx, status_rx) = watch::channel(status.clone());
        let runner = Runner {
            core,
            store,
            guard: Arc::new(guard),
            network: network.clone(),
            incoming,
            signing: JoinSet::new(),
            timers: Timers::default(),
            mempool: Mempool::new(mempool_rx),
            max_payload_bytes: usize::try_from(genesis.params.max_payload_bytes)
                .unwrap_or(usize::MAX),
            clock,
            status,
            status_tx,
            send_errors: 0,
        };
        Ok((runner, status_rx, network))
    }

    /// Runs until shutdown (or a fatal error), then releases the network, the
    /// guard and the database.
    pub(super) async fn run(
        mut self,
        mut shutdown: oneshot::Receiver<()>,
    ) -> Result<(), EngineError> {
        let result = self.main_loop(&mut shutdown).await;
        if let Err(e) = &result {
            self.status.fatal = Some(e.to_string());
            self.status_tx.send_replace(self.status.clone());
        }
        let Runner {
            store,
            guard,
            network,
            mut signing,
            ..
        } = self;
        network.shutdown().await;
        // In-flight signatures hold the guard (and its file lock); wait for them
        // so a restart from the same data_dir can take the lock.
        while signing.join_next().await.is_some() {}
        drop(guard);
        let closed = store.close();
        result.and(closed.map_err(EngineError::from))
    }

    async fn main_loop(&mut self, shutdown: &mut oneshot::Receiver<()>) -> Result<(), EngineError> {
        self.step(Input::Start)?;
        loop {
            let wait_ms = self
                .timers
                .next_deadline()
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
                    for (view, kind) in self.timers.pop_due(self.clock.now_ms()) {
                        self.step(Input::Timeout { view, kind })?;
                    }
                }
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
        let from = incoming.from;
        let decoded = Message::decode(&incoming.bytes);
        // Release the sender's inbound queue slot as soon as the bytes are decoded.
        drop(incoming);
        match decoded {
            Ok(message) => self.step(Input::Message { from, message }),
            Err(_) => {
                self.network.penalize(from, PenaltyReason::Garbage);
                Ok(())
            }
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
        let status = self.status.clone();
        self.status_tx.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
        Ok(())
    }

    fn apply(&mut self, effect: Effect, pending: &mut VecDeque<Input>) -> Result<(), EngineError> {
        match effect {
            Effect::Broadcast(m) => {
                if self.network.broadcast(Bytes::from(m.encode())).is_err() {
                    self.send_errors += 1;
                }
            }
            Effect::Send { to, message } => self.send(to, &message),
            // Durable: fsync before returning, so before any later effect runs.
            Effect::Persist { entry, durable } => {
                self.store.persist(&entry, durable)?;
            }
            Effect::RequestSignature(vote) => {
                let guard = Arc::clone(&self.guard);
                self.signing.spawn(async move {
                    let result = guard.sign_vote(&vote).await.map_err(|e| e.to_string());
                    (vote, result)
                });
            }
            Effect::RequestPayload { view, .. } => {
                let payload = self.mempool.take_payload(self.max_payload_bytes);
                pending.push_back(Input::PayloadReady { view, payload });
            }
            Effect::ScheduleTimeout { view, kind, at_ms } => {
                self.timers.schedule(at_ms, view, kind);
            }
            Effect::Commit(cb) => {
                // Re-delivered heights after a restart return false and change nothing.
                self.store.commit(&cb)?;
                let height = cb.block.header.height;
                if height > self.status.height {
                    self.status.height = height;
                    self.status.committed_id = cb.block.id();
                }
            }
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
            Effect::ViewEntered { view, .. } => self.status.view = view,
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
