//! Execution results of the players' game transactions.
//!
//! A block lists transaction hashes, not what execution made of them, and a
//! committed bet may have been rejected (`betting_closed`, `no_flat_bet`,
//! ...). For every committed game transaction the [`Watcher`] queues a
//! [`ReceiptCheck`]; the [`ReceiptChecker`] reads `GET /api/v1/tx/{hash}`
//! (batched, spread over the validators) and counts bets placed,
//! withdrawals done and rejections by code. A bet refused with
//! `betting_closed` goes back to its player to be sent again when betting
//! reopens.
//!
//! Bounded: the queue holds at most [`MAX_RECEIPT_QUEUE`] checks and each
//! is tried at most [`MAX_RECEIPT_ATTEMPTS`] times; what does not fit or
//! never answers is counted as unchecked rather than waited for.
//!
//! [`Watcher`]: super::players::Watcher

use super::cluster::join_all;
use super::players::{Counters, LoadCtx, TxKind};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Most checks waiting at once (a few minutes of game transactions at
/// hundreds per second).
pub const MAX_RECEIPT_QUEUE: usize = 100_000;
/// Results read concurrently from one validator per round.
pub const RECEIPT_BATCH: usize = 32;
/// Reads of one transaction's result before it is counted unchecked. A
/// validator a block behind answers 404 for a moment; 50 tries over several
/// validators cover any healthy lag.
pub const MAX_RECEIPT_ATTEMPTS: u32 = 50;
/// Pause when there is nothing to check (or only retries).
const RECEIPT_IDLE_MS: u64 = 100;

/// One committed game transaction whose result is still to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptCheck {
    pub hash: String,
    pub player: usize,
    pub kind: TxKind,
    pub attempts: u32,
}

