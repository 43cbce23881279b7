//! [`NodeService`]: the running validator as the HTTP layer sees it
//! ([`NodeApi`]). Reads come from the engine's status, its mempool and the
//! store; submissions go through the engine's admission path, traced under
//! the request's correlation id; the correlation routes read the engine's
//! [`CorrelationTracker`].

use super::game_api;
use super::killswitch::{self, AdminAccess};
use super::metrics;
use super::signer_health::{SignerHealth, SignerMonitor};
use crate::api::{
    AccountView, BlockView, CorrelationView, GameView, MemoryProtectionView, PeerView, SignerView,
    StatusView, SubmitTxResponse, SupplyView, TableDetailView, TableRoll, TableView,
    TrackerStatsView, TxStatusView, WipeView,
};
use crate::app::beacon_entry::BeaconEntry;
use crate::app::payload::split_payload;
use crate::app::state::{account_key, decode_account, root_key, Receipt};
use crate::app::tx::tx_hash;
use crate::chainspec::ChainSpec;
use crate::engine::txlog::TxTimes;
use crate::engine::{Clock, EngineClient, SubmitError, SubmitTrace};
use crate::http::{AdminFuture, ApiError, NodeApi, SubmitFuture, WaitFuture};
use crate::net::{BreakerState, PeerStats};
use crate::storage::StorageError;
use crate::trace::tracker::CorrelationTracker;
use crate::trace::{correlation_view, otel, stats_view, unix_now_us};
use bitcraps_consensus::CommittedBlock;
use bitcraps_crypto::{Hash32, PublicKey};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The validator behind the HTTP API.
#[derive(Debug)]
pub struct NodeService {
    engine: EngineClient,
    spec: Arc<ChainSpec>,
    me: u16,
    clock: Arc<dyn Clock>,
    started_ms: u64,
    /// Submissions refused, by reason code (for `/metrics`).
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    signer: Arc<SignerMonitor>,
    admin: AdminAccess,
    /// The engine's correlation tracker (the same `Arc`: what the engine
    /// records, the correlation routes read).
    tracker: Arc<CorrelationTracker>,
}

impl NodeService {
    /// The service over `engine`. The correlation tracker is the one the
    /// engine records into ([`EngineClient::tracker`]), so the HTTP API can
    /// never read a different one.
    pub fn new(
        engine: EngineClient,
        spec: Arc<ChainSpec>,
        me: u16,
        clock: Arc<dyn Clock>,
        signer: Arc<SignerMonitor>,
        admin: AdminAccess,
    ) -> Self {
        let started_ms = clock.now_ms();
        let tracker = Arc::clone(engine.tracker());
        NodeService {
            engine,
            spec,
            me,
            clock,
            started_ms,
            rejected: Mutex::new(BTreeMap::new()),
            signer,
            admin,
            tracker,
        }
    }

    /// The correlation tracker behind `/api/v1/correlation/*` (shared with
    /// the engine, and with the cleanup task that evicts old entries).
    pub fn tracker(&self) -> &Arc<CorrelationTracker> {
        &self.tracker
    }

    pub(super) fn signer_health(&self) -> SignerHealth {
        self.signer.health()
    }

    pub(super) fn engine(&self) -> &EngineClient {
        &self.engine
    }

    pub(super) fn rejected_by_reason(&self) -> BTreeMap<&'static str, u64> {
        crate::engine::lock(&self.rejected).clone()
    }

    fn count_rejection(&self, code: &'static str) {
        *crate::engine::lock(&self.rejected).entry(code).or_default() += 1;
    }

    fn name_of(&self, index: u16) -> String {
        self.spec
            .consensus
            .validators
            .get(usize::from(index))
            .map_or_else(|| format!("#{index}"), |v| v.name.clone())
    }

    fn block_view(&self, cb: &CommittedBlock) -> Result<BlockView, ApiError> {
        let h = &cb.block.header;
        let entries = split_payload(&cb.block.payload).unwrap_or_default();
        let beacon = entries
            .first()
            .and_then(|e| BeaconEntry::decode(e))
            .and_then(Result::ok);
        let skip = usize::from(beacon.is_some());
        let txs = entries
            .iter()
            .skip(skip)
            .map(|raw| tx_hash(raw).to_hex())
            .collect();
        let state_root = self
            .engine
            .reader()
            .app_get(&root_key(h.height))
            .map_err(internal)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .map(|r| Hash32(r).to_hex());
        Ok(BlockView {
            height: h.height,
            view: h.view,
            id: cb.block.id().to_hex(),
            parent: h.parent.to_hex(),
            proposer: h.proposer,
            timestamp_ms: h.timestamp_ms,
            txs,
            beacon_round: beacon.map(|b| b.round),
            signers: cb.finalization.signatures.iter().map(|(i, _)| *i).collect(),
            state_root,
        })
    }
}

