//! Sends the bench transactions: one sender per validator, each with at
//! most `--in-flight` requests outstanding and a bounded queue in front.
//!
//! With `--batch 1` each request carries one transaction
//! (`POST /api/v1/tx`). With `--batch N > 1` a sender that got a free slot
//! takes its next transaction and whatever is already queued behind it, up
//! to N, without waiting for more ([`take_queued`]), and sends them as one
//! `POST /api/v1/txs` holding one slot: batches grow only when the sender
//! is behind, so batching never delays a transaction to fill a batch. Each
//! transaction's send time is recorded as with single requests, and each
//! per-transaction outcome is handled like a single request's.
//!
//! A sender never waits for an answer before sending the next
//! transaction; it waits only for a free in-flight slot. When all slots
//! are taken the queue fills and the generator blocks: the delay then shows
//! up as send lag and, because latency counts from the intended send time,
//! as latency (no coordinated omission).
//!
//! Outcomes:
//! * 202: nothing to do; the commit follower takes it from there.
//! * refused (4xx/5xx with an error code): counted as rejected by code and
//!   dropped from the pending map.
//! * no answer (connection, timeout): counted as an error; it stays
//!   pending, since the node may have admitted it. For a batch, every
//!   transaction in it counts as one error.
//!
//! Repairs: a transaction that did not get in leaves a nonce gap, and every
//! later transaction of its account would wait behind it in the mempool
//! until it timed out. So such a transaction is re-sent, the same bytes to
//! the same validator, with backoff, until a node holds it (202,
//! `duplicate`, or `stale_nonce` once it is committed) or the run ends. At
//! most [`MAX_REPAIRS`] repairs run at once; each waits for an in-flight
//! slot like any request, and is a single-transaction request whatever
//! `--batch` says. Repairs are not new load: they are counted in the
//! run's repair counters, not as offered, and their commits give no
//! latency sample.

use super::stats::{count_code, lock, RunCounters, Shared};
use crate::api::MAX_SUBMIT_BATCH;
use crate::localnet::client::{ClientError, NodeClient, SubmitOutcome};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// Transactions queued in front of one validator's sender.
pub const QUEUE_PER_VALIDATOR: usize = 4_096;
/// Repairs running at once, all validators together.
pub const MAX_REPAIRS: usize = 8_192;
/// First and longest pause between two tries of a repair.
pub const REPAIR_FIRST_BACKOFF_MS: u64 = 20;
pub const REPAIR_MAX_BACKOFF_MS: u64 = 1_000;

/// One transaction for a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub hash: [u8; 32],
    pub hex: String,
    pub intended_us: u64,
}

/// Refusal codes after which re-sending is pointless: the node already
/// holds the transaction or its nonce is used.
fn settled(code: &str) -> bool {
    matches!(code, "duplicate" | "stale_nonce" | "duplicate_nonce")
}

/// Whether a refused transaction should be re-sent to fill its nonce gap:
/// not when the node already has it, nor when the transaction or request
/// itself is bad (`malformed`, `bad_signature`, 400/404/405/413/415):
/// re-sending the same bytes cannot help there.
pub fn needs_repair(status: u16, code: &str) -> bool {
    !settled(code)
        && !matches!(code, "malformed" | "bad_signature")
        && !matches!(status, 400 | 404 | 405 | 413 | 415)
}

/// `first`, then whatever is already queued in `rx` behind it (never
/// waiting for more), up to `max` jobs in all, in queue order.
fn take_queued(rx: &mut mpsc::Receiver<Job>, first: Job, max: usize) -> Vec<Job> {
    let mut jobs = Vec::with_capacity(max.clamp(1, MAX_SUBMIT_BATCH));
    jobs.push(first);
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break, // empty, or closed: send what we have
        }
    }
    jobs
}

/// The senders and what they share.
#[derive(Debug, Clone)]
pub struct Senders {
    queues: Vec<mpsc::Sender<Job>>,
}

