//! Transaction admission: decode, verify signatures in batches, then hand the
//! verified transaction to the engine task, which checks its nonce against the
//! committed state and puts it in the mempool.
//!
//! Signature checks run on one dedicated verifier thread, not on the async
//! workers: they are pure CPU (~30 µs each), and batching whatever has queued
//! up (up to [`MAX_VERIFY_BATCH`]) amortises the per-call cost without adding
//! latency when the node is idle (a batch of one goes straight through).
//!
//! Under load, "whatever has queued up" is not much: at 6,000 tx/s most
//! signatures were verified in batches of 2 to 31, where a signature costs
//! close to twice what it costs in a batch of 64 or more. So a verifier whose
//! last batch held at least [`BUSY_BATCH`] signatures, finding fewer than
//! [`FILL_BATCH`] queued, waits [`FILL_WAIT_US`] for more first: a bounded
//! delay only while busy, for fewer CPU cycles per transaction on a machine
//! where verification is the largest single cost.
//!
//! Every verified hash enters the engine's verdict cache, so executing the
//! block that carries the transaction does not verify it again.

use crate::app::mempool::AdmitError;
use crate::app::tx::{tx_hash, SignedTx, TxError};
use crate::app::verify::verify_txs;
use crate::trace::tracker::{CorrelationTracker, Origin, Stage};
use crate::trace::unix_now_us;
use bitcraps_crypto::batch::MAX_BATCH;
use bitcraps_crypto::Hash32;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most transactions verified in one batch.
pub const MAX_VERIFY_BATCH: usize = MAX_BATCH;
/// A verifier whose last batch held at least this many signatures is busy...
pub const BUSY_BATCH: usize = 16;
/// ...and, finding fewer than this many queued...
pub const FILL_BATCH: usize = 64;
/// ...waits this long (µs) for the batch to fill before verifying it.
pub const FILL_WAIT_US: u64 = 2_000;

// The wait stays far under a view, and a filled batch fits one call.
const _: () = assert!(FILL_WAIT_US <= 5_000);
const _: () = assert!(BUSY_BATCH < FILL_BATCH && FILL_BATCH <= MAX_VERIFY_BATCH);

/// Whether a verifier whose last batch held `last_batch` signatures waits
/// [`FILL_WAIT_US`] before taking the `queued` that are waiting.
pub(crate) fn wait_to_fill(last_batch: usize, queued: usize) -> bool {
    last_batch >= BUSY_BATCH && queued < FILL_BATCH
}

/// Transactions waiting for signature verification.
pub const VERIFY_QUEUE: usize = 8_192;
/// Verified transactions waiting for the engine task.
pub const ADMIT_QUEUE: usize = 8_192;

/// Why a submitted transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("malformed transaction: {0}")]
    Malformed(String),
    #[error("the signature does not verify (for this chain id: {chain_id})")]
    BadSignature { chain_id: String },
    #[error(transparent)]
    Rejected(AdmitError),
    #[error("the node is overloaded ({0} queue is full); retry later")]
    Busy(&'static str),
    #[error("the node is stopping")]
    Stopped,
}

impl SubmitError {
    /// Stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::Malformed(_) => "malformed",
            SubmitError::BadSignature { .. } => "bad_signature",
            SubmitError::Rejected(e) => e.code(),
            SubmitError::Busy(_) => "busy",
            SubmitError::Stopped => "stopped",
        }
    }
}

type Reply = oneshot::Sender<Result<Hash32, SubmitError>>;

/// A transaction on its way to the mempool.
#[derive(Debug)]
pub(crate) struct Pending {
    pub tx: SignedTx,
    pub encoded: Vec<u8>,
    pub hash: Hash32,
    /// The submitter waiting for the verdict (none for gossip).
    pub reply: Option<Reply>,
    /// The correlation tracker follows this transaction.
    pub traced: bool,
    /// Came from a peer's gossip (not gossiped again).
    pub gossiped: bool,
}

/// Where a submission comes from, for the correlation tracker and the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitTrace {
    pub correlation_id: uuid::Uuid,
    /// The request span to hang this transaction's spans on.
    pub origin: Origin,
    /// When the request arrived (µs since the Unix epoch).
    pub received_unix_us: u64,
}

/// The submitting side, held by the engine handle.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    verify: mpsc::Sender<Pending>,
    tracker: Arc<CorrelationTracker>,
}

impl Admission {
    /// Starts the verifier thread. Verified transactions come out of the
    /// returned receiver, in submission order within each batch.
    pub(crate) fn start(
        chain_id: String,
        tracker: Arc<CorrelationTracker>,
    ) -> std::io::Result<(Admission, mpsc::Receiver<Pending>)> {
        let (verify_tx, verify_rx) = mpsc::channel(VERIFY_QUEUE);
        let (admit_tx, admit_rx) = mpsc::channel(ADMIT_QUEUE);
        let verifier_tracker = Arc::clone(&tracker);
        std::thread::Builder::new()
            .name("tx-verifier".into())
            .spawn(move || verifier(&chain_id, verify_rx, &admit_tx, &verifier_tracker))?;
        Ok((
            Admission {
                verify: verify_tx,
                tracker,
            },
            admit_rx,
        ))
    }

