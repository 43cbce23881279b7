//! Follows the committed chain on one validator and turns what it sees into
//! latency samples.
//!
//! It pages through `GET /api/v1/blocks?from=&limit=&wait_ms=` like
//! localnet's watcher: a long poll that the node answers as soon as the next
//! block commits ([`LONG_POLL_MS`] at most), because a poll interval would be
//! part of every latency it measures. For each new block it records
//! * the consensus latency: the moment the block was seen committed
//!   (wall clock) minus the proposer's `timestamp_ms` in its header (the
//!   validators and the bench share this machine's clock), and
//! * for each bench transaction in it, seen-committed time minus the
//!   transaction's intended send time (from [`super::pending`]).
//!
//! Every [`EXPIRE_EVERY_MS`] it also drops pending transactions older than
//! [`PENDING_TIMEOUT_MS`] (counted as timed out). If the followed validator
//! stops answering, it moves to the next one.

use super::stats::{lock, Shared};
use crate::api::BlockView;
use crate::localnet::client::{ClientError, NodeClient, MAX_BLOCKS_PER_PAGE};
use std::sync::Arc;
use tokio::sync::watch;

/// How long the node may hold a poll open until the next block commits
/// (`GET /api/v1/blocks?wait_ms=`): the follower learns of a commit at once
/// and sends no requests while nothing happens.
pub const LONG_POLL_MS: u64 = 1_000;
/// Pause after an empty page (the node waited [`LONG_POLL_MS`] in vain, or
/// does not support waiting).
pub const IDLE_POLL_MS: u64 = 5;
/// Pause after a failed poll (before asking the next validator).
pub const ERROR_PAUSE_MS: u64 = 50;
/// A transaction not seen committed this long after its intended send time
/// is given up (timed out), which keeps the pending map bounded in time.
pub const PENDING_TIMEOUT_MS: u64 = 30_000;
/// How often the pending map is swept for such transactions.
pub const EXPIRE_EVERY_MS: u64 = 1_000;

/// The hash bytes of a block's hex transaction id.
fn parse_hash(hex_id: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut out).ok()?;
    Some(out)
}

/// The commit follower. See the module docs.
#[derive(Debug)]
pub struct Follower {
    shared: Arc<Shared>,
    clients: Vec<NodeClient>,
    /// Next height to process.
    next: u64,
    /// Index of the followed validator.
    node: usize,
    last_expire_us: u64,
}

impl Follower {
    /// Follows from height `from` (the first block of the load).
    pub fn new(shared: Arc<Shared>, clients: Vec<NodeClient>, from: u64) -> Follower {
        Follower {
            shared,
            clients,
            next: from,
            node: 0,
            last_expire_us: 0,
        }
    }

    /// Next height the follower will process.
    pub fn next_height(&self) -> u64 {
        self.next
    }

    /// Processes `blocks` in height order from [`Follower::next_height`]
    /// (stopping at the first gap), all seen committed now. Returns how
    /// many it processed.
    pub fn observe(&mut self, blocks: &[BlockView]) -> usize {
        let now_us = self.shared.clock.now_us();
        let wall_ms = self.shared.clock.now_ms();
        let mut processed = 0;
        let mut intended = Vec::new();
        let mut block_txs = 0u64;
        let mut consensus = Vec::new();
        {
            let mut pending = lock(&self.shared.pending);
            for b in blocks {
                if b.height != self.next {
                    break;
                }
                consensus.push(wall_ms.saturating_sub(b.timestamp_ms));
                block_txs += u64::try_from(b.txs.len()).unwrap_or(u64::MAX);
                for id in &b.txs {
                    if let Some(t) = parse_hash(id).and_then(|h| pending.remove(&h)) {
                        intended.push(t);
                    }
                }
                self.next += 1;
                processed += 1;
            }
        }
        if processed > 0 {
            let mut step = lock(&self.shared.step);
            step.blocks += u64::try_from(processed).unwrap_or(u64::MAX);
            step.block_txs += block_txs;
            for c in consensus {
                step.consensus_ms.record(c);
            }
            for t in intended {
                step.record_commit(t, now_us);
            }
        }
        if now_us.saturating_sub(self.last_expire_us) >= EXPIRE_EVERY_MS * 1_000 {
            self.last_expire_us = now_us;
            let expired =
                lock(&self.shared.pending).expire(now_us, PENDING_TIMEOUT_MS.saturating_mul(1_000));
            lock(&self.shared.step).timed_out += expired;
        }
        processed
    }

