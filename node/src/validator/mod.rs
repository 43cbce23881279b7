//! A running validator: the engine, the application, the mempool and the HTTP
//! API wired together ([`NodeService`] implements the API over the engine). `bitcraps start` builds a [`ValidatorSetup`] from the
//! node's home directory and calls [`run`].

mod game_api;
pub mod killswitch;
mod metrics;
mod process;
mod service;
pub mod signer_health;

pub use service::NodeService;

use crate::app::mempool::MempoolConfig;
use crate::chainspec::ChainSpec;
use crate::engine::{Clock, Engine, EngineConfig, EngineError, Listen, SystemClock};
use crate::http::{HttpLimits, NodeApi};
use crate::net::Limits;
use crate::trace::tracker::{CorrelationTracker, TrackerConfig};
use bitcraps_crypto::beacon::SecretShare;
use bitcraps_crypto::secret::SecretBuf;
use bitcraps_crypto::signer::Signer;
use bitcraps_crypto::Keypair;
use killswitch::{AdminAccess, Killswitch};
use signer_health::SignerMonitor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Mempool bounds (`config.toml` `[mempool]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolLimits {
    /// Verified transactions waiting for a block, all accounts together.
    pub capacity: usize,
    /// Pending transactions per sending account.
    pub per_account: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            capacity: 50_000,
            per_account: 256,
        }
    }
}

/// Everything needed to run one validator.
#[derive(Debug)]
pub struct ValidatorSetup {
    pub spec: ChainSpec,
    /// Our index in `spec.consensus.validators`.
    pub me: u16,
    /// QUIC identity key (genesis `identity_key`).
    pub identity: Keypair,
    /// The consensus key's backend (genesis `consensus_key`); used only
    /// through the signing guard, and probed for health.
    pub signer: Arc<Killswitch>,
    /// Our share of the dice beacon key (when genesis has a beacon).
    pub beacon_share: Option<SecretShare>,
    /// Database and signing-guard state.
    pub data_dir: PathBuf,
    /// UDP address of the QUIC endpoint.
    pub p2p_listen: SocketAddr,
    /// TCP address of the HTTP API.
    pub http_listen: SocketAddr,
    pub net_limits: Limits,
    pub mempool: MempoolLimits,
    pub http: HttpLimits,
    /// Time between signer test signatures (ms).
    pub signer_probe_interval_ms: u64,
    /// Bearer token of the admin API (`None`: disabled).
    pub admin_token: Option<SecretBuf>,
    /// The identity key file in use (identity rotation writes next to it).
    pub identity_key_path: PathBuf,
    /// `[node] index_receipts` ([`EngineConfig::index_receipts`]).
    pub index_receipts: bool,
}

/// Why a validator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error("invalid setup: {0}")]
    Setup(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("HTTP API on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the validator until `shutdown` resolves (Ctrl-C / SIGTERM in
/// `bitcraps start`), then stops the HTTP server and the engine cleanly.
///
/// A fatal engine error (a storage failure) also stops the validator, with
/// that error: the WAL and the block store replay to a consistent state on the
/// next start, so exiting and being restarted by a supervisor is the recovery.
///
/// The correlation tracker gets the default bounds; [`run_with_correlation`]
/// takes them from `config.toml` `[correlation]`.
pub async fn run(
    setup: ValidatorSetup,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ValidatorError> {
    run_with_correlation(setup, TrackerConfig::default(), shutdown).await
}

/// [`run`] with the correlation tracker's bounds (`[correlation]`, checked by
/// [`TrackerConfig::validate`] here too). The tracker is shared by the engine
/// (which records every transaction's stages into it), the HTTP API (which
/// reads it) and a cleanup task that evicts old entries every
/// `cleanup_interval_ms` until shutdown.
pub async fn run_with_correlation(
    setup: ValidatorSetup,
    correlation: TrackerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ValidatorError> {
    setup.spec.validate().map_err(ValidatorError::Setup)?;
    correlation
        .validate()
        .map_err(|e| ValidatorError::Setup(format!("[correlation]: {e}")))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let listener = tokio::net::TcpListener::bind(setup.http_listen)
        .await
        .map_err(|source| ValidatorError::Http {
            addr: setup.http_listen,
            source,
        })?;
    let http_addr = listener.local_addr().unwrap_or(setup.http_listen);
    let spec = Arc::new(setup.spec);
    let mut config = EngineConfig::with_signer(
        spec.consensus.clone(),
        setup.me,
        setup.identity,
        Arc::clone(&setup.signer) as Arc<dyn Signer>,
        setup.data_dir,
        Listen::Addr(setup.p2p_listen),
    );
    config.limits = setup.net_limits;
    config.clock = Arc::clone(&clock);
    config.app = spec.app.clone();
    config.beacon_share = setup.beacon_share;
    config.mempool = MempoolConfig {
        capacity: setup.mempool.capacity,
        per_account: setup.mempool.per_account,
        ..MempoolConfig::default()
    };
    let tracker = Arc::new(CorrelationTracker::new(correlation));
    config.tracker = Arc::clone(&tracker);
    config.index_receipts = setup.index_receipts;
    let engine = Engine::start(config)?;
    let (stop_cleanup, stop_cleanup_rx) = tokio::sync::oneshot::channel::<()>();
    let cleanup_task = tokio::spawn(clean_correlations(tracker, async move {
        // Either a send or the sender being dropped stops the task.
        let _ = stop_cleanup_rx.await;
    }));
    let monitor = Arc::new(SignerMonitor::new(
        Arc::clone(&setup.signer) as Arc<dyn Signer>,
        &spec.consensus.chain_id,
        Arc::clone(&clock),
    ));
    let (stop_monitor, stop_monitor_rx) = tokio::sync::oneshot::channel::<()>();
    let monitor_task = tokio::spawn(Arc::clone(&monitor).run(
        setup.signer_probe_interval_ms,
        async move {
            let _ = stop_monitor_rx.await;
        },
    ));
    let service = Arc::new(NodeService::new(
        engine.client(),
        Arc::clone(&spec),
        setup.me,
        clock,
        monitor,
        AdminAccess {
            killswitch: Arc::clone(&setup.signer),
            token: setup.admin_token,
            identity_key_path: setup.identity_key_path,
        },
    ));
    let name = service.status().node_id;
    // mlock can fail under a small RLIMIT_MEMLOCK: the node keeps running
    // (secrets stay guard-paged and zeroized) but says so once.
    if let Some(warning) = bitcraps_crypto::secret::take_lock_warning() {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        node = %name,
        chain_id = %spec.consensus.chain_id,
        p2p = %engine.local_addr(),
        http = %http_addr,
        height = engine.status().height,
        "validator started"
    );

    let (stop_http, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
    let api: Arc<dyn NodeApi> = service.clone();
    let http = tokio::spawn(crate::http::serve(listener, api, setup.http, async move {
        // Either a send or the sender being dropped stops the server.
        let _ = stop_http_rx.await;
    }));

    let mut watch = engine.watch_fatal();
    let fatal = async move {
        loop {
            if let Some(f) = watch.borrow_and_update().clone() {
                return f;
            }
            if watch.changed().await.is_err() {
                return "the engine task ended".to_owned();
            }
        }
    };
    let fatal = tokio::select! {
        () = shutdown => None,
        f = fatal => Some(f),
    };
    match &fatal {
        None => tracing::info!(node = %name, "shutting down"),
        Some(f) => tracing::error!(node = %name, "engine stopped: {f}; shutting down"),
    }
    let _ = stop_http.send(());
    let _ = stop_monitor.send(());
    let _ = monitor_task.await;
    let _ = stop_cleanup.send(());
    let _ = cleanup_task.await;
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("HTTP server: {e}"),
        Err(e) => tracing::warn!("HTTP server task: {e}"),
    }
    drop(service);
    let stopped = engine.shutdown().await;
    tracing::info!(node = %name, "stopped");
    match (stopped, fatal) {
        (Err(e), _) => Err(e.into()),
        (Ok(()), Some(f)) => Err(ValidatorError::Engine(EngineError::Task(f))),
        (Ok(()), None) => Ok(()),
    }
}

/// Evicts the tracker's entries older than its `max_age_ms`, every
/// `cleanup_interval_ms`, until `stop` completes. Times are wall-clock
/// (`unix_now_us`), the clock the stage times were stamped with.
async fn clean_correlations(
    tracker: Arc<CorrelationTracker>,
    stop: impl std::future::Future<Output = ()>,
) {
    let period = std::time::Duration::from_millis(tracker.config().cleanup_interval_ms.max(1));
    let mut ticks = tokio::time::interval(period);
    // After a stall, one cleanup catches up; a burst of them would not help.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once; nothing is old yet.
    ticks.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => {
                let evicted = tracker.cleanup(crate::trace::unix_now_us());
                if evicted > 0 {
                    tracing::debug!(evicted, "correlation tracker: evicted entries past max_age_ms");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tracker::{Origin, Stage};
    use bitcraps_crypto::Hash32;
    use std::time::Duration;

    #[tokio::test]
    async fn cleanup_task_evicts_old_entries_and_stops_on_request() {
        // Bounds below the config minimums (the tracker does not check
        // them) so the test takes milliseconds.
        let tracker = Arc::new(CorrelationTracker::new(TrackerConfig {
            max_entries: 8,
            max_age_ms: 1,
            cleanup_interval_ms: 1,
        }));
        let id = uuid::Uuid::from_bytes([1; 16]);
        // First seen at the epoch: long past max_age_ms by the wall clock.
        tracker.begin(id, Hash32([1; 32]), Origin::default(), Stage::Received, 0);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(clean_correlations(Arc::clone(&tracker), async move {
            let _ = stop_rx.await;
        }));
        tokio::time::timeout(Duration::from_secs(10), async {
            while tracker.stats().evicted_age_total == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the cleanup task never evicted the old entry");
        assert!(tracker.get(&id).is_empty());
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the cleanup task did not stop")
            .unwrap();
    }
}