    /// Decodes `encoded` and queues it for verification; resolves once the
    /// engine admitted or refused it.
    /// With `trace`, the correlation tracker follows the transaction from
    /// here on (received, admitted, verified, mempool, and on every validator
    /// through execution).
    pub(crate) async fn submit(
        &self,
        encoded: Vec<u8>,
        trace: Option<SubmitTrace>,
    ) -> Result<Hash32, SubmitError> {
        let tx = SignedTx::decode(&encoded)
            .map_err(|e: TxError| SubmitError::Malformed(e.to_string()))?;
        let hash = tx_hash(&encoded);
        if let Some(t) = &trace {
            self.tracker.begin(
                t.correlation_id,
                hash,
                t.origin,
                Stage::Received,
                t.received_unix_us,
            );
            self.tracker.record(&hash, Stage::Admitted, unix_now_us());
        }
        let (reply, done) = oneshot::channel();
        let sent = self.verify.try_send(Pending {
            tx,
            encoded,
            hash,
            reply: Some(reply),
            traced: trace.is_some(),
            gossiped: false,
        });
        if let Err(e) = sent {
            let err = match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy("verification"),
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            };
            if trace.is_some() {
                self.tracker.set_outcome(&hash, err.code());
            }
            return Err(err);
        }
        done.await.map_err(|_| SubmitError::Stopped)?
    }
}

impl Admission {
    /// Queues a transaction a peer gossiped for verification; once verified
    /// the engine puts it in the mempool. Nobody waits for the verdict: a
    /// malformed one is refused here, and a bad signature or nonce is simply
    /// dropped. Never waits: a full queue drops it (the transaction still
    /// reaches a block through the validator that gossiped it).
    pub(crate) fn submit_gossip(&self, encoded: Vec<u8>, hash: Hash32) -> Result<(), SubmitError> {
        let tx = SignedTx::decode(&encoded)
            .map_err(|e: TxError| SubmitError::Malformed(e.to_string()))?;
        self.verify
            .try_send(Pending {
                tx,
                encoded,
                hash,
                reply: None,
                traced: false,
                gossiped: true,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy("verification"),
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            })
    }
}

/// The verifier thread: runs until every [`Admission`] handle is dropped.
fn verifier(
    chain_id: &str,
    mut rx: mpsc::Receiver<Pending>,
    admit: &mpsc::Sender<Pending>,
    tracker: &CorrelationTracker,
) {
    let mut batch = Vec::with_capacity(MAX_VERIFY_BATCH);
    let mut last_batch = 0;
    while let Some(first) = rx.blocking_recv() {
        if wait_to_fill(last_batch, rx.len() + 1) {
            std::thread::sleep(std::time::Duration::from_micros(FILL_WAIT_US));
        }
        batch.push(first);
        while batch.len() < MAX_VERIFY_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        last_batch = batch.len();
        let txs: Vec<&SignedTx> = batch.iter().map(|p| &p.tx).collect();
        let valid = verify_txs(chain_id, &txs);
        let verified_at = unix_now_us();
        for (pending, ok) in batch.drain(..).zip(valid) {
            if pending.traced {
                if ok {
                    tracker.record(&pending.hash, Stage::Verified, verified_at);
                } else {
                    tracker.set_outcome(&pending.hash, "bad_signature");
                }
            }
            if !ok {
                if let Some(reply) = pending.reply {
                    let _ = reply.send(Err(SubmitError::BadSignature {
                        chain_id: chain_id.to_owned(),
                    }));
                }
                continue;
            }
            if let Err(e) = admit.try_send(pending) {
                let (pending, err) = match e {
                    mpsc::error::TrySendError::Full(p) => (p, SubmitError::Busy("admission")),
                    mpsc::error::TrySendError::Closed(p) => (p, SubmitError::Stopped),
                };
                if pending.traced {
                    tracker.set_outcome(&pending.hash, err.code());
                }
                // The submitter may have gone away; nothing to do then.
                if let Some(reply) = pending.reply {
                    let _ = reply.send(Err(err));
                }
            }
        }
    }
}

impl From<AdmitError> for SubmitError {
    fn from(e: AdmitError) -> Self {
        SubmitError::Rejected(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_busy_verifier_waits_and_only_for_a_short_batch() {
        // Idle (the last batch was small): straight through, however little is queued.
        assert!(!wait_to_fill(0, 1));
        assert!(!wait_to_fill(BUSY_BATCH - 1, 1));
        // Busy with a short queue: wait for it to fill.
        assert!(wait_to_fill(BUSY_BATCH, 1));
        assert!(wait_to_fill(MAX_VERIFY_BATCH, FILL_BATCH - 1));
        // Busy with a full batch already queued: no reason to wait.
        assert!(!wait_to_fill(BUSY_BATCH, FILL_BATCH));
        assert!(!wait_to_fill(MAX_VERIFY_BATCH, MAX_VERIFY_BATCH));
    }
}