    /// Fetches one page from the followed validator and processes it.
    pub async fn poll_once(&mut self) -> Result<usize, ClientError> {
        let n = self.clients.len().max(1);
        let Some(client) = self.clients.get(self.node % n) else {
            return Ok(0);
        };
        match client
            .blocks_wait(self.next, MAX_BLOCKS_PER_PAGE, LONG_POLL_MS)
            .await
        {
            Ok(blocks) => Ok(self.observe(&blocks)),
            Err(e) => {
                self.node = (self.node + 1) % n;
                Err(e)
            }
        }
    }

    /// Follows until `stop` fires.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Follower {
        loop {
            if *stop.borrow() {
                return self;
            }
            let pause_ms = tokio::select! {
                r = self.poll_once() => match r {
                    // The next request waits on the node for the next block.
                    Ok(n) if n > 0 => 0,
                    Ok(_) => IDLE_POLL_MS,
                    Err(_) => ERROR_PAUSE_MS,
                },
                _ = stop.changed() => return self,
            };
            if pause_ms > 0 {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(pause_ms)) => {}
                    _ = stop.changed() => return self,
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::Clock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock the test moves by hand.
    #[derive(Debug, Default)]
    pub struct FakeClock {
        pub us: AtomicU64,
    }

    impl FakeClock {
        pub fn set_us(&self, us: u64) {
            self.us.store(us, Ordering::SeqCst);
        }
    }

    impl Clock for FakeClock {
        fn now_ms(&self) -> u64 {
            self.us.load(Ordering::SeqCst) / 1_000
        }
        fn now_us(&self) -> u64 {
            self.us.load(Ordering::SeqCst)
        }
    }

    fn block(height: u64, timestamp_ms: u64, txs: &[[u8; 32]]) -> BlockView {
        BlockView {
            height,
            view: height,
            id: String::new(),
            parent: String::new(),
            proposer: 0,
            timestamp_ms,
            txs: txs.iter().map(hex::encode).collect(),
            beacon_round: None,
            signers: vec![0, 1, 2],
            state_root: None,
        }
    }

    #[test]
    fn commits_count_from_intended_time_with_a_fake_clock() {
        let clock = Arc::new(FakeClock::default());
        let shared = Arc::new(Shared::new(clock.clone(), 100));
        shared.begin_step(2_000_000);
        let (a, b, other) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        {
            let mut p = lock(&shared.pending);
            p.insert(a, 1_000_000);
            p.insert(b, 1_010_000);
        }
        let mut f = Follower::new(Arc::clone(&shared), Vec::new(), 5);
        // The response for `a` came back late; the block holding it is seen
        // at 1.300 s: a's latency is 300 ms from its intended time.
        clock.set_us(1_300_000);
        // Height 4 is below the follower, 7 leaves a gap: neither counts.
        let n = f.observe(&[block(5, 1_280, &[a, other]), block(7, 1_290, &[b])]);
        assert_eq!(n, 1);
        assert_eq!(f.next_height(), 6);
        clock.set_us(2_500_000);
        assert_eq!(f.observe(&[block(6, 2_480, &[b])]), 1);
        let s = lock(&shared.step);
        assert_eq!(s.committed, 2);
        assert_eq!(s.committed_in_window, 1, "b was seen after the window");
        assert_eq!(s.latency_us.percentile(0.0), Some(300_000));
        assert_eq!(s.latency_us.percentile(100.0), Some(1_490_000));
        assert_eq!(s.blocks, 2);
        assert_eq!(s.block_txs, 3);
        assert_eq!(
            s.consensus_ms.percentiles(&[0.0, 100.0]),
            vec![Some(20), Some(20)]
        );
        assert!(lock(&shared.pending).is_empty());
    }

    #[test]
    fn old_pending_transactions_time_out() {
        let clock = Arc::new(FakeClock::default());
        let shared = Arc::new(Shared::new(clock.clone(), 100));
        lock(&shared.pending).insert([1; 32], 0);
        lock(&shared.pending).insert([2; 32], 20_000_000);
        let mut f = Follower::new(Arc::clone(&shared), Vec::new(), 1);
        clock.set_us(PENDING_TIMEOUT_MS * 1_000 + 1);
        assert_eq!(f.observe(&[]), 0);
        assert_eq!(lock(&shared.step).timed_out, 1);
        assert_eq!(lock(&shared.pending).len(), 1);
        // A block stamped in the future (clock skew) gives 0, not a wrap.
        assert_eq!(f.observe(&[block(1, u64::MAX, &[])]), 1);
        assert_eq!(lock(&shared.step).consensus_ms.percentile(50.0), Some(0));
        assert_eq!(parse_hash("zz"), None);
    }
}
