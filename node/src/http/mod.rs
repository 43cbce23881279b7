//! The node's HTTP API (axum): health, status, metrics and `/api/v1`.
//!
//! The server only knows the [`NodeApi`] trait; the running validator
//! implements it (`crate::validator`), and HTTP tests can drive the router with
//! any implementation. Keeping the boundary a trait keeps HTTP concerns
//! (parsing, limits, status codes, correlation ids) out of the engine.
//!
//! Entry points: [`router`] (the axum `Router`, every limit applied) and
//! [`serve`] (runs it on a listener with graceful, bounded shutdown).
//!
//! * `router.rs`: the route table and the middleware order (read its docs
//!   first); `handlers.rs`: one small function per route; `join.rs`: the
//!   in-task join the batch route (`POST /api/v1/txs`) submits through.
//! * `correlation.rs`: `x-correlation-id`, the `http_request` span, one log
//!   line per request.
//! * `ratelimit.rs`: per-client-IP token buckets, bounded client map (429);
//!   a batch of N transactions costs N tokens.
//! * `shed.rs`: in-flight cap (503 `overloaded`), deadline (503 `timeout`),
//!   panic barrier (500).
//! * `extract.rs`: JSON/path/query extractors and body limits (400/413/415).
//! * `error.rs`: [`HttpError`] and the stable error [`codes`]; every error,
//!   including axum's own rejections and fallbacks, is an `ErrorBody`.
//! * [`prom`]: Prometheus text exposition writer for `/metrics`.
//! * `clock.rs`: the module's one clock read.

use crate::api::{
    AccountView, BlockView, CorrelationView, GameView, MemoryProtectionView, PeerView,
    RotateIdentityView, StatusView, SubmitTxResponse, SupplyView, TableDetailView, TableRoll,
    TableView, TrackerStatsView, TxStatusView, WipeView,
};
use bitcraps_crypto::{Hash32, PublicKey};
use std::future::Future;
use std::pin::Pin;

/// A boxed future returned by [`NodeApi::admin_rotate_identity`].
pub type AdminFuture<'a> =
    Pin<Box<dyn Future<Output = Result<RotateIdentityView, ApiError>> + Send + 'a>>;

/// A boxed future returned by [`NodeApi::wait_height`].
pub type WaitFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A boxed future returned by [`NodeApi::submit`].
pub type SubmitFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SubmitTxResponse, ApiError>> + Send + 'a>>;

/// What the HTTP layer needs from a node. Every method is cheap or async; none
/// may block the caller for long (the implementation moves storage reads off
/// the async workers if they can be slow).
pub trait NodeApi: Send + Sync + 'static {
    /// `GET /status`.
    fn status(&self) -> StatusView;
    /// `GET /readyz`: `Ok` when the node is caught up and can take
    /// transactions, otherwise why not.
    fn readiness(&self) -> Result<(), String>;
    /// `POST /api/v1/tx`: decode, verify and admit an encoded signed
    /// transaction. `correlation_id` is the request's `x-correlation-id`.
    /// `POST /api/v1/txs` calls it once per transaction of the batch, all
    /// with the batch request's id, and polls those calls concurrently.
    fn submit(&self, tx: Vec<u8>, correlation_id: uuid::Uuid) -> SubmitFuture<'_>;
    /// `GET /api/v1/tx/{hash}`: `None` when neither pending nor committed.
    fn tx(&self, hash: &Hash32) -> Result<Option<TxStatusView>, ApiError>;
    /// `GET /api/v1/blocks/{height}`.
    fn block(&self, height: u64) -> Result<Option<BlockView>, ApiError>;
    /// `GET /api/v1/blocks?from=H&limit=N`: committed blocks from `from`
    /// upwards, at most `limit` (the server caps `limit`).
    fn blocks(&self, from: u64, limit: usize) -> Result<Vec<BlockView>, ApiError>;
    /// `GET /api/v1/accounts/{key}`: unknown accounts have balance 0, nonce 0.
    fn account(&self, key: &PublicKey) -> Result<AccountView, ApiError>;
    /// `GET /api/v1/tables`: every table, in id order.
    fn tables(&self) -> Result<Vec<TableView>, ApiError>;
    /// `GET /api/v1/tables/{id}`: `None` if there is no such table.
    fn table(&self, id: u64) -> Result<Option<TableDetailView>, ApiError>;
    /// `GET /api/v1/tables/{id}/rolls?since=N&limit=M`: the table's rolls from
    /// roll number `since` (default: the latest `limit`); `None` if there is
    /// no such table.
    fn rolls(
        &self,
        table: u64,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Option<Vec<TableRoll>>, ApiError>;
    /// `GET /api/v1/game`: the dice beacon and the roll clock.
    fn game(&self) -> Result<GameView, ApiError>;
    /// `GET /api/v1/supply`: the chip conservation check.
    fn supply(&self) -> Result<SupplyView, ApiError>;
    /// `GET /api/v1/peers`.
    fn peers(&self) -> Vec<PeerView>;
    /// `GET /api/v1/memory-protection/status`: how secrets are held.
    fn memory_protection(&self) -> MemoryProtectionView;
    /// `POST /api/v1/admin/wipe` with `authorization: Bearer TOKEN`: zeroize
    /// every key this node holds in memory and stop signing. `bearer` is the
    /// token the client sent, if any; the node compares it in constant time.
    fn admin_wipe(&self, bearer: Option<&[u8]>) -> Result<WipeView, ApiError>;
    /// `POST /api/v1/admin/rotate-identity` (same bearer token): a new QUIC
    /// identity key, announced to every peer under the consensus key.
    /// Disabled (403) unless the node implements it.
    fn admin_rotate_identity(&self, bearer: Option<Vec<u8>>) -> AdminFuture<'_> {
        let _ = bearer;
        Box::pin(std::future::ready(Err(ApiError::Forbidden(
            "identity rotation is not available on this node".into(),
        ))))
    }
    /// Resolves once the committed height is at least `height`, or after
    /// `timeout_ms`, whichever is first (`GET /api/v1/blocks?wait_ms=`).
    /// Nodes without a way to wait resolve at once: callers re-check.
    fn wait_height(&self, height: u64, timeout_ms: u64) -> WaitFuture<'_> {
        let _ = (height, timeout_ms);
        Box::pin(std::future::ready(()))
    }
    /// `GET /api/v1/correlation/{id}`: every transaction this node tracks
    /// under correlation id `id`, with the time it saw each stage
    /// (`crate::trace`). An unknown id is `NotFound` (an empty `entries` is
    /// answered 404 too). Disabled (403) unless the node implements it.
    fn correlation(&self, id: &uuid::Uuid) -> Result<CorrelationView, ApiError> {
        let _ = id;
        Err(ApiError::Forbidden(CORRELATION_UNAVAILABLE.into()))
    }
    /// `GET /api/v1/correlation/stats`: the correlation tracker's counters
    /// and per-stage latency percentiles. Disabled (403) unless the node
    /// implements it.
    fn correlation_stats(&self) -> Result<TrackerStatsView, ApiError> {
        Err(ApiError::Forbidden(CORRELATION_UNAVAILABLE.into()))
    }
    /// `GET /metrics`: Prometheus text exposition format.
    fn metrics(&self) -> String;
}

