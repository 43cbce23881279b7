//! When this node admitted and executed recent transactions, for
//! `GET /api/v1/tx/{hash}` timings. Bounded: the oldest entries are forgotten
//! (committed transactions stay findable through their stored receipts).

use crate::fifo::FifoMap;
use bitcraps_crypto::Hash32;

/// Entries kept by default.
pub const DEFAULT_TX_LOG_ENTRIES: usize = 200_000;

/// Wall-clock times (ms since the Unix epoch) seen for one transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxTimes {
    /// Admitted to this node's mempool.
    pub received_ms: Option<u64>,
    /// The block that contains it was executed here.
    pub committed_ms: Option<u64>,
    /// Height of the block holding its stored receipt (the newest, like the
    /// index; a block that replayed it stores none).
    pub height: Option<u64>,
}

/// A bounded map from transaction hash to [`TxTimes`], oldest evicted first.
#[derive(Debug)]
pub struct TxLog {
    times: FifoMap<Hash32, TxTimes>,
}

impl TxLog {
    pub fn new(capacity: usize) -> Self {
        TxLog {
            times: FifoMap::new(capacity),
        }
    }

    pub fn received(&mut self, hash: Hash32, at_ms: u64) {
        self.times
            .get_or_insert_with(hash, TxTimes::default)
            .received_ms = Some(at_ms);
    }

    /// Executed at `at_ms`; `height` when that block stored its receipt
    /// (`None` keeps the height already known).
    pub fn committed(&mut self, hash: Hash32, at_ms: u64, height: Option<u64>) {
        let t = self.times.get_or_insert_with(hash, TxTimes::default);
        t.committed_ms = Some(at_ms);
        t.height = height.or(t.height);
    }

    pub fn get(&self, hash: &Hash32) -> Option<TxTimes> {
        self.times.get(hash).copied()
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> Hash32 {
        Hash32([i; 32])
    }

    #[test]
    fn keeps_both_times_and_evicts_oldest() {
        let mut log = TxLog::new(2);
        log.received(h(1), 10);
        log.committed(h(1), 20, Some(4));
        assert_eq!(
            log.get(&h(1)),
            Some(TxTimes {
                received_ms: Some(10),
                committed_ms: Some(20),
                height: Some(4),
            })
        );
        // A replay in a later block: new time, the stored receipt's height stays.
        log.committed(h(1), 25, None);
        assert_eq!(log.get(&h(1)).unwrap().height, Some(4));
        assert_eq!(log.get(&h(1)).unwrap().committed_ms, Some(25));
        log.received(h(2), 11);
        log.committed(h(3), 30, Some(5));
        assert_eq!(log.len(), 2);
        assert_eq!(log.get(&h(1)), None);
        assert!(log.get(&h(2)).is_some() && log.get(&h(3)).is_some());
    }
}