/// The bounded FIFO of checks.
#[derive(Debug, Default)]
pub struct ReceiptQueue {
    queue: Mutex<VecDeque<ReceiptCheck>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReceiptQueue {
    /// Queues a check; `false` (dropped) when the queue is full.
    pub fn push(&self, check: ReceiptCheck) -> bool {
        let mut q = lock(&self.queue);
        if q.len() >= MAX_RECEIPT_QUEUE {
            return false;
        }
        q.push_back(check);
        true
    }

    /// Up to `n` checks from the front.
    fn take(&self, n: usize) -> Vec<ReceiptCheck> {
        let mut q = lock(&self.queue);
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.queue).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the queued results and counts them into the [`LoadCtx`].
#[derive(Debug)]
pub struct ReceiptChecker {
    ctx: Arc<LoadCtx>,
    /// Index of the validator asked next.
    node: usize,
}

impl ReceiptChecker {
    pub fn new(ctx: Arc<LoadCtx>) -> ReceiptChecker {
        ReceiptChecker { ctx, node: 0 }
    }

    /// Reads one batch from the next validator. Returns how many results
    /// were settled (counted or given up); 0 when there was nothing to do
    /// or every read has to be retried.
    pub async fn check_batch(&mut self) -> usize {
        let batch = self.ctx.receipts.take(RECEIPT_BATCH);
        if batch.is_empty() {
            return 0;
        }
        let clients = self.ctx.clients();
        let Some(client) = clients.get(self.node % clients.len().max(1)).cloned() else {
            return 0;
        };
        self.node = (self.node + 1) % clients.len().max(1);
        let answers = join_all(batch.iter().map(|c| client.tx(&c.hash))).await;
        let mut settled = 0;
        for (mut check, answer) in batch.into_iter().zip(answers) {
            match answer {
                Ok(Some(view)) if view.status == "committed" => {
                    self.count(&check, view.result.as_deref().unwrap_or("ok"));
                    settled += 1;
                }
                // Not executed on this validator yet, or it did not answer:
                // try again (another validator, next round).
                _ => {
                    check.attempts += 1;
                    if check.attempts >= MAX_RECEIPT_ATTEMPTS || !self.ctx.receipts.push(check) {
                        Counters::add(&self.ctx.counters.game_unchecked, 1);
                        settled += 1;
                    }
                }
            }
        }
        settled
    }

    fn count(&self, check: &ReceiptCheck, result: &str) {
        let c = &self.ctx.counters;
        Counters::add(&c.game_checked, 1);
        if result == "ok" {
            match check.kind {
                TxKind::Bet { .. } => Counters::add(&c.bets_placed, 1),
                TxKind::Withdraw => Counters::add(&c.withdraws_done, 1),
                TxKind::Remove | TxKind::Transfer => {}
            }
            return;
        }
        self.ctx.note_exec_rejection(result);
        if let (TxKind::Bet { kind, amount }, "betting_closed") = (check.kind, result) {
            self.ctx.set_retry(check.player, (kind, amount));
        }
    }

    /// Checks until `stop` fires, then returns itself so the caller can
    /// [`ReceiptChecker::drain`] what is left.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> ReceiptChecker {
        loop {
            if *stop.borrow() {
                return self;
            }
            let settled = tokio::select! {
                n = self.check_batch() => n,
                _ = stop.changed() => return self,
            };
            if settled == 0 {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(RECEIPT_IDLE_MS)) => {}
                    _ = stop.changed() => return self,
                }
            }
        }
    }

    /// Checks until the queue is empty or `timeout_ms` passes. Returns
    /// whether it emptied.
    pub async fn drain(&mut self, timeout_ms: u64) -> bool {
        let work = async {
            while !self.ctx.receipts.is_empty() {
                if self.check_batch().await == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(RECEIPT_IDLE_MS)).await;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), work)
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::craps::BetKind;

    fn check(i: usize) -> ReceiptCheck {
        ReceiptCheck {
            hash: format!("h{i}"),
            player: i,
            kind: TxKind::Withdraw,
            attempts: 0,
        }
    }

    #[test]
    fn queue_is_fifo_and_bounded() {
        let q = ReceiptQueue::default();
        for i in 0..5 {
            assert!(q.push(check(i)));
        }
        let first = q.take(2);
        assert_eq!(first, vec![check(0), check(1)]);
        assert_eq!(q.len(), 3);
        assert_eq!(q.take(10).len(), 3);
        assert!(q.is_empty());
        for i in 0..MAX_RECEIPT_QUEUE {
            assert!(q.push(check(i)));
        }
        assert!(!q.push(check(0)));
    }

    #[test]
    fn results_are_counted_and_betting_closed_bets_come_back() {
        let ctx = Arc::new(LoadCtx::new(
            super::super::RunClock::new(Arc::new(crate::engine::SystemClock::new())),
            "c".into(),
            vec![bitcraps_crypto::Keypair::from_seed(&[1; 32])],
            Vec::new(),
            bitcraps_crypto::Keypair::from_seed(&[2; 32]).public(),
        ));
        let checker = ReceiptChecker::new(Arc::clone(&ctx));
        let bet = TxKind::Bet {
            kind: BetKind::Field,
            amount: 5,
        };
        let c = |kind| ReceiptCheck {
            hash: "x".into(),
            player: 0,
            kind,
            attempts: 0,
        };
        checker.count(&c(bet), "ok");
        checker.count(&c(TxKind::Withdraw), "ok");
        checker.count(&c(TxKind::Withdraw), "nothing_to_withdraw");
        checker.count(&c(bet), "betting_closed");
        let k = &ctx.counters;
        assert_eq!(Counters::get(&k.bets_placed), 1);
        assert_eq!(Counters::get(&k.withdraws_done), 1);
        assert_eq!(Counters::get(&k.exec_rejected), 2);
        assert_eq!(Counters::get(&k.game_checked), 4);
        let codes = lock(&ctx.exec_rejections).clone();
        assert_eq!(codes.get("betting_closed"), Some(&1));
        assert_eq!(codes.get("nothing_to_withdraw"), Some(&1));
        assert_eq!(ctx.take_retry(0), Some((BetKind::Field, 5)));
        assert_eq!(ctx.take_retry(0), None);
    }
}