pub(super) fn internal(e: StorageError) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Malformed(m) => ApiError::BadRequest(m),
        e @ (SubmitError::BadSignature { .. } | SubmitError::Rejected(_)) => ApiError::Rejected {
            code: e.code().to_owned(),
            message: e.to_string(),
        },
        e @ (SubmitError::Busy(_) | SubmitError::Stopped) => ApiError::Unavailable(e.to_string()),
    }
}

fn breaker_name(b: BreakerState) -> &'static str {
    match b {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

impl NodeApi for NodeService {
    fn status(&self) -> StatusView {
        let s = self.engine.status();
        StatusView {
            node_id: self.name_of(self.me),
            validator_index: self.me,
            chain_id: self.spec.consensus.chain_id.clone(),
            version: crate::VERSION.to_owned(),
            height: s.height,
            view: s.view,
            committed_id: s.committed_id.to_hex(),
            state_root: s.state_root.to_hex(),
            catching_up: s.catching_up,
            sync_rate_blocks_per_s: s.commit_rate_milli as f64 / 1_000.0,
            peers_connected: s.peers_connected,
            peers_total: self.spec.consensus.validators.len().saturating_sub(1),
            mempool_len: self.engine.mempool_len(),
            committed_tx: s.committed_tx,
            signer: {
                let h = self.signer.health();
                let wiped = self.admin.killswitch.is_wiped();
                SignerView {
                    backend: h.backend.to_owned(),
                    healthy: h.healthy && !wiped,
                    last_error: if wiped {
                        Some(killswitch::WIPED.to_owned())
                    } else {
                        h.last_error
                    },
                    sign_latency_us: h.sign_latency_us,
                }
            },
            uptime_ms: self.clock.now_ms().saturating_sub(self.started_ms),
            fatal: s.fatal,
        }
    }

    fn readiness(&self) -> Result<(), String> {
        let s = self.engine.status();
        if let Some(fatal) = s.fatal {
            return Err(format!("the engine stopped: {fatal}"));
        }
        if self.admin.killswitch.is_wiped() {
            return Err(format!("not signing: {}", killswitch::WIPED));
        }
        let signer = self.signer.health();
        if !signer.healthy {
            return Err(format!(
                "signer ({}) unavailable, not voting: {}",
                signer.backend,
                signer.last_error.unwrap_or_default()
            ));
        }
        let n = self.spec.consensus.validators.len();
        let quorum = n - (n - 1) / 3;
        let need = quorum.saturating_sub(1);
        if s.peers_connected < need {
            return Err(format!(
                "connected to {} of {} peers; a quorum needs {need}",
                s.peers_connected,
                n - 1
            ));
        }
        if !s.live {
            return Err(format!(
                "waiting to hear from the network (view {}, height {})",
                s.view, s.height
            ));
        }
        if s.catching_up {
            return Err(format!(
                "catching up: committed view {} while the network is at view {} (height {})",
                s.committed_view, s.view, s.height
            ));
        }
        Ok(())
    }

    fn submit(&self, tx: Vec<u8>, correlation_id: uuid::Uuid) -> SubmitFuture<'_> {
        Box::pin(async move {
            let len = tx.len();
            // Polled inside the request's span, so the current span is the
            // request's: its span id parents the tx's spans on every node.
            let trace = SubmitTrace {
                correlation_id,
                origin: otel::current_origin(),
                received_unix_us: unix_now_us(),
            };
            match self.engine.submit_traced(tx, trace).await {
                Ok(hash) => {
                    tracing::debug!(%correlation_id, hash = %hash.short(), len, "tx admitted");
                    Ok(SubmitTxResponse {
                        hash: hash.to_hex(),
                    })
                }
                Err(e) => {
                    self.count_rejection(e.code());
                    tracing::debug!(%correlation_id, code = e.code(), len, "tx refused: {e}");
                    Err(submit_error(e))
                }
            }
        })
    }

    fn tx(&self, hash: &Hash32) -> Result<Option<TxStatusView>, ApiError> {
        let times = self.engine.tx_times(hash).unwrap_or_default();
        let receipt = self.engine.receipt(hash).map_err(ApiError::Internal)?;
        let pending = receipt.is_none() && self.engine.is_pending(hash);
        Ok(tx_status(
            hash,
            receipt,
            times,
            self.engine.indexes_receipts(),
            pending,
        ))
    }

    fn block(&self, height: u64) -> Result<Option<BlockView>, ApiError> {
        match self
            .engine
            .reader()
            .block_by_height(height)
            .map_err(internal)?
        {
            Some(cb) => self.block_view(&cb).map(Some),
            None => Ok(None),
        }
    }

    fn blocks(&self, from: u64, limit: usize) -> Result<Vec<BlockView>, ApiError> {
        let reader = self.engine.reader();
        let top = reader.committed_height().map_err(internal)?;
        let from = from.max(1);
        if from > top || limit == 0 {
            return Ok(Vec::new());
        }
        // `range` takes a half-open `from..end`; the page ends at the newest
        // committed block inclusive, or it would only show up one commit late.
        let last = top.min(from.saturating_add(limit as u64 - 1));
        reader
            .range(from, last.saturating_add(1))
            .map_err(internal)?
            .iter()
            .map(|cb| self.block_view(cb))
            .collect()
    }

    fn account(&self, key: &PublicKey) -> Result<AccountView, ApiError> {
        let account = self
            .engine
            .reader()
            .app_get(&account_key(key))
            .map_err(internal)?
            .map(|v| decode_account(&v).map_err(ApiError::Internal))
            .transpose()?
            .unwrap_or_default();
        Ok(AccountView {
            account: key.to_hex(),
            balance: account.balance,
            nonce: account.nonce,
            pending_nonce: self.engine.pending_nonce(key, account.nonce),
        })
    }

    fn tables(&self) -> Result<Vec<TableView>, ApiError> {
        game_api::tables(&self.engine)
    }

    fn table(&self, id: u64) -> Result<Option<TableDetailView>, ApiError> {
        game_api::table(&self.engine, id)
    }

    fn rolls(
        &self,
        table: u64,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Option<Vec<TableRoll>>, ApiError> {
        game_api::rolls(&self.engine, table, since, limit)
    }

    fn game(&self) -> Result<GameView, ApiError> {
        game_api::game(&self.engine, &self.spec)
    }

    fn supply(&self) -> Result<SupplyView, ApiError> {
        Ok(game_api::supply(&self.engine))
    }

    fn memory_protection(&self) -> MemoryProtectionView {
        let p = bitcraps_crypto::secret::protection_status();
        MemoryProtectionView {
            mlock_available: p.mlock_available,
            live_buffers: p.live_buffers,
            locked_bytes: p.locked_bytes,
            unlocked_buffers: p.unlocked_buffers,
            lock_failures: p.lock_failures,
            guard_pages: p.guard_pages,
            keys_wiped: self.admin.killswitch.is_wiped(),
        }
    }

    fn admin_wipe(&self, bearer: Option<&[u8]>) -> Result<WipeView, ApiError> {
        self.admin.wipe(bearer, &self.engine)
    }

    fn admin_rotate_identity(&self, bearer: Option<Vec<u8>>) -> AdminFuture<'_> {
        Box::pin(async move {
            self.admin
                .rotate_identity(bearer.as_deref(), &self.engine)
                .await
        })
    }

    fn peers(&self) -> Vec<PeerView> {
        self.engine
            .peers()
            .into_iter()
            .map(|p: PeerStats| {
                let v = self.spec.consensus.validators.get(usize::from(p.peer));
                PeerView {
                    index: p.peer,
                    name: self.name_of(p.peer),
                    address: v.map(|v| v.address.clone()).unwrap_or_default(),
                    connected: p.connected,
                    breaker: breaker_name(p.breaker).into(),
                    rtt_us: p.rtt_us,
                    send_latency_p95_us: p.send_latency_p95_us,
                    bytes_in: p.bytes_in,
                    bytes_out: p.bytes_out,
                    messages_in: p.messages_in,
                    messages_out: p.messages_out,
                    reconnects: p.reconnects,
                    errors: p.errors,
                    dropped_queue_full: p.dropped_queue_full,
                    dropped_rate_limited: p.dropped_rate_limited,
                    penalty_disconnects: p.penalty_disconnects,
                    last_error: p.last_error,
                }
            })
            .collect()
    }

    fn correlation(&self, id: &uuid::Uuid) -> Result<CorrelationView, ApiError> {
        let view = correlation_view(&self.tracker, self.name_of(self.me), self.me, *id);
        if view.entries.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no transaction tracked under correlation id {id}"
            )));
        }
        Ok(view)
    }

    fn correlation_stats(&self) -> Result<TrackerStatsView, ApiError> {
        Ok(stats_view(&self.tracker, self.name_of(self.me), self.me))
    }

    fn wait_height(&self, height: u64, timeout_ms: u64) -> WaitFuture<'_> {
        let mut committed = self.engine.watch_height();
        Box::pin(async move {
            let reached = committed.wait_for(|h| *h >= height);
            // Timing out is the normal end of a long poll, and a stopped
            // engine ends it too: the caller re-reads either way.
            let _ = tokio::time::timeout(Duration::from_millis(timeout_ms), reached).await;
        })
    }

    fn metrics(&self) -> String {
        metrics::render(self)
    }
}

