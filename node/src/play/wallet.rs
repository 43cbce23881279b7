//! Submit-and-wait for one player key against one node: the chain id from
//! `/status`, the nonce from the account's `pending_nonce`, sign, `POST
//! /api/v1/tx`, then poll `GET /api/v1/tx/{hash}` until the transaction is
//! committed or the wait runs out.
//!
//! Every loop here is bounded: submissions retry a fixed number of times
//! (through "not now" answers and nonce races with another client using the
//! same key), waits are capped in milliseconds, and game actions retry a
//! fixed number of times after `betting_closed`.
//!
//! A committed transaction may still have been rejected by execution (its
//! nonce is used, nothing else happened): that is a [`TxOutcome`] whose
//! `result` is the rejection code, not an error. Errors are for "we could not
//! find out" (node unreachable, refused at the door, timed out).

use super::explain::explain;
use crate::app::tx::{Action, Transaction};
use crate::localnet::client::{ClientError, NodeClient, SubmitOutcome};
use bitcraps_crypto::{Keypair, PublicKey};

/// How long [`Wallet::wait`] polls for a commit by default. A healthy chain
/// commits in well under a second; 30 s covers a view change or two.
pub const DEFAULT_WAIT_MS: u64 = 30_000;
/// Pause between polls of a transaction's status or of the roll clock.
pub const POLL_MS: u64 = 100;
/// Submissions of one transaction through 429/503 answers and nonce races.
pub const SUBMIT_ATTEMPTS: u32 = 20;
/// Pause between submission attempts.
const SUBMIT_RETRY_MS: u64 = 200;
/// How often a game action is sent again after `betting_closed` (each retry
/// first waits for betting to reopen). Betting is closed for a few hundred
/// ms per roll, so more than two or three retries means something is off.
pub const BETTING_CLOSED_RETRIES: u32 = 10;

/// Admission codes that mean "your nonce lost a race": fetch a fresh nonce
/// and submit again.
const NONCE_RACE_CODES: [&str; 3] = ["stale_nonce", "duplicate_nonce", "nonce_too_far_ahead"];

/// Why a wallet operation could not finish.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("cannot reach the node at {url}: {reason}; is it running? (pass its HTTP address with --node)")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Node(ClientError),
    #[error("the node refused the transaction: {code}: {words}")]
    Refused {
        code: String,
        /// The node's own message.
        message: String,
        words: String,
    },
    #[error(
        "transaction {hash} was not committed within {waited_ms} ms ({last}); it may still \
         commit: check GET /api/v1/tx/{hash}"
    )]
    Timeout {
        hash: String,
        waited_ms: u64,
        last: String,
    },
}

impl From<ClientError> for PlayError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Transport { url, reason } => PlayError::Unreachable { url, reason },
            other => PlayError::Node(other),
        }
    }
}

/// A committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// Hex transaction hash.
    pub hash: String,
    /// Height of the block that committed it.
    pub height: u64,
    /// `ok`, or the rejection code.
    pub result: String,
    /// Times the action was sent (more than 1 after `betting_closed` retries).
    pub attempts: u32,
    /// The correlation id the node filed the (last) submission under.
    pub correlation_id: String,
}

impl TxOutcome {
    pub fn is_ok(&self) -> bool {
        self.result == "ok"
    }

    /// The result in plain words.
    pub fn words(&self) -> String {
        explain(&self.result)
    }
}

/// One player key talking to one node.
#[derive(Debug)]
pub struct Wallet {
    client: NodeClient,
    key: Keypair,
    chain_id: String,
    wait_ms: u64,
}

