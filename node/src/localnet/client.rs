//! A small typed HTTP client for one node's API, used by the localnet
//! players, the commit watcher and [`super::cluster::Cluster`].
//!
//! Every call has a timeout (set on the shared `reqwest::Client`), so a hung
//! node can slow the localnet down but never wedge it.

use crate::api::{
    AccountView, BlockView, ErrorBody, GameView, StatusView, SubmitTx, SubmitTxResponse, SubmitTxs,
    SubmitTxsItem, SubmitTxsResponse, SupplyView, TableDetailView, TableRoll, TableView,
    TxStatusView,
};
use reqwest::StatusCode;

/// Timeout of one HTTP request to a node. Loopback answers take
/// milliseconds; a second means the node is overloaded or stuck.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Timeout for establishing the TCP connection.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Most blocks the API returns per `GET /api/v1/blocks` page.
pub const MAX_BLOCKS_PER_PAGE: usize = 100;

/// Why an HTTP call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Could not connect, timed out, or the connection broke.
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    /// The node answered with an error status.
    #[error("{url}: HTTP {status} {code}: {message}")]
    Status {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The node answered 2xx with a body we could not parse.
    #[error("{url}: unexpected response body: {reason}")]
    Decode { url: String, reason: String },
}

/// What happened to a submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// 202: in the node's mempool; `hash` as the node computed it, and the
    /// correlation id the node filed it under (give it to an operator to
    /// follow the transaction: `bitcraps trace <id>`).
    Accepted {
        hash: String,
        correlation_id: String,
    },
    /// The node refused it. `status` 422 means the transaction itself was
    /// refused (`code` says why: `stale_nonce`, ...); 429/503 mean "not now".
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

/// Builds the HTTP client shared by all node clients of a run (one
/// connection pool; plain HTTP, no TLS: nodes serve loopback only).
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(REQUEST_TIMEOUT_MS))
        .connect_timeout(std::time::Duration::from_millis(CONNECT_TIMEOUT_MS))
        .build()
        .map_err(|e| ClientError::Transport {
            url: String::new(),
            reason: format!("building the HTTP client: {e}"),
        })
}

/// The API of one node at `base` (`http://127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    http: reqwest::Client,
}

