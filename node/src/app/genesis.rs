//! The application's part of genesis: who holds chips at height 0, the dice
//! beacon's public keys, and how long betting stays open before a roll.

use bitcraps_crypto::beacon::BeaconPublic;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppGenesis {
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// The localnet/testnet faucet, if any (it is also one of `allocations`).
    #[serde(default)]
    pub faucet: Option<PublicKey>,
    /// The threshold randomness beacon the dice come from (dealt at
    /// `testnet init`). Without one the chain runs transfers and tables, but
    /// refuses bets: there would be no fair way to roll.
    #[serde(default)]
    pub beacon: Option<BeaconPublic>,
    /// Betting stays open this long (by block timestamps) after the first bet
    /// of a roll; then the next block closes it and the dice wait for the
    /// beacon (see `app::game`).
    #[serde(default = "default_roll_interval_ms")]
    pub roll_interval_ms: u64,
}

/// Default betting window before a roll (ms).
pub const DEFAULT_ROLL_INTERVAL_MS: u64 = 1_000;
/// Longest betting window accepted (ms): one hour.
pub const MAX_ROLL_INTERVAL_MS: u64 = 3_600_000;

fn default_roll_interval_ms() -> u64 {
    DEFAULT_ROLL_INTERVAL_MS
}

impl Default for AppGenesis {
    fn default() -> Self {
        AppGenesis {
            allocations: Vec::new(),
            faucet: None,
            beacon: None,
            roll_interval_ms: DEFAULT_ROLL_INTERVAL_MS,
        }
    }
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
        if self.roll_interval_ms > MAX_ROLL_INTERVAL_MS {
            return Err(format!(
                "roll_interval_ms {} is more than {MAX_ROLL_INTERVAL_MS}",
                self.roll_interval_ms
            ));
        }
        if let Some(b) = &self.beacon {
            b.validate().map_err(|e| format!("beacon: {e}"))?;
        }
        if let Some(f) = &self.faucet {
            if !self.allocations.iter().any(|a| a.account == *f) {
                return Err("the faucet has no genesis allocation".into());
            }
        }
        Ok(())
    }
}
