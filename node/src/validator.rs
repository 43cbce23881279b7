//! A running validator: the engine, the application, the mempool and the HTTP
//! API wired together. `bitcraps start` builds a [`ValidatorSetup`] from the
//! node's home directory and calls [`run`].

use crate::chainspec::ChainSpec;
use crate::http::HttpLimits;
use crate::net::Limits;
use bitcraps_crypto::Keypair;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Consensus key (genesis `consensus_key`); used only through the guard.
    pub consensus_key: Keypair,
    /// Database and signing-guard state.
    pub data_dir: PathBuf,
    /// UDP address of the QUIC endpoint.
    pub p2p_listen: SocketAddr,
    /// TCP address of the HTTP API.
    pub http_listen: SocketAddr,
    pub net_limits: Limits,
    pub mempool: MempoolLimits,
    pub http: HttpLimits,
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
pub async fn run(
    setup: ValidatorSetup,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ValidatorError> {
    let _ = (setup, shutdown.await);
    Err(ValidatorError::Setup("validator::run is being wired".into()))
}
