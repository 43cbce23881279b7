//! The JSON shapes of the HTTP API (`/status`, `/api/v1/...`).
//!
//! Shared by the server ([`crate::http`]) and its clients (`bitcraps status`,
//! the `localnet` players, tests), so both sides agree on one definition.
//! Binary values (keys, hashes, transactions) travel as lowercase hex strings.
//! Field names are part of the public interface: extend, do not rename.

pub use crate::app::craps::{BetView, Phase, Roll};
pub use crate::app::game::TableRoll;
use serde::{Deserialize, Serialize};

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// Validator name from genesis (`val0`, ...).
    pub node_id: String,
    /// Index in the genesis validator list.
    pub validator_index: u16,
    pub chain_id: String,
    pub version: String,
    /// Highest committed (finalized) height.
    pub height: u64,
    /// The consensus view the node is in.
    pub view: u64,
    /// Hex id of the block at `height`.
    pub committed_id: String,
    /// Hex application state root after executing `height`.
    pub state_root: String,
    /// True while the node is far behind the views it hears about.
    pub catching_up: bool,
    /// Blocks committed per second over the last sync window (0 when idle).
    pub sync_rate_blocks_per_s: f64,
    /// Peers with a live QUIC connection.
    pub peers_connected: usize,
    /// Other validators in genesis.
    pub peers_total: usize,
    /// Verified transactions waiting for a block.
    pub mempool_len: usize,
    /// Transactions committed since genesis (accepted or rejected by execution).
    pub committed_tx: u64,
    pub signer: SignerView,
    /// Milliseconds since the process started.
    pub uptime_ms: u64,
    /// Set when the engine stopped on an error; the node keeps serving reads.
    pub fatal: Option<String>,
}

/// Which signing backend holds the consensus key, and whether it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerView {
    /// `memory`, `keystore`, `pkcs11`.
    pub backend: String,
    /// The last periodic test signature worked (the node votes only then).
    pub healthy: bool,
    /// Why the last test signature failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Latency of the last successful test signature (µs).
    #[serde(default)]
    pub sign_latency_us: Option<u64>,
}

/// `503` body of `/readyz`, and the body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (`bad_request`, `not_found`, `rejected`,
    /// `rate_limited`, `payload_too_large`, `unavailable`, `internal`, ...).
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `POST /api/v1/tx` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitTx {
    /// The encoded signed transaction (`app::SignedTx::encode`), hex.
    pub tx: String,
}

/// `POST /api/v1/tx` response (202 Accepted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTxResponse {
    /// Hex transaction hash, for `GET /api/v1/tx/{hash}`.
    pub hash: String,
}

/// Most transactions in one `POST /api/v1/txs` request.
pub const MAX_SUBMIT_BATCH: usize = 256;

/// `POST /api/v1/txs` request body: 1 to [`MAX_SUBMIT_BATCH`] transactions,
/// each as `POST /api/v1/tx` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitTxs {
    /// Encoded signed transactions (`app::SignedTx::encode`), hex.
    pub txs: Vec<String>,
}

/// `POST /api/v1/txs` response (200): one result per transaction, in the
/// order of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTxsResponse {
    /// Results that are `{"hash"}`.
    pub accepted: usize,
    /// Results that are `{"error"}`.
    pub refused: usize,
    pub results: Vec<SubmitTxsItem>,
}

/// One transaction of a `POST /api/v1/txs` request: `{"hash": ...}` or
/// `{"error": {"code", "message", "status"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubmitTxsItem {
    /// What `POST /api/v1/tx` answers with 202.
    Accepted { hash: String },
    /// What `POST /api/v1/tx` answers with an error.
    Refused { error: SubmitTxsItemError },
}

/// Why one transaction of a batch was refused: the code and message
/// `POST /api/v1/tx` would have answered for it alone, and that answer's
/// HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTxsItemError {
    pub code: String,
    pub message: String,
    /// The status `POST /api/v1/tx` would have answered (400, 422, 503, ...);
    /// read as 422 when absent.
    #[serde(default = "unprocessable")]
    pub status: u16,
}

fn unprocessable() -> u16 {
    422
}

