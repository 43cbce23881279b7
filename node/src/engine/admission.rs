//! Transaction admission: decode, verify signatures in batches, then hand the
//! verified transaction to the engine task, which checks its nonce against the
//! committed state and puts it in the mempool.
//!
//! Signature checks run on one dedicated verifier thread, not on the async
//! workers: they are pure CPU (~30 µs each), and batching whatever has queued
//! up (up to [`MAX_VERIFY_BATCH`]) amortises the per-call cost without adding
//! latency when the node is idle (a batch of one goes straight through).
//! Every verified hash enters the engine's verdict cache, so executing the
//! block that carries the transaction does not verify it again.

use crate::app::mempool::AdmitError;
use crate::app::tx::{tx_hash, SignedTx, TxError};
use crate::app::verify::verify_txs;
use bitcraps_crypto::batch::MAX_BATCH;
use bitcraps_crypto::Hash32;
use tokio::sync::{mpsc, oneshot};

/// Most transactions verified in one batch.
pub const MAX_VERIFY_BATCH: usize = MAX_BATCH;
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
    pub reply: Reply,
}

/// The submitting side, held by the engine handle.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    verify: mpsc::Sender<Pending>,
}

impl Admission {
    /// Starts the verifier thread. Verified transactions come out of the
    /// returned receiver, in submission order within each batch.
    pub(crate) fn start(chain_id: String) -> std::io::Result<(Admission, mpsc::Receiver<Pending>)> {
        let (verify_tx, verify_rx) = mpsc::channel(VERIFY_QUEUE);
        let (admit_tx, admit_rx) = mpsc::channel(ADMIT_QUEUE);
        std::thread::Builder::new()
            .name("tx-verifier".into())
            .spawn(move || verifier(&chain_id, verify_rx, &admit_tx))?;
        Ok((Admission { verify: verify_tx }, admit_rx))
    }

    /// Decodes `encoded` and queues it for verification; resolves once the
    /// engine admitted or refused it.
    pub(crate) async fn submit(&self, encoded: Vec<u8>) -> Result<Hash32, SubmitError> {
        let tx = SignedTx::decode(&encoded)
            .map_err(|e: TxError| SubmitError::Malformed(e.to_string()))?;
        let hash = tx_hash(&encoded);
        let (reply, done) = oneshot::channel();
        self.verify
            .try_send(Pending {
                tx,
                encoded,
                hash,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy("verification"),
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            })?;
        done.await.map_err(|_| SubmitError::Stopped)?
    }
}

/// The verifier thread: runs until every [`Admission`] handle is dropped.
fn verifier(chain_id: &str, mut rx: mpsc::Receiver<Pending>, admit: &mpsc::Sender<Pending>) {
    let mut batch = Vec::with_capacity(MAX_VERIFY_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_VERIFY_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let txs: Vec<&SignedTx> = batch.iter().map(|p| &p.tx).collect();
        let valid = verify_txs(chain_id, &txs);
        for (pending, ok) in batch.drain(..).zip(valid) {
            if !ok {
                let _ = pending.reply.send(Err(SubmitError::BadSignature {
                    chain_id: chain_id.to_owned(),
                }));
                continue;
            }
            if let Err(e) = admit.try_send(pending) {
                let (pending, err) = match e {
                    mpsc::error::TrySendError::Full(p) => (p, SubmitError::Busy("admission")),
                    mpsc::error::TrySendError::Closed(p) => (p, SubmitError::Stopped),
                };
                // The submitter may have gone away; nothing to do then.
                let _ = pending.reply.send(Err(err));
            }
        }
    }
}

impl From<AdmitError> for SubmitError {
    fn from(e: AdmitError) -> Self {
        SubmitError::Rejected(e)
    }
}
