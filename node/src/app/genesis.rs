//! The application's part of genesis: who holds chips at height 0.

use bitcraps_crypto::PublicKey;
use serde::{Deserialize, Serialize};

/// Most genesis allocations. Bounds the genesis file, and keeps the genesis
/// state small enough to be written together with the first block.
pub const MAX_ALLOCATIONS: usize = 10_000;

/// One account funded at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub account: PublicKey,
    /// Chips.
    pub balance: u64,
}

/// Initial application state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppGenesis {
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// The localnet/testnet faucet, if any (it is also one of `allocations`).
    #[serde(default)]
    pub faucet: Option<PublicKey>,
}

impl AppGenesis {
    /// Checks limits and uniqueness; returns a human-readable reason on failure.
    pub fn validate(&self) -> Result<(), String> {
        if self.allocations.len() > MAX_ALLOCATIONS {
            return Err(format!("more than {MAX_ALLOCATIONS} genesis allocations"));
        }
        let mut keys: Vec<_> = self.allocations.iter().map(|a| a.account).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != self.allocations.len() {
            return Err("duplicate account in genesis allocations".into());
        }
        let mut total: u64 = 0;
        for a in &self.allocations {
            total = total
                .checked_add(a.balance)
                .ok_or("genesis allocations overflow u64")?;
        }
        if let Some(f) = &self.faucet {
            if !self.allocations.iter().any(|a| a.account == *f) {
                return Err("the faucet has no genesis allocation".into());
            }
        }
        Ok(())
    }
}