/// What `GET /api/v1/tx/{hash}` says, from what this node has: the stored
/// receipt, the transaction log's times, whether receipts are stored here
/// (`[node] index_receipts`) and whether the mempool holds it. `None`: not
/// known here (404).
fn tx_status(
    hash: &Hash32,
    receipt: Option<Receipt>,
    times: TxTimes,
    indexes_receipts: bool,
    pending: bool,
) -> Option<TxStatusView> {
    let mut view = TxStatusView {
        hash: hash.to_hex(),
        status: String::new(),
        height: None,
        index: None,
        result: None,
        received_ms: times.received_ms,
        committed_ms: times.committed_ms,
    };
    if let Some(r) = receipt {
        view.status = "committed".into();
        view.height = Some(r.height);
        view.index = Some(r.index);
        view.result = Some(match r.result {
            Ok(()) => "ok".into(),
            Err(e) => e.code().into(),
        });
    } else if !indexes_receipts && times.committed_ms.is_some() {
        // No receipt stored here: the transaction log only knows it
        // committed, not where or with what result.
        view.status = "committed".into();
    } else if pending {
        view.status = "pending".into();
    } else {
        return None;
    }
    Some(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::state::Rejection;

    fn h() -> Hash32 {
        Hash32([3; 32])
    }

    #[test]
    fn tx_status_from_receipt_log_and_mempool() {
        let committed = TxTimes {
            received_ms: Some(10),
            committed_ms: Some(20),
            height: Some(7),
        };
        let receipt = Receipt {
            hash: h(),
            height: 7,
            index: 2,
            result: Err(Rejection::BadSignature),
        };
        // A stored receipt says everything, whatever the index setting.
        for indexes in [true, false] {
            let v = tx_status(&h(), Some(receipt), committed, indexes, false).unwrap();
            assert_eq!(
                (v.status.as_str(), v.height, v.index, v.result.as_deref()),
                ("committed", Some(7), Some(2), Some("bad_signature"))
            );
            assert_eq!((v.received_ms, v.committed_ms), (Some(10), Some(20)));
        }
        // No receipt: without the index, the log's commit time is enough.
        let v = tx_status(&h(), None, committed, false, false).unwrap();
        assert_eq!(
            (v.status.as_str(), v.height, v.result),
            ("committed", None, None)
        );
        // With the index, a missing receipt is not taken as committed (a
        // replayed entry gets none).
        assert!(tx_status(&h(), None, committed, true, false).is_none());
        let v = tx_status(&h(), None, TxTimes::default(), true, true).unwrap();
        assert_eq!(v.status, "pending");
        assert!(tx_status(&h(), None, TxTimes::default(), false, false).is_none());
    }
}