impl Senders {
    /// Starts one sender per client. They stop when the [`Senders`] is
    /// dropped (queues close) and the queues are empty; repairs stop when
    /// `stop` fires.
    /// `batch` is `--batch` (clamped to `1..=MAX_SUBMIT_BATCH`).
    pub fn start(
        shared: Arc<Shared>,
        clients: &[NodeClient],
        in_flight: usize,
        batch: usize,
        stop: watch::Receiver<bool>,
    ) -> (Senders, Vec<tokio::task::JoinHandle<()>>) {
        let batch = batch.clamp(1, MAX_SUBMIT_BATCH);
        let repairs = Arc::new(Semaphore::new(MAX_REPAIRS));
        let mut queues = Vec::with_capacity(clients.len());
        let mut tasks = Vec::with_capacity(clients.len());
        for client in clients {
            let (tx, rx) = mpsc::channel(QUEUE_PER_VALIDATOR);
            queues.push(tx);
            let sender = Sender {
                shared: Arc::clone(&shared),
                client: client.clone(),
                slots: Arc::new(Semaphore::new(in_flight.max(1))),
                batch,
                repairs: Arc::clone(&repairs),
                stop: stop.clone(),
            };
            tasks.push(tokio::spawn(sender.run(rx)));
        }
        (Senders { queues }, tasks)
    }

    /// Queues `job` for validator `v`, waiting while its queue is full.
    /// `false` if the sender is gone.
    pub async fn send(&self, v: usize, job: Job) -> bool {
        match self.queues.get(v) {
            Some(q) => q.send(job).await.is_ok(),
            None => false,
        }
    }

    pub fn validators(&self) -> usize {
        self.queues.len()
    }
}

