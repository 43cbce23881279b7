//! Route handlers: parse and validate what the client sent, call [`NodeApi`],
//! shape the answer. No node logic lives here.

use super::correlation::CorrelationId;
use super::error::{codes, HttpError};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::join::join_all_in_order;
use super::ratelimit::ClientBudget;
use super::{ApiError, NodeApi};
use crate::api::{
    AccountView, BlockView, CorrelationView, GameView, MemoryProtectionView, PeerView,
    RotateIdentityView, StatusView, SubmitTx, SubmitTxResponse, SubmitTxs, SubmitTxsItem,
    SubmitTxsItemError, SubmitTxsResponse, SupplyView, TableDetailView, TableRoll, TableView,
    TrackerStatsView, TxStatusView, WipeView, MAX_SUBMIT_BATCH,
};
use crate::app::tx::MAX_TX_BYTES;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bitcraps_crypto::{Hash32, PublicKey};
use serde::Deserialize;
use std::sync::Arc;

/// Handler state: the node behind the API.
pub(crate) type Node = State<Arc<dyn NodeApi>>;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Default and largest `limit` of `GET /api/v1/blocks`.
pub const BLOCKS_DEFAULT_LIMIT: usize = 20;
pub const BLOCKS_MAX_LIMIT: usize = 100;

pub(crate) async fn livez() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(node): Node) -> Result<Json<serde_json::Value>, HttpError> {
    match node.readiness() {
        Ok(()) => Ok(Json(serde_json::json!({ "ready": true }))),
        Err(reason) => Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::NOT_READY,
            reason,
        )),
    }
}

pub(crate) async fn status(State(node): Node) -> Json<StatusView> {
    Json(node.status())
}

pub(crate) async fn metrics(State(node): Node) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        node.metrics(),
    )
        .into_response()
}

pub(crate) async fn submit_tx(
    State(node): Node,
    correlation: CorrelationId,
    ApiJson(body): ApiJson<SubmitTx>,
) -> Result<Response, HttpError> {
    let tx = decode_tx(&body.tx)?;
    let accepted = node.submit(tx, correlation.0).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// The path of the batch submit route.
pub(crate) const SUBMIT_BATCH_PATH: &str = "/api/v1/txs";

/// Bytes one transaction may take in a `POST /api/v1/txs` body besides its
/// hex: quotes, comma, and whitespace such as a newline and indentation.
const BATCH_ITEM_OVERHEAD_BYTES: usize = 16;

/// Body limit of `POST /api/v1/txs` (bytes): [`MAX_SUBMIT_BATCH`] of the
/// largest transactions ([`MAX_TX_BYTES`], hex-encoded), each with
/// [`BATCH_ITEM_OVERHEAD_BYTES`], plus 1 KiB for the envelope. 267,264 bytes.
/// It replaces `max_body_bytes` on that route only.
pub const MAX_SUBMIT_BATCH_BODY_BYTES: usize =
    MAX_SUBMIT_BATCH * (2 * MAX_TX_BYTES + BATCH_ITEM_OVERHEAD_BYTES) + 1024;

/// `POST /api/v1/txs`: up to [`MAX_SUBMIT_BATCH`] transactions in one
/// request, each handled as `POST /api/v1/tx` handles one (hex decode, then
/// [`NodeApi::submit`] with the request's correlation id), all submitted at
/// once in one task (`join.rs`: they reach admission in list order). One
/// transaction's failure does not touch the others; the answer is 200 with
/// one result per transaction, in order.
///
/// The rate limiter charged one token for the request; the other N - 1 are
/// charged here, once N is known, and without them the whole batch gets
/// 429 like a single request would.
pub(crate) async fn submit_txs(
    State(node): Node,
    correlation: CorrelationId,
    budget: ClientBudget,
    ApiJson(body): ApiJson<SubmitTxs>,
) -> Response {
    let n = body.txs.len();
    if n == 0 {
        return HttpError::bad_request(format!(
            "txs is empty; send 1 to {MAX_SUBMIT_BATCH} transactions"
        ))
        .into_response();
    }
    if n > MAX_SUBMIT_BATCH {
        return HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("a batch holds at most {MAX_SUBMIT_BATCH} transactions; this one has {n}"),
        )
        .into_response();
    }
    // n <= MAX_SUBMIT_BATCH, so this always fits.
    let extra = u32::try_from(n - 1).unwrap_or(u32::MAX);
    if let Err(rate_limited) = budget.charge(extra) {
        return rate_limited.into_response();
    }
    let id = correlation.0;
    // `None` where the transaction went to `submit`: its outcome comes from
    // `submitted`, in the same order.
    let mut results: Vec<Option<SubmitTxsItem>> = Vec::with_capacity(n);
    let mut submits = Vec::with_capacity(n);
    for hex in body.txs {
        match decode_tx(&hex) {
            Ok(tx) => {
                results.push(None);
                submits.push(node.submit(tx, id));
            }
            Err(bad_hex) => results.push(Some(batch_item(Err(bad_hex)))),
        }
    }
    let mut submitted = join_all_in_order(submits).await.into_iter();
    let results: Vec<SubmitTxsItem> = results
        .into_iter()
        .map(|item| {
            item.unwrap_or_else(|| {
                let outcome = submitted.next().unwrap_or_else(|| {
                    Err(ApiError::Internal(
                        "batch join returned fewer outcomes than submits".into(),
                    ))
                });
                batch_item(outcome.map_err(HttpError::from))
            })
        })
        .collect();
    let accepted = results
        .iter()
        .filter(|r| matches!(r, SubmitTxsItem::Accepted { .. }))
        .count();
    Json(SubmitTxsResponse {
        accepted,
        refused: results.len() - accepted,
        results,
    })
    .into_response()
}

