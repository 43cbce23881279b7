//! Sends the bench transactions: one sender per validator, each with at
//! most `--in-flight` requests outstanding and a bounded queue in front.
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
//!   pending, since the node may have admitted it.
//!
//! Repairs: a transaction that did not get in leaves a nonce gap, and every
//! later transaction of its account would wait behind it in the mempool
//! until it timed out. So such a transaction is re-sent, the same bytes to
//! the same validator, with backoff, until a node holds it (202,
//! `duplicate`, or `stale_nonce` once it is committed) or the run ends. At
//! most [`MAX_REPAIRS`] repairs run at once; each waits for an in-flight
//! slot like any request. Repairs are not new load: they are counted in the
//! run's repair counters, not as offered, and their commits give no
//! latency sample.

use super::stats::{count_code, lock, RunCounters, Shared};
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

/// The senders and what they share.
#[derive(Debug, Clone)]
pub struct Senders {
    queues: Vec<mpsc::Sender<Job>>,
}

impl Senders {
    /// Starts one sender per client. They stop when the [`Senders`] is
    /// dropped (queues close) and the queues are empty; repairs stop when
    /// `stop` fires.
    pub fn start(
        shared: Arc<Shared>,
        clients: &[NodeClient],
        in_flight: usize,
        stop: watch::Receiver<bool>,
    ) -> (Senders, Vec<tokio::task::JoinHandle<()>>) {
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
            let now = self.shared.clock.now_us();
            lock(&self.shared.step).record_send(job.intended_us, now);
            let me = self.clone();
            tokio::spawn(async move { me.submit(job, permit).await });
        }
    }

    /// The first try of `job`, holding an in-flight slot.
    async fn submit(self, job: Job, permit: OwnedSemaphorePermit) {
        let outcome = self.client.submit(job.hex.clone()).await;
        drop(permit);
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