/// `GET /api/v1/tx/{hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatusView {
    pub hash: String,
    /// `pending` (in this node's mempool) or `committed`.
    pub status: String,
    /// Height of the block that committed it.
    pub height: Option<u64>,
    /// Position in that block.
    pub index: Option<u32>,
    /// Execution result when committed: `ok`, or the rejection reason.
    pub result: Option<String>,
    /// Wall-clock ms (Unix epoch) this node admitted it, if it did.
    pub received_ms: Option<u64>,
    /// Wall-clock ms this node executed the committing block, if known.
    pub committed_ms: Option<u64>,
}

/// `GET /api/v1/accounts/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account: String,
    /// Committed balance in chips.
    pub balance: u64,
    /// Next nonce execution expects from this account.
    pub nonce: u64,
    /// Next nonce counting this node's pending transactions from the account.
    pub pending_nonce: u64,
}

/// `GET /api/v1/blocks/{height}` and `GET /api/v1/blocks?from=&limit=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    pub height: u64,
    pub view: u64,
    pub id: String,
    pub parent: String,
    pub proposer: u16,
    pub timestamp_ms: u64,
    /// Hex hashes of the transactions, in order (the beacon entry, if any,
    /// is not a transaction and not listed).
    pub txs: Vec<String>,
    /// The dice beacon round whose signature the block carries, if any
    /// (whether it rolled the dice is up to execution: a stale copy does not).
    #[serde(default)]
    pub beacon_round: Option<u64>,
    /// Validators whose finalize votes are in the certificate.
    pub signers: Vec<u16>,
    /// Hex application state root after executing this block (every honest
    /// node reports the same root at the same height).
    pub state_root: Option<String>,
}

/// One entry of `GET /api/v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub index: u16,
    pub name: String,
    pub address: String,
    pub connected: bool,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    pub rtt_us: Option<u64>,
    pub send_latency_p95_us: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub reconnects: u64,
    pub errors: u64,
    pub dropped_queue_full: u64,
    pub dropped_rate_limited: u64,
    pub penalty_disconnects: u64,
    pub last_error: Option<String>,
}

/// One table in `GET /api/v1/tables`, and the head of `GET /api/v1/tables/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableView {
    pub id: u64,
    /// Hex key of the house that opened it.
    pub house: String,
    pub min_bet: u64,
    pub max_bet: u64,
    /// House chips on the table, including what is reserved for bets in play.
    pub bankroll: u64,
    /// Worst-case payout of the bets in play (the bankroll always covers it).
    pub reserved: u64,
    /// `"come_out"` or `{"point": n}`.
    pub phase: Phase,
    /// No new bets (the house closed it); bets in play still settle.
    pub closed: bool,
    /// Rolls so far.
    pub rolls: u64,
    pub last_roll: Option<Roll>,
    /// Betting spots with chips on them.
    pub bets_in_play: usize,
    /// Chips on those spots.
    pub stakes: u64,
}

/// `GET /api/v1/tables/{id}`: the table, every bet in play and every rail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDetailView {
    #[serde(flatten)]
    pub table: TableView,
    pub bets: Vec<BetView>,
    /// Settled chips waiting for their owner's `withdraw`.
    pub rails: Vec<RailView>,
}

/// Chips on a player's rail at a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RailView {
    pub player: String,
    pub amount: u64,
}

/// `GET /api/v1/game`: the dice beacon and the roll clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameView {
    /// Committed height these figures are from.
    pub height: u64,
    /// Whether genesis has a dice beacon (without one, bets are refused).
    pub beacon: bool,
    /// Partial signatures needed to recover a roll (0 without a beacon).
    pub beacon_threshold: u32,
    /// Hex group public key of the beacon (G2), if any.
    pub beacon_group_key: Option<String>,
    pub roll_interval_ms: u64,
    /// False while the dice wait for `awaiting_round`.
    pub betting_open: bool,
    pub awaiting_round: Option<u64>,
    /// Betting closes with the first block at or after this timestamp (ms).
    pub betting_deadline_ms: Option<u64>,
    /// Beacon rounds applied (rolls of every table with bets).
    pub rounds: u64,
    pub last_round: Option<u64>,
    pub tables: u64,
}