/// The bytes of a hex transaction, or the 400 `POST /api/v1/tx` answers.
fn decode_tx(hex: &str) -> Result<Vec<u8>, HttpError> {
    hex::decode(hex).map_err(|e| HttpError::bad_request(format!("tx is not valid hex: {e}")))
}

/// One batch result: what `POST /api/v1/tx` would have answered for this
/// transaction alone (the same [`HttpError`] code, message and status for a
/// refusal, the same hash for an acceptance).
fn batch_item(outcome: Result<SubmitTxResponse, HttpError>) -> SubmitTxsItem {
    match outcome {
        Ok(SubmitTxResponse { hash }) => SubmitTxsItem::Accepted { hash },
        Err(e) => SubmitTxsItem::Refused {
            error: SubmitTxsItemError {
                code: e.code().to_owned(),
                message: e.message().to_owned(),
                status: e.status().as_u16(),
            },
        },
    }
}

pub(crate) async fn tx(
    State(node): Node,
    ApiPath(hash): ApiPath<String>,
) -> Result<Json<TxStatusView>, HttpError> {
    let hash = Hash32::from_hex(&hash)
        .map_err(|e| HttpError::bad_request(format!("hash must be 64 hex characters: {e}")))?;
    node.tx(&hash)?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("transaction {hash} not found")))
}

pub(crate) async fn block(
    State(node): Node,
    ApiPath(height): ApiPath<u64>,
) -> Result<Json<BlockView>, HttpError> {
    node.block(height)?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no committed block at height {height}")))
}

#[derive(Debug, Deserialize)]
pub(crate) struct BlocksQuery {
    from: Option<u64>,
    limit: Option<usize>,
    /// Long poll: when nothing at or above `from` is committed yet, wait up
    /// to this long (ms, at most [`LongPollCap`]) for it instead of
    /// answering an empty page, so a follower neither polls in a loop nor
    /// learns of a commit a poll interval late.
    wait_ms: Option<u64>,
}

/// Longest `wait_ms` of `GET /api/v1/blocks` (ms), whatever the request
/// timeout.
pub const BLOCKS_MAX_WAIT_MS: u64 = 5_000;

/// The longest wait this server grants a long poll (ms): [`BLOCKS_MAX_WAIT_MS`]
/// or half of `request_timeout_ms`, whichever is less, so a long poll ends
/// with a page well before the deadline would turn it into a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LongPollCap(pub u64);

impl LongPollCap {
    pub(crate) fn for_request_timeout(request_timeout_ms: u64) -> Self {
        LongPollCap(BLOCKS_MAX_WAIT_MS.min(request_timeout_ms / 2))
    }
}