impl NodeClient {
    pub fn new(base: impl Into<String>, http: reqwest::Client) -> Self {
        let mut base = base.into();
        while base.ends_with('/') {
            base.pop();
        }
        NodeClient { base, http }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /readyz`: `Ok` on 200, otherwise the node's reason.
    pub async fn readyz(&self) -> Result<(), ClientError> {
        let url = format!("{}/readyz", self.base);
        let resp = self.send(self.http.get(&url), &url).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(error_from(resp, url).await)
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get_json(format!("{}/status", self.base)).await
    }

    /// `GET /api/v1/accounts/{key}`.
    pub async fn account(&self, key_hex: &str) -> Result<AccountView, ClientError> {
        self.get_json(format!("{}/api/v1/accounts/{key_hex}", self.base))
            .await
    }

    /// `GET /api/v1/blocks?from=&limit=` (limit capped at
    /// [`MAX_BLOCKS_PER_PAGE`]).
    pub async fn blocks(&self, from: u64, limit: usize) -> Result<Vec<BlockView>, ClientError> {
        self.blocks_wait(from, limit, 0).await
    }

    /// [`NodeClient::blocks`] as a long poll: when nothing at or above
    /// `from` is committed yet, the node answers as soon as it is, or with an
    /// empty page after `wait_ms` (capped below [`REQUEST_TIMEOUT_MS`]).
    pub async fn blocks_wait(
        &self,
        from: u64,
        limit: usize,
        wait_ms: u64,
    ) -> Result<Vec<BlockView>, ClientError> {
        let limit = limit.clamp(1, MAX_BLOCKS_PER_PAGE);
        let wait_ms = wait_ms.min(REQUEST_TIMEOUT_MS / 2);
        self.get_json(format!(
            "{}/api/v1/blocks?from={from}&limit={limit}&wait_ms={wait_ms}",
            self.base
        ))
        .await
    }

    /// `GET /api/v1/blocks/{height}`; `None` on 404.
    pub async fn block(&self, height: u64) -> Result<Option<BlockView>, ClientError> {
        let url = format!("{}/api/v1/blocks/{height}", self.base);
        let resp = self.send(self.http.get(&url), &url).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(error_from(resp, url).await);
        }
        decode(resp, url).await.map(Some)
    }

    /// `GET /api/v1/tx/{hash}`; `None` on 404 (neither pending on this node
    /// nor committed).
    pub async fn tx(&self, hash_hex: &str) -> Result<Option<TxStatusView>, ClientError> {
        self.get_optional(format!("{}/api/v1/tx/{hash_hex}", self.base))
            .await
    }

    /// `GET /api/v1/tables`.
    pub async fn tables(&self) -> Result<Vec<TableView>, ClientError> {
        self.get_json(format!("{}/api/v1/tables", self.base)).await
    }

    /// `GET /api/v1/tables/{id}`; `None` on 404 (no such table).
    pub async fn table(&self, id: u64) -> Result<Option<TableDetailView>, ClientError> {
        self.get_optional(format!("{}/api/v1/tables/{id}", self.base))
            .await
    }

    /// `GET /api/v1/tables/{id}/rolls?since=&limit=`: rolls numbered `since`
    /// and up (the node caps `limit`); `None` on 404 (no such table).
    pub async fn rolls(
        &self,
        id: u64,
        since: u64,
        limit: usize,
    ) -> Result<Option<Vec<TableRoll>>, ClientError> {
        self.get_optional(format!(
            "{}/api/v1/tables/{id}/rolls?since={since}&limit={limit}",
            self.base
        ))
        .await
    }

    /// `GET /api/v1/game`: the roll clock.
    pub async fn game(&self) -> Result<GameView, ClientError> {
        self.get_json(format!("{}/api/v1/game", self.base)).await
    }

    /// `GET /api/v1/supply`: the node's chip conservation check.
    pub async fn supply(&self) -> Result<SupplyView, ClientError> {
        self.get_json(format!("{}/api/v1/supply", self.base)).await
    }

    /// `POST /api/v1/tx` with the hex of an encoded signed transaction.
    /// A node's refusal is an [`SubmitOutcome::Refused`], not an error; only
    /// transport and decoding problems are errors.
    /// Each call sends a fresh `x-correlation-id` (UUID v7).
    pub async fn submit(&self, tx_hex: String) -> Result<SubmitOutcome, ClientError> {
        let url = format!("{}/api/v1/tx", self.base);
        let (resp, correlation_id) = match self.post_traced(&url, &SubmitTx { tx: tx_hex }).await? {
            Ok(answer) => answer,
            Err(refused) => return Ok(refused),
        };
        let ok: SubmitTxResponse = decode(resp, url).await?;
        Ok(SubmitOutcome::Accepted {
            hash: ok.hash,
            correlation_id,
        })
    }

    /// `POST /api/v1/txs`: up to [`MAX_SUBMIT_BATCH`](crate::api::MAX_SUBMIT_BATCH)
    /// hex transactions in one
    /// request under one fresh `x-correlation-id`. Returns one outcome per
    /// transaction, in order, as [`submit`](Self::submit) would have for it
    /// alone: `Accepted` with the batch's correlation id, or `Refused` with
    /// the status, code and message the node gives for that transaction
    /// (the status `POST /api/v1/tx` would have answered; 422 if a node
    /// leaves it out). A refusal of the whole request (400, 413, 429, 503
    /// ...) refuses every transaction with that status and code. Only
    /// transport and decoding problems are errors. An empty list sends
    /// nothing.
    pub async fn submit_batch(
        &self,
        txs_hex: Vec<String>,
    ) -> Result<Vec<SubmitOutcome>, ClientError> {
        if txs_hex.is_empty() {
            return Ok(Vec::new());
        }
        let n = txs_hex.len();
        let url = format!("{}/api/v1/txs", self.base);
        let (resp, correlation_id) =
            match self.post_traced(&url, &SubmitTxs { txs: txs_hex }).await? {
                Ok(answer) => answer,
                Err(refused) => return Ok(vec![refused; n]),
            };
        let answer: SubmitTxsResponse = decode(resp, url.clone()).await?;
        if answer.results.len() != n {
            return Err(ClientError::Decode {
                url,
                reason: format!("{} results for {n} transactions", answer.results.len()),
            });
        }
        Ok(answer
            .results
            .into_iter()
            .map(|item| match item {
                SubmitTxsItem::Accepted { hash } => SubmitOutcome::Accepted {
                    hash,
                    correlation_id: correlation_id.clone(),
                },
                SubmitTxsItem::Refused { error } => SubmitOutcome::Refused {
                    status: error.status,
                    code: error.code,
                    message: error.message,
                },
            })
            .collect())
    }

    /// POSTs `body` as JSON with a fresh `x-correlation-id` (UUID v7). On a
    /// 2xx answer: the response and the id the node echoed (ours,
    /// canonicalised). On a refusal with an error body: `Err` holding it as
    /// a [`SubmitOutcome::Refused`]. Transport problems are errors.
    async fn post_traced<B: serde::Serialize>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<Result<(reqwest::Response, String), SubmitOutcome>, ClientError> {
        let id = uuid::Uuid::now_v7().hyphenated().to_string();
        let request = self
            .http
            .post(url)
            .header("x-correlation-id", id.as_str())
            .json(body);
        let resp = self.send(request, url).await?;
        if resp.status().is_success() {
            let correlation_id = resp
                .headers()
                .get("x-correlation-id")
                .and_then(|v| v.to_str().ok())
                .map_or(id, str::to_owned);
            return Ok(Ok((resp, correlation_id)));
        }
        match error_from(resp, url.to_owned()).await {
            ClientError::Status {
                status,
                code,
                message,
                ..
            } => Ok(Err(SubmitOutcome::Refused {
                status,
                code,
                message,
            })),
            other => Err(other),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
    ) -> Result<T, ClientError> {
        let resp = self.send(self.http.get(&url), &url).await?;
        if !resp.status().is_success() {
            return Err(error_from(resp, url).await);
        }
        decode(resp, url).await
    }

    /// Like `get_json`, but a 404 is `None` rather than an error.
    async fn get_optional<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
    ) -> Result<Option<T>, ClientError> {
        let resp = self.send(self.http.get(&url), &url).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(error_from(resp, url).await);
        }
        decode(resp, url).await.map(Some)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        req.send().await.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            reason: transport_reason(&e),
        })
    }
}

/// A short reason for a reqwest failure (its Display alone says only
/// "error sending request").
fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        return "connection refused or unreachable".into();
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    // Error chains are short; bound the walk anyway.
    for _ in 0..4 {
        let Some(s) = source else { break };
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    reason
}

async fn decode<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    url: String,
) -> Result<T, ClientError> {
    let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
        url: url.clone(),
        reason: transport_reason(&e),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
        url,
        reason: e.to_string(),
    })
}

/// Turns an error response into [`ClientError::Status`], reading the
/// [`ErrorBody`] when there is one.
async fn error_from(resp: reqwest::Response, url: String) -> ClientError {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => (body.error, body.message),
        Err(_) => (
            "http_error".to_string(),
            String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        ),
    };
    ClientError::Status {
        url,
        status,
        code,
        message,
    }
}