/// `GET /api/v1/supply`: the chip conservation check on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyView {
    pub height: u64,
    /// Sum of account balances.
    pub balances: u64,
    /// Chips in tables: bankrolls, bets in play and rails.
    pub escrow: u64,
    /// Chips created at genesis.
    pub genesis: u64,
    /// `balances + escrow == genesis`.
    pub conserved: bool,
}

/// `GET /api/v1/memory-protection/status`: how this node holds its secrets
/// (`bitcraps_crypto::secret`: locked, guard-paged, zeroized buffers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryProtectionView {
    /// False once an `mlock` failed (RLIMIT_MEMLOCK): secrets may reach swap.
    pub mlock_available: bool,
    pub live_buffers: u64,
    pub locked_bytes: u64,
    pub unlocked_buffers: u64,
    pub lock_failures: u64,
    /// Every secret buffer sits between inaccessible guard pages.
    pub guard_pages: bool,
    /// The consensus key and beacon share were wiped by an operator.
    pub keys_wiped: bool,
}

/// `POST /api/v1/admin/wipe` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeView {
    /// False when an earlier call already wiped the keys.
    pub wiped_now: bool,
    /// The consensus key's backend that was dropped (`memory`, `keystore`, `pkcs11`).
    pub signer_backend: String,
    /// What still runs: the node keeps serving reads but signs nothing.
    pub message: String,
}

/// `POST /api/v1/admin/rotate-identity` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateIdentityView {
    /// Hex of the new QUIC identity key.
    pub new_identity_key: String,
    /// The rotation's sequence number for this validator.
    pub sequence: u64,
    /// Where the new key was written (0600): point `keys.identity` at it and
    /// restart to complete the rotation.
    pub key_file: String,
    pub message: String,
}

/// `GET /api/v1/correlation/{id}`: what this node recorded of the
/// transactions submitted under one correlation id (`x-correlation-id`).
/// `bitcraps trace` merges these views from several nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelationView {
    /// Validator name from genesis (`val0`, ...), as in `/status` `node_id`.
    pub node: String,
    /// Index in the genesis validator list.
    pub validator: u16,
    pub correlation_id: uuid::Uuid,
    /// One timeline per transaction under the id (a client may reuse an id),
    /// oldest first, at most 16.
    pub entries: Vec<TxTimelineView>,
}

/// One transaction's stages as one node saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxTimelineView {
    pub correlation_id: uuid::Uuid,
    /// Hex transaction hash.
    pub tx_hash: String,
    /// Height of the block that carried it, once known.
    pub height: Option<u64>,
    /// `accepted` or a rejection code (`bad_nonce`, ...), once executed.
    pub outcome: Option<String>,
    /// The node executed it.
    pub completed: bool,
    /// Stages recorded, in pipeline order (`received`, `admitted`,
    /// `verified`, `mempool`, `batched`, `proposed`, `voted`, `certified`,
    /// `committed`, `executed`, `settled`), each at most once.
    pub stages: Vec<StageTimeView>,
}

/// When a node first saw a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimeView {
    pub stage: String,
    /// Wall-clock microseconds since the Unix epoch (comparable across nodes
    /// as far as their clocks agree).
    pub at_unix_us: u64,
}

/// `GET /api/v1/correlation/stats`: the node's correlation tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerStatsView {
    /// Validator name from genesis.
    pub node: String,
    pub validator: u16,
    /// Tracked transactions not yet executed.
    pub active: u64,
    /// Tracked transactions executed and still retained.
    pub completed: u64,
    /// Transactions ever tracked.
    pub tracked_total: u64,
    /// Transactions ever executed while tracked.
    pub completed_total: u64,
    /// Evicted because the tracker (or one correlation id) was full.
    pub evicted_capacity_total: u64,
    /// Evicted because they were older than `max_age_ms`.
    pub evicted_age_total: u64,
    /// `[correlation] max_entries`.
    pub max_entries: u64,
    /// `[correlation] max_age_ms`.
    pub max_age_ms: u64,
    /// Per stage name: latency (µs) from a transaction's first recorded stage
    /// to that stage, over recent executed transactions. Stages without
    /// samples are absent.
    pub stage_latency_us: std::collections::BTreeMap<String, LatencySummaryView>,
}

/// Nearest-rank latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummaryView {
    pub count: u64,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}
