//! Why a localnet run, or a [`super::Cluster`] operation, failed.

use super::client::ClientError;

/// Every failure of `bitcraps localnet` and of the cluster controller. The
/// messages are written for a newcomer: they say which node, and where to look.
#[derive(Debug, thiserror::Error)]
pub enum LocalnetError {
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("testnet init: {0}")]
    Testnet(String),
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("faucet key: {0}")]
    Key(String),
    #[error("starting {node} ({bin}): {source}")]
    Spawn {
        node: String,
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no node with index {0}")]
    NoSuchNode(usize),
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("{0} is already running")]
    AlreadyRunning(String),
    #[error("{node} exited ({status}); see its log {log}")]
    NodeExited {
        node: String,
        status: String,
        log: String,
    },
    #[error("{node} not ready after {timeout_ms} ms ({reason}); see its log {log}")]
    NotReady {
        node: String,
        timeout_ms: u64,
        reason: String,
        log: String,
    },
    #[error("timed out after {timeout_ms} ms waiting for {what}")]
    Timeout { what: String, timeout_ms: u64 },
    #[error(transparent)]
    Http(#[from] ClientError),
    #[error("funding players: {0}")]
    Funding(String),
    #[error("interrupted")]
    Interrupted,
    /// The run finished but is not a success (state roots differ or nothing
    /// was committed). The summary was printed (and written with `--json`).
    #[error("localnet failed: {0}")]
    Unhealthy(String),
}

impl LocalnetError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LocalnetError::Io {
            context: context.into(),
            source,
        }
    }
}