/// One validator's sender.
#[derive(Debug, Clone)]
struct Sender {
    shared: Arc<Shared>,
    client: NodeClient,
    /// In-flight slots to this validator.
    slots: Arc<Semaphore>,
    /// Most transactions per request (`--batch`, 1..=MAX_SUBMIT_BATCH).
    batch: usize,
    /// Repair slots, shared by every sender.
    repairs: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await else {
                return;
            };
            let me = self.clone();
            if self.batch <= 1 {
                let now = self.shared.clock.now_us();
                lock(&self.shared.step).record_send(job.intended_us, now);
                self.shared.run.request(1);
                tokio::spawn(async move { me.submit(job, permit).await });
            } else {
                // Taken after the slot: what queued up while we waited for
                // it goes in this request.
                let jobs = take_queued(&mut rx, job, self.batch);
                self.shared.run.request(jobs.len());
                let now = self.shared.clock.now_us();
                {
                    let mut step = lock(&self.shared.step);
                    for job in &jobs {
                        step.record_send(job.intended_us, now);
                    }
                }
                tokio::spawn(async move { me.submit_batch(jobs, permit).await });
            }
        }
    }

    /// The first try of `job`, holding an in-flight slot.
    async fn submit(self, job: Job, permit: OwnedSemaphorePermit) {
        let outcome = self.client.submit(job.hex.clone()).await;
        drop(permit);
        self.settle(job, outcome);
    }

    /// The first try of `jobs` as one batch request, holding one in-flight
    /// slot. Each transaction's outcome is settled as a single one's; a
    /// request that got no answer is an error for every transaction in it.
    async fn submit_batch(self, jobs: Vec<Job>, permit: OwnedSemaphorePermit) {
        let hexes = jobs.iter().map(|j| j.hex.clone()).collect();
        let outcome = self.client.submit_batch(hexes).await;
        drop(permit);
        match outcome {
            // `submit_batch` answers one outcome per transaction or fails.
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    self.settle(job, Ok(outcome));
                }
            }
            Err(e) => {
                for job in jobs {
                    self.settle(job, Err(e.clone()));
                }
            }
        }
    }

    /// Counts what happened to the first try of `job` and starts its repair
    /// if it needs one.
    fn settle(&self, job: Job, outcome: Result<SubmitOutcome, ClientError>) {
        match outcome {
            Ok(SubmitOutcome::Accepted { .. }) => lock(&self.shared.step).accepted += 1,
            Ok(SubmitOutcome::Refused { status, code, .. }) => {
                lock(&self.shared.pending).remove(&job.hash);
                count_code(&mut lock(&self.shared.step).rejected, &code);
                if needs_repair(status, &code) {
                    self.start_repair(job);
                }
            }
            Err(e) => {
                let kind = match e {
                    ClientError::Decode { .. } => "bad_response",
                    _ => "transport",
                };
                count_code(&mut lock(&self.shared.step).errors, kind);
                self.start_repair(job);
            }
        }
    }

    fn start_repair(&self, job: Job) {
        let run = &self.shared.run;
        let Ok(slot) = Arc::clone(&self.repairs).try_acquire_owned() else {
            RunCounters::add(&run.repairs_dropped);
            return;
        };
        RunCounters::add(&run.repairs_started);
        let me = self.clone();
        tokio::spawn(async move {
            me.repair(job).await;
            drop(slot);
        });
    }

    /// Re-sends `job` until a node holds it or the run stops.
    async fn repair(mut self, job: Job) {
        let mut backoff = REPAIR_FIRST_BACKOFF_MS;
        loop {
            let stopped = tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(backoff)) => false,
                _ = self.stop.changed() => true,
            };
            if stopped || *self.stop.borrow() {
                RunCounters::add(&self.shared.run.repairs_abandoned);
                return;
            }
            let outcome = {
                let Ok(_permit) = Arc::clone(&self.slots).acquire_owned().await else {
                    return;
                };
                self.client.submit(job.hex.clone()).await
            };
            let held = match outcome {
                Ok(SubmitOutcome::Accepted { .. }) => true,
                Ok(SubmitOutcome::Refused { status, code, .. }) => {
                    settled(&code) || !needs_repair(status, &code)
                }
                Err(_) => false,
            };
            if held {
                RunCounters::add(&self.shared.run.repairs_done);
                return;
            }
            backoff = (backoff * 2).min(REPAIR_MAX_BACKOFF_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(i: u8) -> Job {
        Job {
            hash: [i; 32],
            hex: format!("{i:02x}"),
            intended_us: u64::from(i),
        }
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_the_max_without_waiting() {
        let (tx, mut rx) = mpsc::channel(16);
        for i in 1..=10 {
            tx.send(job(i)).await.unwrap();
        }
        let first = rx.recv().await.unwrap();
        // 9 queued behind the first: a batch of 8 takes 7 of them, in order.
        let batch = take_queued(&mut rx, first, 8);
        assert_eq!(batch, (1..=8).map(job).collect::<Vec<_>>());
        // Two left: the next batch is those two, without waiting for a
        // third (the queue is still open; a wait would hang this test).
        let first = rx.recv().await.unwrap();
        let batch = take_queued(&mut rx, first, 8);
        assert_eq!(batch, vec![job(9), job(10)]);
        // Nothing queued: a batch of one.
        tx.send(job(11)).await.unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!(take_queued(&mut rx, first, 8), vec![job(11)]);
        // --batch 1 never takes more than the first.
        for i in 12..=14 {
            tx.send(job(i)).await.unwrap();
        }
        let first = rx.recv().await.unwrap();
        assert_eq!(take_queued(&mut rx, first, 1), vec![job(12)]);
        drop(tx);
        // A closed queue still yields what it held.
        let first = rx.recv().await.unwrap();
        assert_eq!(take_queued(&mut rx, first, 8), vec![job(13), job(14)]);
    }

    #[test]
    fn which_refusals_are_repaired() {
        assert!(needs_repair(429, "rate_limited"));
        assert!(needs_repair(503, "overloaded"));
        assert!(needs_repair(503, "mempool_full"));
        assert!(needs_repair(422, "nonce_too_far_ahead"));
        assert!(needs_repair(422, "account_limit"));
        assert!(!needs_repair(422, "duplicate"));
        assert!(!needs_repair(422, "stale_nonce"));
        assert!(!needs_repair(422, "duplicate_nonce"));
        assert!(!needs_repair(400, "bad_request"));
        assert!(!needs_repair(422, "bad_signature"));
        assert!(!needs_repair(422, "malformed"));
        assert!(!needs_repair(413, "payload_too_large"));
    }
}
