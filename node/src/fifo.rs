//! A hash map that holds at most a fixed number of keys and forgets the
//! oldest first: the shape of every bounded cache in the node (verdict
//! cache, transaction log, relay de-duplication, trace marks).
//!
//! # Why the table grows to twice the bound when it first fills
//!
//! A map that sits at its bound and churns (one insert, one eviction, over
//! and over) never holds more keys, yet std's hash table grew under it: a
//! removal in a crowded probe group leaves a tombstone, tombstones use up
//! the free slots, and once none are left an insert into a table more than
//! half full doubles the table instead of cleaning it in place. A validator
//! soaking at a steady rate showed this as 17-26 MiB steps of RSS ten and
//! twenty minutes into the run, which looked like a leak (BENCHMARKS.md, the
//! 30-minute soaks). Reserving room for twice the bound the moment the map
//! first fills keeps the live keys at most half the table, where the table
//! is rehashed in place: it reaches its final size at fill time and never
//! moves again. A map that never fills never pays for it.

use bitcraps_crypto::fastmap::FastMap;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Capacity to ask of a std `HashMap` or `HashSet` that will hold at most
/// `bound` keys while churning, so that it never reallocates (see the
/// module doc).
pub fn churn_capacity(bound: usize) -> usize {
    bound.saturating_mul(2)
}

/// Called before inserting into `map`, which holds at most `bound` keys:
/// the first time it is full, grows its table to [`churn_capacity`] so that
/// churning at the bound never reallocates it (see the module doc).
pub fn reserve_for_churn<K: Hash + Eq, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
    bound: usize,
) {
    let want = churn_capacity(bound);
    if map.len() >= bound && map.capacity() < want {
        map.reserve(want - map.len());
    }
}

/// At most `bound` keys, oldest (by first insertion) evicted first. Lookups,
/// inserts and removals are O(1); re-inserting a present key keeps its age
/// (FIFO, not LRU).
#[derive(Debug, Clone)]
pub struct FifoMap<K, V> {
    map: FastMap<K, V>,
    /// Keys in insertion order. A removed key's slot stays until it reaches
    /// the front or the queue outgrows twice the bound (then it is compacted).
    order: VecDeque<K>,
    bound: usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    /// A map holding at most `bound` keys (at least one: a cache that
    /// should hold nothing is better not consulted at all).
    pub fn new(bound: usize) -> Self {
        let bound = bound.max(1);
        FifoMap {
            map: FastMap::default(),
            order: VecDeque::new(),
            bound,
        }
    }

    /// The most keys it holds.
    pub fn bound(&self) -> usize {
        self.bound
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The value under `key`, inserted with `make` (after evicting the
    /// oldest keys to make room) if it is absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) {
            self.make_room();
            self.order.push_back(key.clone());
        }
        self.map.entry(key).or_insert_with(make)
    }

