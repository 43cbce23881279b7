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
//! Payload requests are answered immediately from the bounded [`mempool`] fed by
//! [`EngineHandle::submit`]; an empty payload is fine.
//!
//! Storage calls are synchronous redb transactions made inline on the engine
//! task. That blocks one runtime worker for the length of an fsync, which is
//! the point: nothing else in this validator's consensus may proceed before the
//! write is durable, and keeping the writes on the one task keeps them ordered.
//! Other tasks (network, other engines in tests) keep running on the remaining
//! workers, so run the engine on a multi-thread runtime.
//!
//! Files under `data_dir`: `db` (redb: WAL and committed blocks) and
//! `guard_state` (the signing guard's double-sign protection, kept apart from the
//! database on purpose; see `storage` module docs).

pub mod clock;
pub mod mempool;
mod runner;
pub mod timers;

pub use clock::{Clock, SystemClock};

use crate::net::{Limits, NetError, NetworkHandle};
use crate::storage::StorageError;
use bitcraps_consensus::{Genesis, Height, View};
use bitcraps_crypto::{Hash32, Keypair};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Default number of submitted transactions waiting for a block.
pub const DEFAULT_MEMPOOL_CAPACITY: usize = 10_000;

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
    /// QUIC identity key (genesis `identity_key`).
    pub identity: Keypair,
    /// Consensus signing key (genesis `consensus_key`), used only through the guard.
    pub consensus_key: Keypair,
    /// Directory for the database and the guard state (created if missing).
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    /// Bounded queue behind [`EngineHandle::submit`].
    pub mempool_capacity: usize,
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
        EngineConfig {
            genesis,
            me,
            identity,
            consensus_key,
            data_dir: data_dir.into(),
            listen,
            limits: Limits::default(),
            clock: Arc::new(SystemClock::new()),
            mempool_capacity: DEFAULT_MEMPOOL_CAPACITY,
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
    /// Evidence of double signing seen so far.
    pub evidence: u64,
    /// Set when the engine stopped on an error (storage failure, ...).
    pub fatal: Option<String>,
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

/// [`EngineHandle::submit`] refused: the mempool is full (or the engine stopped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the mempool is full")]
pub struct Full(pub Vec<u8>);

/// Starts engines.
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Opens storage, restores the core from its WAL, loads the guard, starts
    /// the network and spawns the engine task. Must run inside a (multi-thread)
    /// tokio runtime.
    pub fn start(config: EngineConfig) -> Result<EngineHandle, EngineError> {
        let (mempool_tx, mempool_rx) = mpsc::channel(config.mempool_capacity.max(1));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (runner, status_rx, network) = runner::Runner::open(config, mempool_rx)?;
        let task = tokio::spawn(runner.run(shutdown_rx));
        Ok(EngineHandle {
            status: status_rx,
            network,
            mempool: mempool_tx,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }
}

/// Controls a running engine. Dropping it without [`Self::shutdown`] stops the
/// engine task at its next wake-up.
#[derive(Debug)]
pub struct EngineHandle {
    status: watch::Receiver<EngineStatus>,
    network: NetworkHandle,
    mempool: mpsc::Sender<Vec<u8>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), EngineError>>>,
}

impl EngineHandle {
    /// The latest progress, with the current number of connected peers.
    pub fn status(&self) -> EngineStatus {
        let mut s = self.status.borrow().clone();
        s.peers_connected = self.network.stats().iter().filter(|p| p.connected).count();
        s
    }

    /// A receiver that changes whenever the engine commits or changes view.
    pub fn watch(&self) -> watch::Receiver<EngineStatus> {
        self.status.clone()
    }

    /// The UDP address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.network.local_addr()
    }

    /// Queues a transaction for a future block proposed by this validator.
    pub fn submit(&self, tx: Vec<u8>) -> Result<(), Full> {
        self.mempool.try_send(tx).map_err(|e| match e {
            mpsc::error::TrySendError::Full(tx) | mpsc::error::TrySendError::Closed(tx) => Full(tx),
        })
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