impl Wallet {
    /// Asks the node for its chain id. `wait_ms` bounds every later wait for
    /// a commit (and for betting to reopen).
    pub async fn connect(
        client: NodeClient,
        key: Keypair,
        wait_ms: u64,
    ) -> Result<Wallet, PlayError> {
        let status = client.status().await?;
        Ok(Wallet {
            client,
            key,
            chain_id: status.chain_id,
            wait_ms: wait_ms.max(POLL_MS),
        })
    }

    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    pub fn client(&self) -> &NodeClient {
        &self.client
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Signs `action` with the account's next nonce and submits it. Returns
    /// the transaction hash and its correlation id once the node admitted it.
    pub async fn submit(&self, action: Action) -> Result<(String, String), PlayError> {
        let me = self.key.public().to_hex();
        let mut last = String::new();
        for attempt in 0..SUBMIT_ATTEMPTS {
            if attempt > 0 {
                sleep_ms(SUBMIT_RETRY_MS).await;
            }
            let nonce = self.client.account(&me).await?.pending_nonce;
            let signed = Transaction {
                from: self.key.public(),
                nonce,
                action,
            }
            .sign(&self.chain_id, &self.key);
            match self.client.submit(hex::encode(signed.encode())).await? {
                SubmitOutcome::Accepted {
                    hash,
                    correlation_id,
                } => return Ok((hash, correlation_id)),
                SubmitOutcome::Refused {
                    status,
                    code,
                    message,
                } => {
                    let retry = status == 429
                        || status == 503
                        || (status == 422 && NONCE_RACE_CODES.contains(&code.as_str()));
                    if !retry {
                        let words = explain(&code);
                        return Err(PlayError::Refused {
                            code,
                            message,
                            words,
                        });
                    }
                    last = format!("HTTP {status} {code}: {message}");
                }
            }
        }
        Err(PlayError::Refused {
            code: "gave_up".into(),
            words: format!("the node kept refusing the transaction ({SUBMIT_ATTEMPTS} attempts)"),
            message: last,
        })
    }

    /// Polls the transaction until it is committed, at most the wallet's
    /// wait.
    pub async fn wait(&self, hash: &str, correlation_id: &str) -> Result<TxOutcome, PlayError> {
        let polls = self.wait_ms.div_ceil(POLL_MS);
        let mut last = String::from("no answer yet");
        for _ in 0..polls {
            match self.client.tx(hash).await {
                Ok(Some(view)) if view.status == "committed" => {
                    return Ok(TxOutcome {
                        hash: hash.to_string(),
                        height: view.height.unwrap_or(0),
                        result: view.result.unwrap_or_else(|| "ok".into()),
                        attempts: 1,
                        correlation_id: correlation_id.to_string(),
                    });
                }
                Ok(Some(view)) => last = format!("{} on the node", view.status),
                // Neither pending here nor committed: the node dropped it
                // (restart) or has not executed its block yet. Keep asking;
                // the timeout message says what we last saw.
                Ok(None) => last = "unknown to the node".into(),
                Err(e) => last = e.to_string(),
            }
            sleep_ms(POLL_MS).await;
        }
        Err(PlayError::Timeout {
            hash: hash.to_string(),
            waited_ms: self.wait_ms,
            last,
        })
    }

    /// [`Wallet::submit`] then [`Wallet::wait`].
    pub async fn send(&self, action: Action) -> Result<TxOutcome, PlayError> {
        let (hash, correlation_id) = self.submit(action).await?;
        self.wait(&hash, &correlation_id).await
    }

    /// For bets and removals: waits (bounded) until betting is open, sends,
    /// and sends again after a `betting_closed` rejection, at most
    /// [`BETTING_CLOSED_RETRIES`] times. Each try uses a fresh nonce (a
    /// rejected transaction still used its own).
    pub async fn send_game(&self, action: Action) -> Result<TxOutcome, PlayError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.wait_betting_open().await?;
            let mut outcome = self.send(action).await?;
            outcome.attempts = attempts;
            if outcome.result != "betting_closed" || attempts > BETTING_CLOSED_RETRIES {
                return Ok(outcome);
            }
        }
    }

    /// Polls `/api/v1/game` until betting is open, at most the wallet's wait.
    /// Returns whether it is open (a closed clock at the end is not an error:
    /// the chain has the last word).
    pub async fn wait_betting_open(&self) -> Result<bool, PlayError> {
        let polls = self.wait_ms.div_ceil(POLL_MS);
        for _ in 0..polls {
            if self.client.game().await?.betting_open {
                return Ok(true);
            }
            sleep_ms(POLL_MS).await;
        }
        Ok(false)
    }
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