    /// Removes `key`; its place in the order is dropped lazily.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let value = self.map.remove(key)?;
        if self.order.front() == Some(key) {
            self.order.pop_front();
        }
        Some(value)
    }

    /// The oldest live key and its value.
    pub fn oldest(&mut self) -> Option<(&K, &V)> {
        self.skip_stale();
        let key = self.order.front()?;
        self.map.get(key).map(|v| (key, v))
    }

    /// Removes and returns the oldest live key and its value.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        // A stale slot (its key was removed) finds nothing: one hash per
        // slot, not a lookup and then a removal.
        while let Some(key) = self.order.pop_front() {
            if let Some(value) = self.map.remove(&key) {
                return Some((key, value));
            }
        }
        None
    }

    /// Keys the table can hold before it must grow (live keys plus free
    /// slots): never rises once the map has filled (what the churn test
    /// checks).
    #[cfg(test)]
    fn table_capacity(&self) -> usize {
        self.map.capacity()
    }

    fn make_room(&mut self) {
        reserve_for_churn(&mut self.map, self.bound);
        while self.map.len() >= self.bound {
            if self.pop_oldest().is_none() {
                break;
            }
        }
        // Removed keys leave stale order slots; drop them before they
        // outnumber the live ones, so the queue stays within 2 x bound.
        if self.order.len() >= 2 * self.bound {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
    }

    /// Drops order slots of removed keys from the front.
    fn skip_stale(&mut self) {
        while let Some(front) = self.order.front() {
            if self.map.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_first_and_keeps_age_on_reinsert() {
        let mut m: FifoMap<u32, u32> = FifoMap::new(2);
        *m.get_or_insert_with(1, || 10) += 1;
        m.get_or_insert_with(2, || 20);
        // Present: the value stays, and so does its age.
        assert_eq!(*m.get_or_insert_with(1, || 99), 11);
        m.get_or_insert_with(3, || 30);
        assert_eq!(m.len(), 2);
        assert!(!m.contains_key(&1), "1 was the oldest");
        assert_eq!(m.get(&2), Some(&20));
        assert_eq!(m.oldest(), Some((&2, &20)));
        assert_eq!(m.pop_oldest(), Some((2, 20)));
        assert_eq!(m.pop_oldest(), Some((3, 30)));
        assert_eq!(m.pop_oldest(), None);
    }

    #[test]
    fn removed_keys_do_not_count_and_are_skipped() {
        let mut m: FifoMap<u32, ()> = FifoMap::new(3);
        for k in 0..3 {
            m.get_or_insert_with(k, || ());
        }
        assert_eq!(m.remove(&1), Some(()));
        assert_eq!(m.remove(&1), None);
        m.get_or_insert_with(3, || ());
        // Room was made by the removal: 0 is still here.
        assert!(m.contains_key(&0) && m.contains_key(&2) && m.contains_key(&3));
        assert_eq!(m.remove(&0), Some(()));
        // 1's stale slot sits between 0 and 2: skipped.
        assert_eq!(m.oldest().map(|(k, _)| *k), Some(2));
        // Removing every key but the last many times keeps the queue small.
        for k in 10..1_000 {
            m.get_or_insert_with(k, || ());
            m.remove(&k);
        }
        assert!(m.order.len() <= 2 * m.bound());
    }

    #[test]
    fn zero_bound_holds_one() {
        let mut m: FifoMap<u32, u32> = FifoMap::new(0);
        m.get_or_insert_with(1, || 1);
        m.get_or_insert_with(2, || 2);
        assert_eq!((m.bound(), m.len(), m.get(&2)), (1, 1, Some(&2)));
    }

    /// The soak regression: a full map churned for many times its bound
    /// keeps the table it started with. A map sized for the bound alone
    /// (std's default growth) fails this by doubling.
    #[test]
    fn churning_at_the_bound_never_grows_the_table() {
        for bound in [7, 1_000, 65_536] {
            let mut m: FifoMap<u64, u64> = FifoMap::new(bound);
            // Spread keys like hashes do.
            let key = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for k in 0..=bound as u64 {
                m.get_or_insert_with(key(k), || k);
            }
            let filled = m.table_capacity();
            assert!(filled >= churn_capacity(bound), "bound {bound}: {filled}");
            for k in bound as u64..(bound as u64) * 20 {
                m.get_or_insert_with(key(k), || k);
            }
            assert_eq!(m.len(), bound);
            // std reports live keys plus free slots: tombstones lower it, a
            // new table would at least double it.
            assert!(
                m.table_capacity() <= filled,
                "bound {bound}: grew from {filled}"
            );
        }
        // The control: std's map sized for the bound alone (76% full at
        // the bound, like the transaction log was) grows under the same churn.
        let bound = 100_000usize;
        let mut plain: HashMap<u64, u64> = HashMap::with_capacity(bound);
        let mut order = VecDeque::new();
        let start = plain.capacity();
        for k in 0..(bound as u64) * 20 {
            if plain.len() >= bound {
                let old = order.pop_front().unwrap_or_default();
                plain.remove(&old);
            }
            let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            plain.insert(key, k);
            order.push_back(key);
        }
        assert!(
            plain.capacity() > start,
            "std's table did not grow: {start}"
        );
    }
}