/// The 403 message of the correlation routes on a node without a tracker.
const CORRELATION_UNAVAILABLE: &str = "correlation tracking is not available on this node";

/// A failed API call, mapped to an HTTP status by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad hex, undecodable transaction, ...).
    #[error("{0}")]
    BadRequest(String),
    /// 422: well-formed but refused (bad signature, stale nonce, duplicate,
    /// per-account limit). `code` is stable (`bad_signature`, `stale_nonce`,
    /// `duplicate`, `account_limit`, `wrong_chain`, ...).
    #[error("{message}")]
    Rejected { code: String, message: String },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 503: the mempool is full, the node is stopping or not ready.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a storage or internal failure (details are logged, not returned).
    #[error("{0}")]
    Internal(String),
    /// 401: missing or wrong admin token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the call is disabled on this node.
    #[error("{0}")]
    Forbidden(String),
}

/// Limits on what clients may send. Every field is configurable in
/// `config.toml` (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Largest request body (bytes); larger gets 413.
    pub max_body_bytes: usize,
    /// Sustained requests per second per client IP.
    pub requests_per_s: u32,
    /// Burst of requests per client IP.
    pub burst: u32,
    /// Most client IPs tracked by the rate limiter (oldest evicted).
    pub max_clients: usize,
    /// Requests handled at once; more are answered 503 `overloaded` at once.
    pub max_concurrent_requests: usize,
    /// A request that takes longer is answered 503.
    pub request_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 64 * 1024,
            requests_per_s: 2_000,
            burst: 4_000,
            max_clients: 4_096,
            max_concurrent_requests: 1_024,
            request_timeout_ms: 10_000,
        }
    }
}

mod clock;
mod correlation;
mod error;
mod extract;
mod handlers;
mod join;
pub mod prom;
mod ratelimit;
mod router;
mod shed;

pub use crate::api::MAX_SUBMIT_BATCH;
pub use correlation::{CorrelationId, CORRELATION_HEADER};
pub use error::{codes, HttpError};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use handlers::{
    BLOCKS_DEFAULT_LIMIT, BLOCKS_MAX_LIMIT, BLOCKS_MAX_WAIT_MS, MAX_SUBMIT_BATCH_BODY_BYTES,
    METRICS_CONTENT_TYPE,
};
pub use router::{router, serve, DRAIN_GRACE_MS};

/// Health endpoints: exempt from rate limiting and the concurrency cap, so a
/// busy node still answers its orchestrator's probes.
pub const HEALTH_PATHS: [&str; 2] = ["/livez", "/readyz"];

fn is_health_path(path: &str) -> bool {
    HEALTH_PATHS.contains(&path)
}
