//! Hash tables for keys that outsiders pick: transaction ids, public keys,
//! signatures' key bytes.
//!
//! Why not std's default: SipHash-1-3 is built for short keys of unknown
//! shape and costs ~20 ns on a 32-byte key. On the node's hot paths every
//! transaction goes through a dozen such lookups per validator; callgrind
//! put hashing at 41% of the mempool's instructions over a transaction's
//! pool life (`mempool::cycle_100` in `scripts/bench-gate.sh`).
//!
//! Why foldhash: several times cheaper on these keys, and keyed. Its own
//! `RandomState` seeds itself from address-space layout and the time, and
//! says it does not aim at HashDoS resistance; here the shared seed comes
//! from the OS random source instead (once per process), and each table gets
//! its own per-table seed, as std does, so draining one table into another
//! never meets the same bucket order. A client grinding transaction ids
//! (each costing it a signature and a blake3 hash, under per-client rate
//! limits) cannot aim them at one bucket without the seed. foldhash is not a
//! keyed PRF: this resists blind grinding, which is the attack open to a
//! client, not one that could read hash values back.
//!
//! Iteration order is random like std's: nothing may depend on it (the
//! mempool and the state walk `BTreeMap`s for anything ordered).

use foldhash::fast::{FoldHasher, SeedableRandomState};
use foldhash::SharedSeed;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The shared seed, drawn once per process.
static SHARED: OnceLock<SharedSeed> = OnceLock::new();
/// Per-table seeds: distinct for every table built in this process.
static NEXT_TABLE: AtomicU64 = AtomicU64::new(0);

fn shared() -> &'static SharedSeed {
    SHARED.get_or_init(|| {
        let mut seed = [0u8; 8];
        // Without an OS random source the process has bigger problems (key
        // generation fails loudly); the tables then still work, with a seed
        // from foldhash's own sources.
        if getrandom::fill(&mut seed).is_err() {
            return SharedSeed::global_random().clone();
        }
        SharedSeed::from_u64(u64::from_le_bytes(seed))
    })
}

/// Fixes the shared seed for this process, for instruction counting only
/// (`hotpaths`: the same probes on every run). Must come before the first
/// table is built; returns false (and changes nothing) after. A node never
/// calls it.
pub fn fix_seed_for_counting(seed: u64) -> bool {
    SHARED.set(SharedSeed::from_u64(seed)).is_ok()
}

/// The hasher state: foldhash keyed by the process's shared seed and a
/// per-table seed.
#[derive(Clone, Debug)]
pub struct FastState(SeedableRandomState);

impl Default for FastState {
    fn default() -> Self {
        let table = NEXT_TABLE.fetch_add(1, Ordering::Relaxed);
        FastState(SeedableRandomState::with_seed(table, shared()))
    }
}

impl BuildHasher for FastState {
    type Hasher = FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A `HashMap` with [`FastState`]; build with `FastMap::default()`.
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A `HashSet` with [`FastState`]; build with `FastSet::default()`.
pub type FastSet<K> = HashSet<K, FastState>;

/// An empty map with room for `capacity` entries.
pub fn map_with_capacity<K, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, FastState::default())
}

/// An empty set with room for `capacity` entries.
pub fn set_with_capacity<K>(capacity: usize) -> FastSet<K> {
    HashSet::with_capacity_and_hasher(capacity, FastState::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_behave_like_std_and_tables_are_keyed_apart() {
        let mut m: FastMap<[u8; 32], u64> = map_with_capacity(4);
        for i in 0..1000u64 {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            m.insert(k, i);
        }
        assert_eq!(m.len(), 1000);
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&777u64.to_le_bytes());
        assert_eq!(m.get(&k), Some(&777));
        assert_eq!(m.remove(&k), Some(777));
        assert!(!m.contains_key(&k));
        let mut s: FastSet<u64> = set_with_capacity(0);
        assert!(s.insert(5) && !s.insert(5));
        // Two tables hash the same key differently (a 64-bit collision of
        // two per-table seeds' outputs is negligible), so one table's
        // bucket order says nothing about another's.
        let (a, b) = (FastState::default(), FastState::default());
        let key = [7u8; 32];
        assert_ne!(a.hash_one(key), b.hash_one(key));
        // A clone hashes like its original (a cloned map must find its keys).
        assert_eq!(a.hash_one(key), a.clone().hash_one(key));
        // The shared seed is drawn already: it can no longer be fixed.
        assert!(!fix_seed_for_counting(1));
    }
}
