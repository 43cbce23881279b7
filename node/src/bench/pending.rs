//! The bounded map of transactions sent and not yet seen committed: tx hash
//! to intended send time.
//!
//! Entries leave it when the commit follower sees the transaction in a
//! block (a latency sample), when a node refuses it (counted as rejected),
//! or when they time out. Bounded two ways: an entry older than the
//! timeout is dropped by [`Pending::expire`], and inserting beyond
//! [`Pending::capacity`] evicts the oldest; both count as timed out.
//!
//! Intended times only grow, so age order is insertion order: a queue of
//! `(intended, hash)` next to the hash map finds the oldest entries without
//! scanning. Queue items whose hash already left the map are skipped when
//! they reach the front; the queue is capped at the same capacity, so it
//! never holds more than that either.

use std::collections::{HashMap, VecDeque};

/// Default capacity: a minute at 10,000 tx/s, ~60 MiB at most.
pub const DEFAULT_PENDING_CAPACITY: usize = 600_000;

/// Sent, not yet committed transactions. See the module docs.
#[derive(Debug)]
pub struct Pending {
    map: HashMap<[u8; 32], u64>,
    order: VecDeque<(u64, [u8; 32])>,
    capacity: usize,
}

impl Pending {
    pub fn new(capacity: usize) -> Pending {
        Pending {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds a transaction intended at `intended_us`. Returns how many older
    /// entries were evicted to make room (they count as timed out).
    pub fn insert(&mut self, hash: [u8; 32], intended_us: u64) -> u64 {
        let mut evicted = 0;
        while self.order.len() >= self.capacity {
            match self.order.pop_front() {
                Some((_, old)) => {
                    if self.map.remove(&old).is_some() {
                        evicted += 1;
                    }
                }
                None => break,
            }
        }
        if self.map.insert(hash, intended_us).is_none() {
            self.order.push_back((intended_us, hash));
        }
        evicted
    }

    /// Takes a transaction out; its intended time if it was pending.
    pub fn remove(&mut self, hash: &[u8; 32]) -> Option<u64> {
        self.map.remove(hash)
    }

    /// Drops every entry intended before `now_us - timeout_us`. Returns how
    /// many were still pending (they count as timed out).
    pub fn expire(&mut self, now_us: u64, timeout_us: u64) -> u64 {
        let cutoff = now_us.saturating_sub(timeout_us);
        let mut expired = 0;
        while let Some(&(intended, hash)) = self.order.front() {
            let present = self.map.get(&hash) == Some(&intended);
            if present && intended >= cutoff {
                break;
            }
            self.order.pop_front();
            if present {
                self.map.remove(&hash);
                expired += 1;
            }
        }
        expired
    }

    /// Empties the map. Returns how many entries it held.
    pub fn clear(&mut self) -> u64 {
        let n = self.map.len();
        self.map.clear();
        self.order.clear();
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> [u8; 32] {
        [i; 32]
    }

    #[test]
    fn insert_remove_expire() {
        let mut p = Pending::new(10);
        for i in 0..5u8 {
            assert_eq!(p.insert(h(i), u64::from(i) * 100), 0);
        }
        assert_eq!(p.len(), 5);
        assert_eq!(p.remove(&h(1)), Some(100));
        assert_eq!(p.remove(&h(1)), None);
        // Cutoff 250: 0 and 2 expire (1 already left), 3 and 4 stay.
        assert_eq!(p.expire(1_250, 1_000), 2);
        assert_eq!(p.len(), 2);
        assert_eq!(p.remove(&h(3)), Some(300));
        // The front (3) left the map: skipped, 4 stays.
        assert_eq!(p.expire(1_250, 1_000), 0);
        assert_eq!(p.len(), 1);
        assert_eq!(p.clear(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let mut p = Pending::new(3);
        assert_eq!(p.insert(h(1), 1), 0);
        assert_eq!(p.insert(h(2), 2), 0);
        assert_eq!(p.insert(h(3), 3), 0);
        assert_eq!(p.insert(h(4), 4), 1);
        assert_eq!(p.remove(&h(1)), None);
        assert_eq!(p.len(), 3);
        // Committed entries free room without counting as evicted.
        p.remove(&h(2));
        assert_eq!(p.insert(h(5), 5), 0);
        assert_eq!(p.insert(h(6), 6), 1);
        assert_eq!(p.remove(&h(3)), None);
        assert_eq!(p.len(), 3);
        assert!(p.order.len() <= p.capacity());
        // Bounded under churn.
        for i in 0..10_000u64 {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            p.insert(k, 10 + i);
            if i % 2 == 0 {
                p.remove(&k);
            }
            assert!(p.order.len() <= 3 && p.len() <= 3);
        }
    }
}
