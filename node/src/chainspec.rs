//! `genesis.json`: the consensus genesis plus the application's genesis, the
//! one file every validator of a chain must share byte for byte.

use crate::app::AppGenesis;
use bitcraps_consensus::Genesis;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest genesis file accepted (bytes).
pub const MAX_CHAINSPEC_BYTES: u64 = 64 * 1024 * 1024;

/// The contents of `genesis.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Chain id, validators (keys and QUIC addresses) and consensus parameters.
    pub consensus: Genesis,
    /// Initial accounts.
    #[serde(default)]
    pub app: AppGenesis,
}

/// Why a genesis file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ChainSpecError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_CHAINSPEC_BYTES} bytes")]
    TooLarge { path: String },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl ChainSpec {
    /// Checks both halves.
    pub fn validate(&self) -> Result<(), String> {
        self.consensus.validate()?;
        self.app.validate()?;
        if let Some(beacon) = &self.app.beacon {
            let n = self.consensus.validators.len();
            if beacon.participants() as usize != n {
                return Err(format!(
                    "app.beacon has {} shares but there are {n} validators (share i+1 belongs to validator i)",
                    beacon.participants()
                ));
            }
        }
        Ok(())
    }

    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<ChainSpec, ChainSpecError> {
        let p = || path.display().to_string();
        let meta =
            std::fs::metadata(path).map_err(|source| ChainSpecError::Io { path: p(), source })?;
        if meta.len() > MAX_CHAINSPEC_BYTES {
            return Err(ChainSpecError::TooLarge { path: p() });
        }
        let bytes =
            std::fs::read(path).map_err(|source| ChainSpecError::Io { path: p(), source })?;
        let spec: ChainSpec = serde_json::from_slice(&bytes)
            .map_err(|source| ChainSpecError::Parse { path: p(), source })?;
        spec.validate()
            .map_err(|reason| ChainSpecError::Invalid { path: p(), reason })?;
        Ok(spec)
    }

    /// Pretty JSON, as written by `testnet init`.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