pub(crate) async fn blocks(
    State(node): Node,
    Extension(cap): Extension<LongPollCap>,
    ApiQuery(query): ApiQuery<BlocksQuery>,
) -> Result<Json<Vec<BlockView>>, HttpError> {
    let from = query.from.unwrap_or(1);
    let limit = query
        .limit
        .unwrap_or(BLOCKS_DEFAULT_LIMIT)
        .min(BLOCKS_MAX_LIMIT);
    let mut blocks = node.blocks(from, limit)?;
    let wait_ms = query.wait_ms.unwrap_or(0).min(cap.0);
    if blocks.is_empty() && wait_ms > 0 && limit > 0 {
        node.wait_height(from, wait_ms).await;
        blocks = node.blocks(from, limit)?;
    }
    // The cap is this server's promise; do not rely on the node for it.
    blocks.truncate(limit);
    Ok(Json(blocks))
}

pub(crate) async fn account(
    State(node): Node,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<AccountView>, HttpError> {
    let key = PublicKey::from_hex(&key).map_err(|e| {
        HttpError::bad_request(format!(
            "account must be a 64-hex-character ed25519 public key: {e}"
        ))
    })?;
    Ok(Json(node.account(&key)?))
}

pub(crate) async fn tables(State(node): Node) -> Result<Json<Vec<TableView>>, HttpError> {
    Ok(Json(node.tables()?))
}

pub(crate) async fn table(
    State(node): Node,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<TableDetailView>, HttpError> {
    node.table(id)?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("there is no table {id}")))
}

/// Default `limit` of `GET /api/v1/tables/{id}/rolls` (the node caps it).
pub const ROLLS_DEFAULT_LIMIT: usize = 20;

#[derive(Debug, Deserialize)]
pub(crate) struct RollsQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

pub(crate) async fn rolls(
    State(node): Node,
    ApiPath(id): ApiPath<u64>,
    ApiQuery(query): ApiQuery<RollsQuery>,
) -> Result<Json<Vec<TableRoll>>, HttpError> {
    let limit = query.limit.unwrap_or(ROLLS_DEFAULT_LIMIT);
    node.rolls(id, query.since, limit)?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("there is no table {id}")))
}

pub(crate) async fn game(State(node): Node) -> Result<Json<GameView>, HttpError> {
    Ok(Json(node.game()?))
}

pub(crate) async fn supply(State(node): Node) -> Result<Json<SupplyView>, HttpError> {
    Ok(Json(node.supply()?))
}

pub(crate) async fn correlation(
    State(node): Node,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CorrelationView>, HttpError> {
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|e| {
        HttpError::bad_request(format!(
            "correlation id must be a UUID (e.g. 67e55044-10b1-426f-9247-bb680e5fe0c8): {e}"
        ))
    })?;
    let view = node.correlation(&id)?;
    // 404 for an id nobody submitted under, whatever the node answered.
    if view.entries.is_empty() {
        return Err(HttpError::not_found(format!(
            "no transaction tracked under correlation id {id}"
        )));
    }
    Ok(Json(view))
}

pub(crate) async fn correlation_stats(
    State(node): Node,
) -> Result<Json<TrackerStatsView>, HttpError> {
    Ok(Json(node.correlation_stats()?))
}

pub(crate) async fn memory_protection(State(node): Node) -> Json<MemoryProtectionView> {
    Json(node.memory_protection())
}

/// The bearer token, if the request carries one (`authorization: Bearer T`).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
}

pub(crate) async fn admin_rotate_identity(
    State(node): Node,
    headers: HeaderMap,
) -> Result<Json<RotateIdentityView>, HttpError> {
    let bearer = bearer(&headers).map(<[u8]>::to_vec);
    Ok(Json(node.admin_rotate_identity(bearer).await?))
}

pub(crate) async fn admin_wipe(
    State(node): Node,
    headers: HeaderMap,
) -> Result<Json<WipeView>, HttpError> {
    Ok(Json(node.admin_wipe(bearer(&headers))?))
}

pub(crate) async fn peers(State(node): Node) -> Json<Vec<PeerView>> {
    Json(node.peers())
}

/// Fallback for paths no route matches.
pub(crate) async fn not_found() -> HttpError {
    HttpError::not_found("no such route")
}

/// Fallback for a known path with a method it does not serve. axum adds the
/// `allow` header listing the methods that are.
pub(crate) async fn method_not_allowed(method: Method) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on this route"),
    )
}
