//! Genesis: the chain id, the validator set and the protocol parameters every
//! validator starts from.

use crate::block::{Block, BlockHeader};
use crate::params::{Params, MAX_VALIDATORS};
use bitcraps_crypto::{domain::MAX_CHAIN_ID_LEN, hash, Hash32, PublicKey};
use serde::{Deserialize, Serialize};

/// Index of a validator in the genesis order.
pub type ValidatorIndex = u16;

/// One validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// Human-readable name (logs, dashboards).
    pub name: String,
    /// Key that signs votes and proposals.
    pub consensus_key: PublicKey,
    /// Key that authenticates the QUIC connection (separate from the consensus key,
    /// so it can be rotated without touching consensus).
    pub identity_key: PublicKey,
    /// Network address `host:port` of its QUIC endpoint.
    #[serde(default)]
    pub address: String,
}

/// The genesis value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    /// Timestamp of the genesis block (ms since the Unix epoch).
    pub genesis_time_ms: u64,
    pub validators: Vec<Validator>,
    #[serde(default)]
    pub params: Params,
}

impl Genesis {
    /// A genesis whose validators are `keys`, in order, named `val{i}`, each
    /// using one key as both consensus and identity key. For simulations,
    /// benchmarks and tests; operators' genesis files keep the keys separate.
    pub fn from_keypairs(
        chain_id: &str,
        genesis_time_ms: u64,
        keys: &[bitcraps_crypto::Keypair],
        params: Params,
    ) -> Genesis {
        Genesis {
            chain_id: chain_id.into(),
            genesis_time_ms,
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, k)| Validator {
                    name: format!("val{i}"),
                    consensus_key: k.public(),
                    identity_key: k.public(),
                    address: String::new(),
                })
                .collect(),
            params,
        }
    }

    /// Checks the value and returns the validator set.
    pub fn validate(&self) -> Result<ValidatorSet, String> {
        if self.chain_id.is_empty() || self.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(format!("chain_id must be 1..={MAX_CHAIN_ID_LEN} bytes"));
        }
        if self.validators.is_empty() || self.validators.len() > MAX_VALIDATORS {
            return Err(format!("need 1..={MAX_VALIDATORS} validators"));
        }
        let mut keys: Vec<_> = self.validators.iter().map(|v| v.consensus_key).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != self.validators.len() {
            return Err("duplicate consensus key in validator set".into());
        }
        self.params.validate()?;
        Ok(ValidatorSet::new(
            self.validators.iter().map(|v| v.consensus_key).collect(),
        ))
    }

    /// The virtual genesis block (view 0, height 0). It is final by definition.
    pub fn block(&self) -> Block {
        let mut seed = Vec::new();
        seed.extend_from_slice(self.chain_id.as_bytes());
        for v in &self.validators {
            seed.extend_from_slice(v.consensus_key.as_bytes());
        }
        Block {
            header: BlockHeader {
                view: 0,
                height: 0,
                parent: Hash32::ZERO,
                parent_view: 0,
                proposer: 0,
                timestamp_ms: self.genesis_time_ms,
                payload_hash: hash(&seed),
                payload_len: 0,
            },
            payload: Vec::new(),
        }
    }
}

/// The validator set with its quorum arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    keys: Vec<PublicKey>,
}

impl ValidatorSet {
    pub fn new(keys: Vec<PublicKey>) -> Self {
        ValidatorSet { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Byzantine validators tolerated: the largest f with n >= 3f + 1.
    pub fn max_faulty(&self) -> usize {
        (self.keys.len().saturating_sub(1)) / 3
    }

    /// Certificate size: the smallest q with 2q - n > f, so any two quorums share
    /// at least one honest validator (q = 2f + 1 when n = 3f + 1).
    pub fn quorum(&self) -> usize {
        (self.keys.len() + self.max_faulty()) / 2 + 1
    }

    /// Round-robin leader of `view` (Simplex's leader schedule; a deterministic
    /// rotation keeps every validator's share of proposals equal).
    pub fn leader(&self, view: u64) -> ValidatorIndex {
        (view % self.keys.len() as u64) as ValidatorIndex
    }

    pub fn key(&self, index: ValidatorIndex) -> Option<&PublicKey> {
        self.keys.get(index as usize)
    }

    pub fn index_of(&self, key: &PublicKey) -> Option<ValidatorIndex> {
        self.keys
            .iter()
            .position(|k| k == key)
            .map(|i| i as ValidatorIndex)
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_crypto::Keypair;

    fn set(n: usize) -> ValidatorSet {
        ValidatorSet::new(
            (0..n)
                .map(|i| Keypair::from_seed(&[i as u8 + 1; 32]).public())
                .collect(),
        )
    }

    #[test]
    fn quorum_intersects_in_an_honest_validator() {
        for n in 1..60 {
            let s = set(n.min(40));
            let (n, f, q) = (s.len(), s.max_faulty(), s.quorum());
            assert!(n > 3 * f);
            assert!(2 * q > n + f, "n={n} f={f} q={q}");
            assert!(
                n - f >= q,
                "liveness: honest validators alone form a quorum"
            );
        }
        assert_eq!(set(4).quorum(), 3);
        assert_eq!(set(7).quorum(), 5);
        assert_eq!(set(5).quorum(), 4);
    }
}
