//! The HTTP API over a real socket: the real server (`http::serve`) on
//! 127.0.0.1:0, an in-memory `NodeApi` defined here, reqwest as the client
//! (raw TCP where reqwest cannot misbehave enough, e.g. chunked bodies).
//!
//! Synchronisation is explicit: a blocking `submit` reports that it has
//! started on a channel and waits on a semaphore the test opens. Timeouts are
//! failure deadlines only; the one intentional wait is the server's own
//! request timeout.

#![cfg(feature = "server")]
// clippy's allow-unwrap-in-tests covers #[test] functions, not the helpers here.
#![allow(clippy::unwrap_used)]

use bitcraps_crypto::{hash, Hash32, Keypair, PublicKey};
use bitcraps_node::api::{
    AccountView, BlockView, CorrelationView, ErrorBody, GameView, MemoryProtectionView, PeerView,
    Phase, RailView, SignerView, StatusView, SubmitTxResponse, SupplyView, TableDetailView,
    TableRoll, TableView, TrackerStatsView, TxStatusView, WipeView,
};
use bitcraps_node::http::prom::PromWriter;
use bitcraps_node::http::{self, ApiError, HttpLimits, NodeApi, SubmitFuture, WaitFuture};
use bitcraps_node::localnet::{NodeClient, SubmitOutcome};
use bitcraps_node::trace::tracker::{CorrelationTracker, Origin, Stage, TrackerConfig};
use bitcraps_node::trace::{correlation_view, stats_view};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);
const MAX_BODY_BYTES: usize = 1024;
const BLOCK_COUNT: u64 = 150;

// ---------------------------------------------------------------------------
// The in-memory node

/// Transactions starting with one of these prefixes get the matching answer;
/// anything else is refused as `bad_signature`.
const OK: &[u8] = b"OK";
/// Accepted, but only once the test opens the gate.
const SLOW: &[u8] = b"SLOW";
const PANIC: &[u8] = b"PANIC";
const FULL: &[u8] = b"FULL";
const BROKEN: &[u8] = b"BROKEN";
const ADMIN_TOKEN: &[u8] = b"open-sesame-0123456789";
/// Stage times the test node stamps on accepted transactions (µs).
const RECEIVED_US: u64 = 1_700_000_000_000_000;
const MEMPOOL_US: u64 = RECEIVED_US + 250;

struct TestNode {
    ready: AtomicBool,
    accounts: BTreeMap<PublicKey, AccountView>,
    blocks: Vec<BlockView>,
    txs: Mutex<HashMap<Hash32, TxStatusView>>,
    /// Every `submit` call: the bytes and the correlation id.
    submissions: Mutex<Vec<(Vec<u8>, Uuid)>>,
    /// `SLOW` submissions wait for a permit here.
    gate: Semaphore,
    /// One message per `SLOW` submission that has started waiting.
    entered: mpsc::UnboundedSender<()>,
    /// The `limit` of the last `blocks` call.
    last_blocks_limit: AtomicUsize,
    /// The last `rolls` call: (table, since, limit).
    last_rolls_query: Mutex<Option<(u64, Option<u64>, usize)>>,
    /// Accepted submissions are tracked here under their correlation id.
    tracker: CorrelationTracker,
    /// Blocks committed after start ([`TestNode::commit_late`]), and the
    /// committed height long polls wait on.
    late: Mutex<Vec<BlockView>>,
    height: watch::Sender<u64>,
    /// One message per `wait_height` call, when it starts waiting.
    waiting: mpsc::UnboundedSender<u64>,
    waiting_rx: Mutex<Option<mpsc::UnboundedReceiver<u64>>>,
}

fn test_table() -> TableView {
    TableView {
        id: 1,
        house: alice().to_hex(),
        min_bet: 5,
        max_bet: 500,
        bankroll: 10_000,
        reserved: 30,
        phase: Phase::Point(6),
        closed: false,
        rolls: 12,
        last_roll: None,
        bets_in_play: 2,
        stakes: 30,
    }
}

fn alice() -> PublicKey {
    Keypair::from_seed(&[7; 32]).public()
}

fn block(height: u64) -> BlockView {
    BlockView {
        height,
        view: height + 1,
        id: format!("{height:064x}"),
        parent: format!("{:064x}", height - 1),
        proposer: (height % 4) as u16,
        timestamp_ms: 1_700_000_000_000 + height,
        txs: vec![format!("{:064x}", height * 1000)],
        beacon_round: (height % 2 == 1).then_some(height - 1),
        signers: vec![0, 1, 2],
        state_root: Some(format!("{:064x}", height + 7)),
    }
}

impl TestNode {
    fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<()>) {
        let (entered, entered_rx) = mpsc::unbounded_channel();
        let (waiting, waiting_rx) = mpsc::unbounded_channel();
        let mut accounts = BTreeMap::new();
        accounts.insert(
            alice(),
            AccountView {
                account: alice().to_hex(),
                balance: 1_000,
                nonce: 3,
                pending_nonce: 5,
            },
        );
        let node = TestNode {
            ready: AtomicBool::new(true),
            accounts,
            blocks: (1..=BLOCK_COUNT).map(block).collect(),
            txs: Mutex::new(HashMap::new()),
            submissions: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            entered,
            last_blocks_limit: AtomicUsize::new(0),
            last_rolls_query: Mutex::new(None),
            tracker: CorrelationTracker::new(TrackerConfig::default()),
            late: Mutex::new(Vec::new()),
            height: watch::channel(BLOCK_COUNT).0,
            waiting,
            waiting_rx: Mutex::new(Some(waiting_rx)),
        };
        (Arc::new(node), entered_rx)
    }

    /// Commits the next block after the fixed ones.
    fn commit_late(&self) {
        let mut late = self.late.lock().unwrap();
        let height = BLOCK_COUNT + late.len() as u64 + 1;
        late.push(block(height));
        self.height.send_replace(height);
    }

    fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    fn accept(&self, tx: &[u8]) -> SubmitTxResponse {
        let h = hash(tx);
        self.txs.lock().unwrap().insert(
            h,
            TxStatusView {
                hash: h.to_hex(),
                status: "pending".into(),
                height: None,
                index: None,
                result: None,
                received_ms: Some(1_700_000_000_123),
                committed_ms: None,
            },
        );
        SubmitTxResponse { hash: h.to_hex() }
    }
}

impl NodeApi for TestNode {
    fn status(&self) -> StatusView {
        StatusView {
            node_id: "val0".into(),
            validator_index: 0,
            chain_id: "bitcraps-test".into(),
            version: "0.1.0".into(),
            height: BLOCK_COUNT,
            view: 151,
            committed_id: "ab".repeat(32),
            state_root: "cd".repeat(32),
            catching_up: false,
            sync_rate_blocks_per_s: 0.5,
            peers_connected: 1,
            peers_total: 3,
            mempool_len: self.txs.lock().unwrap().len(),
            committed_tx: 42,
            signer: SignerView {
                backend: "memory".into(),
                healthy: true,
                last_error: None,
                sign_latency_us: Some(25),
            },
            uptime_ms: 1234,
            fatal: None,
        }
    }

    fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("catching up: height 3 of 10".into())
        }
    }

    fn submit(&self, tx: Vec<u8>, correlation_id: Uuid) -> SubmitFuture<'_> {
        Box::pin(async move {
            self.submissions
                .lock()
                .unwrap()
                .push((tx.clone(), correlation_id));
            if tx.starts_with(OK) {
                let h = hash(&tx);
                self.tracker.begin(
                    correlation_id,
                    h,
                    Origin::default(),
                    Stage::Received,
                    RECEIVED_US,
                );
                self.tracker.record(&h, Stage::Mempool, MEMPOOL_US);
                Ok(self.accept(&tx))
            } else if tx.starts_with(SLOW) {
                let _ = self.entered.send(());
                let permit = self
                    .gate
                    .acquire()
                    .await
                    .map_err(|_| ApiError::Unavailable("gate closed".into()))?;
                permit.forget();
                Ok(self.accept(&tx))
            } else if tx.starts_with(PANIC) {
                panic!("test node asked to panic");
            } else if tx.starts_with(FULL) {
                Err(ApiError::Unavailable("mempool is full".into()))
            } else if tx.starts_with(BROKEN) {
                Err(ApiError::Internal("redb: /secret/node/data corrupt".into()))
            } else {
                Err(ApiError::Rejected {
                    code: "bad_signature".into(),
                    message: "signature does not verify".into(),
                })
            }
        })
    }

    fn memory_protection(&self) -> MemoryProtectionView {
        MemoryProtectionView {
            mlock_available: true,
            live_buffers: 1,
            locked_bytes: 4096,
            unlocked_buffers: 0,
            lock_failures: 0,
            guard_pages: true,
            keys_wiped: false,
        }
    }

    fn admin_wipe(&self, bearer: Option<&[u8]>) -> Result<WipeView, ApiError> {
        match bearer {
            Some(ADMIN_TOKEN) => Ok(WipeView {
                wiped_now: true,
                signer_backend: "memory".into(),
                message: "wiped".into(),
            }),
            _ => Err(ApiError::Unauthorized(
                "missing or wrong bearer token".into(),
            )),
        }
    }

    fn tables(&self) -> Result<Vec<TableView>, ApiError> {
        Ok(vec![test_table()])
    }

    fn table(&self, id: u64) -> Result<Option<TableDetailView>, ApiError> {
        Ok((id == 1).then(|| TableDetailView {
            table: test_table(),
            bets: Vec::new(),
            rails: vec![RailView {
                player: alice().to_hex(),
                amount: 60,
            }],
        }))
    }

    fn rolls(
        &self,
        table: u64,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Option<Vec<TableRoll>>, ApiError> {
        self.last_rolls_query
            .lock()
            .unwrap()
            .replace((table, since, limit));
        Ok((table == 1).then(Vec::new))
    }

    fn game(&self) -> Result<GameView, ApiError> {
        Err(ApiError::Internal("redb: /secret/node/data corrupt".into()))
    }

    fn supply(&self) -> Result<SupplyView, ApiError> {
        Ok(SupplyView {
            height: BLOCK_COUNT,
            balances: 900,
            escrow: 100,
            genesis: 1000,
            conserved: true,
        })
    }

    fn tx(&self, hash: &Hash32) -> Result<Option<TxStatusView>, ApiError> {
        Ok(self.txs.lock().unwrap().get(hash).cloned())
    }

    fn block(&self, height: u64) -> Result<Option<BlockView>, ApiError> {
        Ok(self.blocks.iter().find(|b| b.height == height).cloned())
    }

    fn blocks(&self, from: u64, limit: usize) -> Result<Vec<BlockView>, ApiError> {
        self.last_blocks_limit.store(limit, Ordering::SeqCst);
        let late = self.late.lock().unwrap();
        Ok(self
            .blocks
            .iter()
            .chain(late.iter())
            .filter(|b| b.height >= from)
            .take(limit)
            .cloned()
            .collect())
    }

    fn wait_height(&self, height: u64, timeout_ms: u64) -> WaitFuture<'_> {
        let mut rx = self.height.subscribe();
        let _ = self.waiting.send(timeout_ms);
        Box::pin(async move {
            let _ = timeout(
                Duration::from_millis(timeout_ms),
                rx.wait_for(|h| *h >= height),
            )
            .await;
        })
    }

    fn account(&self, key: &PublicKey) -> Result<AccountView, ApiError> {
        Ok(self.accounts.get(key).cloned().unwrap_or(AccountView {
            account: key.to_hex(),
            balance: 0,
            nonce: 0,
            pending_nonce: 0,
        }))
    }

    fn peers(&self) -> Vec<PeerView> {
        vec![PeerView {
            index: 1,
            name: "val1".into(),
            address: "127.0.0.1:9001".into(),
            connected: true,
            breaker: "closed".into(),
            rtt_us: Some(250),
            send_latency_p95_us: None,
            bytes_in: 10,
            bytes_out: 20,
            messages_in: 1,
            messages_out: 2,
            reconnects: 0,
            errors: 0,
            dropped_queue_full: 0,
            dropped_rate_limited: 0,
            penalty_disconnects: 0,
            last_error: None,
        }]
    }

    fn correlation(&self, id: &Uuid) -> Result<CorrelationView, ApiError> {
        let view = correlation_view(&self.tracker, "val0".into(), 0, *id);
        if view.entries.is_empty() {
            return Err(ApiError::NotFound(format!("nothing under {id}")));
        }
        Ok(view)
    }

    fn correlation_stats(&self) -> Result<TrackerStatsView, ApiError> {
        Ok(stats_view(&self.tracker, "val0".into(), 0))
    }

    fn metrics(&self) -> String {
        let mut w = PromWriter::new();
        w.counter(
            "bitcraps_test_submissions_total",
            "Transactions submitted.",
            &[],
            self.submissions.lock().unwrap().len() as u64,
        );
        w.gauge("bitcraps_height", "Committed height.", &[], 150.0);
        w.finish()
    }
}

// ---------------------------------------------------------------------------
// Harness

struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
    node: Arc<TestNode>,
    entered: mpsc::UnboundedReceiver<()>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Limits that tests not about limits never hit.
fn roomy() -> HttpLimits {
    HttpLimits {
        max_body_bytes: MAX_BODY_BYTES,
        requests_per_s: 100_000,
        burst: 100_000,
        max_clients: 64,
        max_concurrent_requests: 64,
        request_timeout_ms: 10_000,
    }
}

async fn start(limits: HttpLimits) -> Server {
    let (node, entered) = TestNode::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let api: Arc<dyn NodeApi> = node.clone();
    let task = tokio::spawn(http::serve(listener, api, limits, async move {
        let _ = shutdown_rx.await;
    }));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    Server {
        addr,
        client,
        node,
        entered,
        shutdown: Some(shutdown_tx),
        task,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn submit(&self, tx: &[u8]) -> reqwest::Response {
        self.post_json("/api/v1/tx", &json!({ "tx": hex::encode(tx) }).to_string())
            .await
    }

    /// Waits until `n` `SLOW` submissions are blocked in the node.
    async fn wait_entered(&mut self, n: usize) {
        for _ in 0..n {
            timeout(DEADLINE, self.entered.recv())
                .await
                .expect("submit never started")
                .unwrap();
        }
    }
}

/// The response's correlation id; asserts it is there and a UUID.
fn correlation(resp: &reqwest::Response) -> Uuid {
    let value = resp
        .headers()
        .get("x-correlation-id")
        .unwrap_or_else(|| panic!("no x-correlation-id on {}", resp.status()));
    Uuid::parse_str(value.to_str().unwrap()).unwrap()
}

async fn ok_json(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    correlation(&resp);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

/// Asserts an error response: status, JSON `ErrorBody` with `code`, and a
/// correlation id. Returns the body.
async fn error(resp: reqwest::Response, status: u16, code: &str) -> ErrorBody {
    assert_eq!(resp.status().as_u16(), status, "for expected {code}");
    correlation(&resp);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.error, code, "{body:?}");
    body
}

/// A raw HTTP/1.1 exchange: writes `request` (write errors are ignored: the
/// server may answer and close before reading everything) and reads one
/// response. Returns status, lowercase headers and body.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(parsed) = parse_response(&buf) {
                return parsed;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => panic!(
                    "connection ended before a full response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    timeout(DEADLINE, read).await.expect("no response in time")
}

fn parse_response(buf: &[u8]) -> Option<(u16, HashMap<String, String>, String)> {
    let text = std::str::from_utf8(buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length")?.parse().ok()?;
    (body.len() >= length).then(|| (status, headers, body[..length].to_owned()))
}

// ---------------------------------------------------------------------------
// Routes

#[tokio::test]
async fn livez_and_readyz() {
    let s = start(roomy()).await;
    let resp = s.get("/livez").await;
    assert_eq!(resp.status(), 200);
    correlation(&resp);
    assert_eq!(resp.text().await.unwrap(), "ok");

    assert_eq!(
        ok_json(s.get("/readyz").await, 200).await,
        json!({ "ready": true })
    );
}

#[tokio::test]
async fn readyz_is_503_with_the_reason_until_ready() {
    let s = start(roomy()).await;
    s.node.ready.store(false, Ordering::SeqCst);
    let body = error(s.get("/readyz").await, 503, "not_ready").await;
    assert_eq!(body.message, "catching up: height 3 of 10");
    s.node.ready.store(true, Ordering::SeqCst);
    assert_eq!(
        ok_json(s.get("/readyz").await, 200).await,
        json!({ "ready": true })
    );
}

#[tokio::test]
async fn status_exact_json() {
    let s = start(roomy()).await;
    assert_eq!(
        ok_json(s.get("/status").await, 200).await,
        json!({
            "node_id": "val0",
            "validator_index": 0,
            "chain_id": "bitcraps-test",
            "version": "0.1.0",
            "height": 150,
            "view": 151,
            "committed_id": "ab".repeat(32),
            "state_root": "cd".repeat(32),
            "catching_up": false,
            "sync_rate_blocks_per_s": 0.5,
            "peers_connected": 1,
            "peers_total": 3,
            "mempool_len": 0,
            "committed_tx": 42,
            "signer": { "backend": "memory", "healthy": true, "last_error": null, "sign_latency_us": 25 },
            "uptime_ms": 1234,
            "fatal": null
        })
    );
}

#[tokio::test]
async fn metrics_is_prometheus_text() {
    let s = start(roomy()).await;
    let resp = s.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    correlation(&resp);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "# HELP bitcraps_test_submissions_total Transactions submitted.\n\
         # TYPE bitcraps_test_submissions_total counter\n\
         bitcraps_test_submissions_total 0\n\
         # HELP bitcraps_height Committed height.\n\
         # TYPE bitcraps_height gauge\n\
         bitcraps_height 150\n"
    );
}

#[tokio::test]
async fn peers_exact_json() {
    let s = start(roomy()).await;
    assert_eq!(
        ok_json(s.get("/api/v1/peers").await, 200).await,
        json!([{
            "index": 1,
            "name": "val1",
            "address": "127.0.0.1:9001",
            "connected": true,
            "breaker": "closed",
            "rtt_us": 250,
            "send_latency_p95_us": null,
            "bytes_in": 10,
            "bytes_out": 20,
            "messages_in": 1,
            "messages_out": 2,
            "reconnects": 0,
            "errors": 0,
            "dropped_queue_full": 0,
            "dropped_rate_limited": 0,
            "penalty_disconnects": 0,
            "last_error": null
        }])
    );
}

#[tokio::test]
async fn submit_then_look_up_the_transaction() {
    let s = start(roomy()).await;
    let tx = b"OK transfer 10 chips";
    let expected_hash = hash(tx).to_hex();
    let sent_id = Uuid::new_v4();
    let resp = s
        .client
        .post(s.url("/api/v1/tx"))
        .header("x-correlation-id", sent_id.to_string())
        .json(&json!({ "tx": hex::encode(tx) }))
        .send()
        .await
        .unwrap();
    assert_eq!(correlation(&resp), sent_id);
    assert_eq!(
        ok_json(resp, 202).await,
        json!({ "hash": expected_hash.clone() })
    );
    // The node got the decoded bytes and the request's correlation id.
    assert_eq!(
        s.node.submissions.lock().unwrap().as_slice(),
        &[(tx.to_vec(), sent_id)]
    );

    assert_eq!(
        ok_json(s.get(&format!("/api/v1/tx/{expected_hash}")).await, 200).await,
        json!({
            "hash": expected_hash,
            "status": "pending",
            "height": null,
            "index": null,
            "result": null,
            "received_ms": 1_700_000_000_123u64,
            "committed_ms": null
        })
    );
    // Uppercase hex names the same hash.
    let upper = expected_hash.to_ascii_uppercase();
    assert_eq!(s.get(&format!("/api/v1/tx/{upper}")).await.status(), 200);
}

#[tokio::test]
async fn tx_lookup_errors() {
    let s = start(roomy()).await;
    let unknown = "00".repeat(32);
    let body = error(
        s.get(&format!("/api/v1/tx/{unknown}")).await,
        404,
        "not_found",
    )
    .await;
    assert!(body.message.contains(&unknown), "{body:?}");
    for bad in ["xyz", &"0".repeat(63), &"0".repeat(66), &"zz".repeat(32)] {
        let body = error(
            s.get(&format!("/api/v1/tx/{bad}")).await,
            400,
            "bad_request",
        )
        .await;
        assert!(body.message.starts_with("hash must be 64 hex"), "{body:?}");
    }
}

#[tokio::test]
async fn submit_errors_map_to_statuses() {
    let s = start(roomy()).await;
    let body = error(
        s.post_json("/api/v1/tx", r#"{"tx":"zz"}"#).await,
        400,
        "bad_request",
    )
    .await;
    assert!(
        body.message.starts_with("tx is not valid hex: "),
        "{body:?}"
    );
    let body = error(
        s.post_json("/api/v1/tx", r#"{"tx":"abc"}"#).await,
        400,
        "bad_request",
    )
    .await;
    assert!(
        body.message.starts_with("tx is not valid hex: "),
        "{body:?}"
    );

    let body = error(s.submit(b"forged").await, 422, "bad_signature").await;
    assert_eq!(body.message, "signature does not verify");
    let body = error(s.submit(FULL).await, 503, "unavailable").await;
    assert_eq!(body.message, "mempool is full");
    let body = error(s.submit(BROKEN).await, 500, "internal").await;
    assert!(!body.message.contains("secret"), "{body:?}");
}

#[tokio::test]
async fn block_by_height() {
    let s = start(roomy()).await;
    assert_eq!(
        ok_json(s.get("/api/v1/blocks/3").await, 200).await,
        json!({
            "height": 3,
            "view": 4,
            "id": format!("{:064x}", 3),
            "parent": format!("{:064x}", 2),
            "proposer": 3,
            "timestamp_ms": 1_700_000_000_003u64,
            "txs": [format!("{:064x}", 3000)],
            "beacon_round": 2,
            "signers": [0, 1, 2],
            "state_root": format!("{:064x}", 10)
        })
    );
    error(s.get("/api/v1/blocks/999").await, 404, "not_found").await;
    for bad in ["abc", "-1", "18446744073709551616"] {
        error(
            s.get(&format!("/api/v1/blocks/{bad}")).await,
            400,
            "bad_request",
        )
        .await;
    }
}

#[tokio::test]
async fn block_ranges_default_and_cap_the_limit() {
    let s = start(roomy()).await;
    let heights = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b["height"].as_u64().unwrap())
            .collect()
    };
    let v = ok_json(s.get("/api/v1/blocks").await, 200).await;
    assert_eq!(heights(&v), (1..=20).collect::<Vec<_>>());
    assert_eq!(v[0], serde_json::to_value(block(1)).unwrap());

    let v = ok_json(s.get("/api/v1/blocks?from=5&limit=3").await, 200).await;
    assert_eq!(heights(&v), [5, 6, 7]);

    let v = ok_json(s.get("/api/v1/blocks?from=2&limit=1000").await, 200).await;
    assert_eq!(heights(&v), (2..=101).collect::<Vec<_>>());
    assert_eq!(s.node.last_blocks_limit.load(Ordering::SeqCst), 100);

    let v = ok_json(s.get("/api/v1/blocks?from=149").await, 200).await;
    assert_eq!(heights(&v), [149, 150]);

    for bad in ["limit=abc", "from=-1", "limit=-5"] {
        error(
            s.get(&format!("/api/v1/blocks?{bad}")).await,
            400,
            "bad_request",
        )
        .await;
    }
}

/// `wait_ms` makes `GET /api/v1/blocks` a long poll: an empty page waits
/// for the next commit (answered with it), or for `wait_ms` (empty), capped
/// at `BLOCKS_MAX_WAIT_MS`; without it nothing waits.
#[tokio::test]
async fn block_ranges_long_poll_for_the_next_commit() {
    let s = start(roomy()).await;
    let mut waiting = s.node.waiting_rx.lock().unwrap().take().unwrap();
    let next = BLOCK_COUNT + 1;
    // Without wait_ms: an empty page at once, no wait.
    let v = ok_json(s.get(&format!("/api/v1/blocks?from={next}")).await, 200).await;
    assert_eq!(v, json!([]));
    assert!(
        waiting.try_recv().is_err(),
        "nothing may wait without wait_ms"
    );
    // A page that has blocks is answered without waiting either.
    let v = ok_json(
        s.get(&format!("/api/v1/blocks?from={BLOCK_COUNT}&wait_ms=5000"))
            .await,
        200,
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(waiting.try_recv().is_err());
    // An empty page waits; the commit that happens meanwhile is the answer.
    let (client, url) = (
        s.client.clone(),
        s.url(&format!("/api/v1/blocks?from={next}&wait_ms=4000")),
    );
    let poll = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    let asked = timeout(Duration::from_secs(10), waiting.recv())
        .await
        .unwrap();
    assert_eq!(asked, Some(4000));
    s.node.commit_late();
    let resp = timeout(Duration::from_secs(10), poll)
        .await
        .unwrap()
        .unwrap();
    let v = ok_json(resp, 200).await;
    assert_eq!(v, serde_json::to_value(vec![block(next)]).unwrap());
    // Nothing commits: an empty page after the wait, which is capped.
    let v = ok_json(
        s.get(&format!("/api/v1/blocks?from={}&wait_ms=20", next + 1))
            .await,
        200,
    )
    .await;
    assert_eq!(v, json!([]));
    assert_eq!(waiting.recv().await, Some(20));
    let (client, url) = (
        s.client.clone(),
        s.url(&format!("/api/v1/blocks?from={}&wait_ms=999999", next + 1)),
    );
    let poll = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    let asked = timeout(Duration::from_secs(10), waiting.recv())
        .await
        .unwrap();
    assert_eq!(asked, Some(http::BLOCKS_MAX_WAIT_MS));
    s.node.commit_late();
    let v = ok_json(
        timeout(Duration::from_secs(10), poll)
            .await
            .unwrap()
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v, serde_json::to_value(vec![block(next + 1)]).unwrap());
}

/// A long poll never outlives the request timeout: the granted wait is at
/// most half of `request_timeout_ms`, so the answer is an empty page, not a
/// 503 from the deadline.
#[tokio::test]
async fn long_poll_waits_at_most_half_the_request_timeout() {
    let s = start(HttpLimits {
        request_timeout_ms: 400,
        ..roomy()
    })
    .await;
    let mut waiting = s.node.waiting_rx.lock().unwrap().take().unwrap();
    let v = ok_json(
        s.get(&format!(
            "/api/v1/blocks?from={}&wait_ms=5000",
            BLOCK_COUNT + 1
        ))
        .await,
        200,
    )
    .await;
    assert_eq!(v, json!([]));
    assert_eq!(waiting.recv().await, Some(200));
}

#[tokio::test]
async fn game_routes() {
    let s = start(roomy()).await;
    let tables = ok_json(s.get("/api/v1/tables").await, 200).await;
    assert_eq!(tables[0]["id"], 1);
    assert_eq!(tables[0]["phase"], json!({ "point": 6 }));
    let t = ok_json(s.get("/api/v1/tables/1").await, 200).await;
    assert_eq!(t["bankroll"], 10_000, "the table fields are flattened: {t}");
    assert_eq!(t["rails"][0]["amount"], 60);
    error(s.get("/api/v1/tables/7").await, 404, "not_found").await;
    error(s.get("/api/v1/tables/seven").await, 400, "bad_request").await;
    error(s.get("/api/v1/tables/-1").await, 400, "bad_request").await;

    assert_eq!(
        ok_json(s.get("/api/v1/tables/1/rolls").await, 200).await,
        json!([])
    );
    assert_eq!(
        *s.node.last_rolls_query.lock().unwrap(),
        Some((1, None, 20))
    );
    ok_json(s.get("/api/v1/tables/1/rolls?since=5&limit=3").await, 200).await;
    assert_eq!(
        *s.node.last_rolls_query.lock().unwrap(),
        Some((1, Some(5), 3))
    );
    error(s.get("/api/v1/tables/2/rolls").await, 404, "not_found").await;
    error(
        s.get("/api/v1/tables/1/rolls?since=x").await,
        400,
        "bad_request",
    )
    .await;

    let supply = ok_json(s.get("/api/v1/supply").await, 200).await;
    assert_eq!(supply["conserved"], true);
    // Internal errors are reported without their details.
    let body = error(s.get("/api/v1/game").await, 500, "internal").await;
    assert!(!body.message.contains("secret"), "{body:?}");
}

#[tokio::test]
async fn admin_wipe_needs_the_bearer_token() {
    let s = start(roomy()).await;
    let post = |auth: Option<String>| {
        let mut req = s.client.post(s.url("/api/v1/admin/wipe"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    error(post(None).await.unwrap(), 401, "unauthorized").await;
    error(
        post(Some("Bearer nope".into())).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let token = String::from_utf8(ADMIN_TOKEN.to_vec()).unwrap();
    // The scheme must be Bearer.
    error(
        post(Some(format!("Basic {token}"))).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let ok = ok_json(post(Some(format!("Bearer {token}"))).await.unwrap(), 200).await;
    assert_eq!(ok["wiped_now"], true);
    // GET is not a wipe.
    error(s.get("/api/v1/admin/wipe").await, 405, "method_not_allowed").await;
    let m = ok_json(s.get("/api/v1/memory-protection/status").await, 200).await;
    assert_eq!(m["guard_pages"], true);
}

#[tokio::test]
async fn accounts() {
    let s = start(roomy()).await;
    let key = alice().to_hex();
    assert_eq!(
        ok_json(s.get(&format!("/api/v1/accounts/{key}")).await, 200).await,
        json!({ "account": key, "balance": 1000, "nonce": 3, "pending_nonce": 5 })
    );
    let bob = Keypair::from_seed(&[9; 32]).public().to_hex();
    assert_eq!(
        ok_json(s.get(&format!("/api/v1/accounts/{bob}")).await, 200).await,
        json!({ "account": bob, "balance": 0, "nonce": 0, "pending_nonce": 0 })
    );

    // Not hex, wrong length, a small-order point, and a y with no curve point.
    let identity = format!("01{}", "00".repeat(31));
    let off_curve = (2u8..=255)
        .map(|b| {
            let mut bytes = [0u8; 32];
            bytes[0] = b;
            hex::encode(bytes)
        })
        .find(|h| PublicKey::from_hex(h).is_err() && h != &identity)
        .unwrap();
    assert!(PublicKey::from_hex(&identity).is_err());
    for bad in ["nothex", &"ab".repeat(31), &identity, &off_curve] {
        let body = error(
            s.get(&format!("/api/v1/accounts/{bad}")).await,
            400,
            "bad_request",
        )
        .await;
        assert!(body.message.starts_with("account must be"), "{body:?}");
    }
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_405_as_json() {
    let s = start(roomy()).await;
    for path in ["/nope", "/api/v1", "/api/v1/tx/", "/api/v2/peers"] {
        error(s.get(path).await, 404, "not_found").await;
    }
    let resp = s.client.delete(s.url("/status")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET,HEAD");
    error(resp, 405, "method_not_allowed").await;
    let resp = s.client.get(s.url("/api/v1/tx")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    error(resp, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn correlation_timeline_of_a_submitted_transaction() {
    let s = start(roomy()).await;
    let id = Uuid::new_v4();
    let (tx1, tx2) = (b"OK first".as_slice(), b"OK second".as_slice());
    for tx in [tx1, tx2] {
        let resp = s
            .client
            .post(s.url("/api/v1/tx"))
            .header("x-correlation-id", id.to_string())
            .json(&json!({ "tx": hex::encode(tx) }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    // A refused submission under another id is not tracked.
    let other = Uuid::new_v4();
    let resp = s
        .client
        .post(s.url("/api/v1/tx"))
        .header("x-correlation-id", other.to_string())
        .json(&json!({ "tx": hex::encode(b"forged") }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    let timeline = |tx: &[u8]| {
        json!({
            "correlation_id": id.to_string(),
            "tx_hash": hash(tx).to_hex(),
            "height": null,
            "outcome": null,
            "completed": false,
            "stages": [
                { "stage": "received", "at_unix_us": RECEIVED_US },
                { "stage": "mempool", "at_unix_us": MEMPOOL_US }
            ]
        })
    };
    let want = json!({
        "node": "val0",
        "validator": 0,
        "correlation_id": id.to_string(),
        "entries": [timeline(tx1), timeline(tx2)]
    });
    let got = ok_json(s.get(&format!("/api/v1/correlation/{id}")).await, 200).await;
    assert_eq!(got, want);
    // The typed view parses the same body; uppercase and braced forms of the
    // id name the same id.
    let typed: CorrelationView = serde_json::from_value(got).unwrap();
    assert_eq!(typed.entries.len(), 2);
    let upper = id.to_string().to_ascii_uppercase();
    assert_eq!(
        ok_json(s.get(&format!("/api/v1/correlation/{upper}")).await, 200).await,
        want
    );
    let braced = format!("%7B{id}%7D");
    assert_eq!(
        ok_json(s.get(&format!("/api/v1/correlation/{braced}")).await, 200).await,
        want
    );

    // Unknown ids are 404, whatever their version.
    for unknown in [other, Uuid::nil(), Uuid::now_v7()] {
        let body = error(
            s.get(&format!("/api/v1/correlation/{unknown}")).await,
            404,
            "not_found",
        )
        .await;
        assert!(body.message.contains(&unknown.to_string()), "{body:?}");
    }
    // Anything that is not a UUID is 400, before the node is asked.
    for bad in [
        "nope",
        "1234",
        &id.to_string()[..35],
        &format!("{id}0"),
        "%20",
    ] {
        let body = error(
            s.get(&format!("/api/v1/correlation/{bad}")).await,
            400,
            "bad_request",
        )
        .await;
        assert!(
            body.message.starts_with("correlation id must be a UUID"),
            "{bad}: {body:?}"
        );
    }
    // The collection itself is not a route.
    error(s.get("/api/v1/correlation").await, 404, "not_found").await;
    let resp = s
        .client
        .post(s.url(&format!("/api/v1/correlation/{id}")))
        .send()
        .await
        .unwrap();
    error(resp, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn correlation_stats_route() {
    let s = start(roomy()).await;
    let empty = ok_json(s.get("/api/v1/correlation/stats").await, 200).await;
    assert_eq!(
        empty,
        json!({
            "node": "val0",
            "validator": 0,
            "active": 0,
            "completed": 0,
            "tracked_total": 0,
            "completed_total": 0,
            "evicted_capacity_total": 0,
            "evicted_age_total": 0,
            "max_entries": 65_536,
            "max_age_ms": 600_000,
            "stage_latency_us": {}
        })
    );

    assert_eq!(s.submit(b"OK one").await.status(), 202);
    assert_eq!(s.submit(b"OK two").await.status(), 202);
    // One of them executes 1 ms after it was received.
    let one = hash(b"OK one");
    assert!(s
        .node
        .tracker
        .record(&one, Stage::Executed, RECEIVED_US + 1_000));
    let stats: TrackerStatsView =
        serde_json::from_value(ok_json(s.get("/api/v1/correlation/stats").await, 200).await)
            .unwrap();
    assert_eq!((stats.active, stats.completed), (1, 1));
    assert_eq!((stats.tracked_total, stats.completed_total), (2, 1));
    let executed = stats.stage_latency_us["executed"];
    assert_eq!(
        (executed.count, executed.p50, executed.max),
        (1, 1_000, 1_000)
    );
    assert_eq!(stats.stage_latency_us["mempool"].max, 250);
    assert_eq!(stats.stage_latency_us["received"].max, 0);
    // "stats" is the stats route, not an id that fails to parse.
    assert_eq!(s.get("/api/v1/correlation/stats").await.status(), 200);
}

// ---------------------------------------------------------------------------
// Correlation ids

#[tokio::test]
async fn correlation_id_kept_when_valid_else_generated_v7() {
    let s = start(roomy()).await;

    // Kept, on success and on every kind of error answer.
    let sent = Uuid::new_v4();
    let with_id = |req: reqwest::RequestBuilder| req.header("x-correlation-id", sent.to_string());
    let responses = [
        with_id(s.client.get(s.url("/status"))),
        with_id(s.client.get(s.url("/nope"))),
        with_id(s.client.delete(s.url("/status"))),
        with_id(s.client.post(s.url("/api/v1/tx")))
            .header("content-type", "application/json")
            .body(vec![b' '; MAX_BODY_BYTES + 1]),
        with_id(s.client.post(s.url("/api/v1/tx"))).json(&json!({ "tx": "00" })),
        with_id(s.client.post(s.url("/api/v1/tx"))).body("x"),
    ];
    let mut statuses = Vec::new();
    for req in responses {
        let resp = req.send().await.unwrap();
        statuses.push(resp.status().as_u16());
        assert_eq!(correlation(&resp), sent, "status {}", resp.status());
    }
    assert_eq!(statuses, [200, 404, 405, 413, 422, 415]);

    // A v7 from a client is kept too (any version is fine).
    let v7 = Uuid::now_v7();
    let resp = s
        .client
        .get(s.url("/livez"))
        .header("x-correlation-id", v7.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(correlation(&resp), v7);

    // Generated when missing or invalid: v7, fresh per request.
    let mut seen = Vec::new();
    for header in [None, Some("not-a-uuid"), Some(""), Some("1234")] {
        let mut req = s.client.get(s.url("/status"));
        if let Some(h) = header {
            req = req.header("x-correlation-id", h);
        }
        let id = correlation(&req.send().await.unwrap());
        assert_eq!(id.get_version_num(), 7, "for {header:?}");
        assert!(!seen.contains(&id));
        seen.push(id);
    }
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// Current-thread runtime: the server's tasks run on this thread, under the
// thread-local subscriber set here.
#[tokio::test]
async fn each_request_is_logged_in_a_span_with_the_matched_path() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = start(roomy()).await;

    let block_id = Uuid::new_v4();
    let resp = s
        .client
        .get(s.url("/api/v1/blocks/7"))
        .header("x-correlation-id", block_id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let unmatched_id = Uuid::new_v4();
    let resp = s
        .client
        .get(s.url("/no/such/secret-path"))
        .header("x-correlation-id", unmatched_id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = |id: Uuid| {
        text.lines()
            .find(|l| l.contains("request done") && l.contains(&id.to_string()))
            .unwrap_or_else(|| panic!("no log line for {id} in:\n{text}"))
            .to_owned()
    };
    let block_line = line(block_id);
    // The span also carries the trace id (the correlation id's 32 hex
    // digits, `trace::otel`) and the OpenTelemetry name and kind.
    assert!(
        block_line.contains(&format!(
            "http_request{{method=GET path=/api/v1/blocks/{{height}} correlation_id={block_id} trace_id={}",
            block_id.simple()
        )),
        "{block_line}"
    );
    assert!(
        block_line.contains("status=200 latency_us="),
        "{block_line}"
    );
    let unmatched_line = line(unmatched_id);
    assert!(
        unmatched_line.contains("path=<unmatched>"),
        "{unmatched_line}"
    );
    assert!(unmatched_line.contains("status=404"), "{unmatched_line}");
    assert!(!text.contains("secret-path"), "raw path logged:\n{text}");
}

// ---------------------------------------------------------------------------
// Bodies

#[tokio::test]
async fn body_validation() {
    let s = start(roomy()).await;
    let body = error(
        s.post_json("/api/v1/tx", r#"{"tx": "00""#).await,
        400,
        "bad_request",
    )
    .await;
    assert!(body.message.starts_with("invalid JSON body: "), "{body:?}");

    let body = error(
        s.post_json("/api/v1/tx", r#"{"tx":"00","fee":1}"#).await,
        400,
        "bad_request",
    )
    .await;
    assert!(body.message.contains("unknown field `fee`"), "{body:?}");

    for wrong in [r#"{"tx":5}"#, "[]", "", r#"{}"#] {
        error(s.post_json("/api/v1/tx", wrong).await, 400, "bad_request").await;
    }

    // Missing and wrong content types.
    let resp = s
        .client
        .post(s.url("/api/v1/tx"))
        .body(r#"{"tx":"00"}"#)
        .send()
        .await
        .unwrap();
    error(resp, 415, "unsupported_media_type").await;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonp",
    ] {
        let resp = s
            .client
            .post(s.url("/api/v1/tx"))
            .header("content-type", ct)
            .body(r#"{"tx":"00"}"#)
            .send()
            .await
            .unwrap();
        error(resp, 415, "unsupported_media_type").await;
    }
    // Parameters are fine.
    let resp = s
        .client
        .post(s.url("/api/v1/tx"))
        .header("content-type", "application/json; charset=utf-8")
        .body(format!(r#"{{"tx":"{}"}}"#, hex::encode(OK)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn oversize_body_with_content_length_is_413() {
    let s = start(roomy()).await;
    // Exactly at the limit is fine (it then fails as JSON, not as size).
    let at_limit = format!(r#"{{"tx":"{}"}}"#, "0".repeat(MAX_BODY_BYTES - 9));
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    error(
        s.post_json("/api/v1/tx", &at_limit).await,
        400,
        "bad_request",
    )
    .await;

    let over = format!(r#"{{"tx":"{}"}}"#, "0".repeat(MAX_BODY_BYTES - 8));
    let body = error(
        s.post_json("/api/v1/tx", &over).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(
        body.message,
        format!("request body exceeds {MAX_BODY_BYTES} bytes")
    );
    // The server still works.
    assert_eq!(s.get("/status").await.status(), 200);
}

#[tokio::test]
async fn oversize_chunked_body_is_413() {
    let s = start(roomy()).await;
    let mut request = b"POST /api/v1/tx HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\nx-correlation-id: 67e55044-10b1-426f-9247-bb680e5fe0c8\r\n\r\n"
        .to_vec();
    let chunk = vec![b' '; 512];
    for _ in 0..4 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, headers, body) = raw_exchange(s.addr, &request).await;
    assert_eq!(status, 413);
    assert_eq!(
        headers["x-correlation-id"],
        "67e55044-10b1-426f-9247-bb680e5fe0c8"
    );
    let body: ErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!(body.error, "payload_too_large");

    // A chunked body within the limit goes through.
    let tx = json!({ "tx": hex::encode(OK) }).to_string();
    let request = format!(
        "POST /api/v1/tx HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{tx}\r\n0\r\n\r\n",
        tx.len()
    );
    let (status, _, _) = raw_exchange(s.addr, request.as_bytes()).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn declared_oversize_body_is_refused_before_it_arrives() {
    let s = start(roomy()).await;
    // Claims a megabyte, sends ten bytes and waits: only a server that
    // decides on the header answers before the deadline.
    let request = b"POST /api/v1/tx HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
                    content-length: 1048576\r\n\r\n{\"tx\":\"00";
    let (status, headers, body) = raw_exchange(s.addr, request).await;
    assert_eq!(status, 413);
    assert!(Uuid::parse_str(&headers["x-correlation-id"]).is_ok());
    let body: ErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!(body.error, "payload_too_large");
}

// ---------------------------------------------------------------------------
// Batch submit: POST /api/v1/txs

impl Server {
    async fn submit_batch(&self, txs: &[&[u8]]) -> reqwest::Response {
        let txs: Vec<String> = txs.iter().map(hex::encode).collect();
        self.post_json("/api/v1/txs", &json!({ "txs": txs }).to_string())
            .await
    }
}

/// What `POST /api/v1/tx` answers for `tx` alone, as a batch result.
async fn single_route_result(s: &Server, body: Value) -> Value {
    let resp = s.post_json("/api/v1/tx", &body.to_string()).await;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    if status == 202 {
        json!({ "hash": v["hash"] })
    } else {
        json!({ "error": { "code": v["error"], "message": v["message"], "status": status } })
    }
}

#[tokio::test]
async fn batch_submit_answers_each_transaction_as_the_single_route_would() {
    let s = start(roomy()).await;
    let sent_id = Uuid::new_v4();
    let items = [
        hex::encode(b"OK first"),
        "zz".to_owned(),
        hex::encode(b"forged"),
        hex::encode(FULL),
        hex::encode(BROKEN),
        "abc".to_owned(),
        hex::encode(b"OK second"),
    ];
    let resp = s
        .client
        .post(s.url("/api/v1/txs"))
        .header("x-correlation-id", sent_id.to_string())
        .json(&json!({ "txs": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(correlation(&resp), sent_id);
    let v = ok_json(resp, 200).await;
    assert_eq!(v["accepted"], 2, "{v:#}");
    assert_eq!(v["refused"], 5, "{v:#}");
    let results = v["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), items.len(), "{v:#}");
    assert_eq!(results[0], json!({ "hash": hash(b"OK first").to_hex() }));
    assert_eq!(results[1]["error"]["code"], "bad_request", "{v:#}");
    assert_eq!(results[1]["error"]["status"], 400, "{v:#}");
    assert!(results[1]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("tx is not valid hex: "));
    assert_eq!(
        results[2],
        json!({ "error": { "code": "bad_signature", "message": "signature does not verify", "status": 422 } })
    );
    assert_eq!(
        results[3],
        json!({ "error": { "code": "unavailable", "message": "mempool is full", "status": 503 } })
    );
    assert_eq!(results[4]["error"]["code"], "internal", "{v:#}");
    assert!(!results[4].to_string().contains("secret"), "{v:#}");
    assert_eq!(results[6], json!({ "hash": hash(b"OK second").to_hex() }));

    // Every transaction that decoded reached `submit`, in order, under the
    // batch request's one correlation id; the bad hex ones did not.
    let submitted = s.node.submissions.lock().unwrap().clone();
    let expected: Vec<(Vec<u8>, Uuid)> = [
        b"OK first".as_slice(),
        b"forged",
        FULL,
        BROKEN,
        b"OK second",
    ]
    .iter()
    .map(|tx| (tx.to_vec(), sent_id))
    .collect();
    assert_eq!(submitted, expected);
    // The accepted ones are tracked under that id.
    let timeline = ok_json(s.get(&format!("/api/v1/correlation/{sent_id}")).await, 200).await;
    assert_eq!(
        timeline["entries"].as_array().unwrap().len(),
        2,
        "{timeline:#}"
    );

    // Each result is exactly what the single route answers for that item.
    for (item, result) in items.iter().zip(&results) {
        let alone = single_route_result(&s, json!({ "tx": item })).await;
        assert_eq!(&alone, result, "{item}");
    }

    // Without a header the batch still has one id, the one echoed back.
    let resp = s.submit_batch(&[b"OK third", b"OK fourth"]).await;
    let id = correlation(&resp);
    assert_eq!(ok_json(resp, 200).await["accepted"], 2);
    let submitted = s.node.submissions.lock().unwrap().clone();
    assert!(submitted.ends_with(&[(b"OK third".to_vec(), id), (b"OK fourth".to_vec(), id)]));
}

#[tokio::test]
async fn batch_submit_runs_its_transactions_concurrently() {
    let mut s = start(roomy()).await;
    let client = s.client.clone();
    let url = s.url("/api/v1/txs");
    let txs: Vec<String> = (0..3u8)
        .map(|i| hex::encode([SLOW, &[i]].concat()))
        .collect();
    let batch = tokio::spawn(async move {
        let resp = client
            .post(url)
            .json(&json!({ "txs": txs }))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    // All three are waiting inside `submit` at once: none finished yet.
    s.wait_entered(3).await;
    s.node.release(3);
    let (status, v) = timeout(DEADLINE, batch).await.unwrap().unwrap();
    assert_eq!(status, 200, "{v:#}");
    assert_eq!(v["accepted"], 3, "{v:#}");
}

#[tokio::test]
async fn batch_submit_limits() {
    let s = start(roomy()).await;
    // Empty: 400 naming the bounds.
    let body = error(
        s.post_json("/api/v1/txs", r#"{"txs":[]}"#).await,
        400,
        "bad_request",
    )
    .await;
    assert!(
        body.message.contains("empty") && body.message.contains("256"),
        "{body:?}"
    );
    // Malformed envelopes are 400 as on the single route.
    for wrong in [
        r#"{"txs":"00"}"#,
        r#"{"tx":["00"]}"#,
        r#"{"txs":["00"],"x":1}"#,
        "[]",
    ] {
        error(s.post_json("/api/v1/txs", wrong).await, 400, "bad_request").await;
    }

    // One more than the limit: 413 naming it; nothing was submitted.
    let too_many: Vec<&[u8]> = vec![OK; http::MAX_SUBMIT_BATCH + 1];
    let body = error(s.submit_batch(&too_many).await, 413, "payload_too_large").await;
    assert_eq!(
        body.message,
        "a batch holds at most 256 transactions; this one has 257"
    );
    assert!(s.node.submissions.lock().unwrap().is_empty());

    // The limit itself, every transaction as large as a transaction may be:
    // the route's own body limit is far above `max_body_bytes` (1 KiB here).
    let largest: Vec<Vec<u8>> = (0..http::MAX_SUBMIT_BATCH)
        .map(|i| {
            let mut tx = format!("OK {i:03} ").into_bytes();
            tx.resize(bitcraps_node::app::MAX_TX_BYTES, b'.');
            tx
        })
        .collect();
    let refs: Vec<&[u8]> = largest.iter().map(Vec::as_slice).collect();
    let v = ok_json(s.submit_batch(&refs).await, 200).await;
    assert_eq!(v["accepted"], 256, "{}", v["refused"]);
    assert_eq!(s.node.submissions.lock().unwrap().len(), 256);
    // Other routes keep `max_body_bytes`.
    let big_single = json!({ "tx": hex::encode(&largest[0]) }).to_string();
    assert!(big_single.len() > MAX_BODY_BYTES);
    error(
        s.post_json("/api/v1/tx", &big_single).await,
        413,
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn batch_submit_oversize_body_is_413() {
    let s = start(roomy()).await;
    let limit = http::MAX_SUBMIT_BATCH_BODY_BYTES;
    assert_eq!(limit, 267_264);
    // Declared: refused before the body is read, with the route's limit.
    let over = format!(r#"{{"txs":["{}"]}}"#, "0".repeat(limit));
    let body = error(
        s.post_json("/api/v1/txs", &over).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(body.message, format!("request body exceeds {limit} bytes"));

    // Chunked: cut off while read, at the route's limit, not `max_body_bytes`.
    let chunked = |body: &str| {
        let mut request =
            b"POST /api/v1/txs HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n"
                .to_vec();
        for chunk in body.as_bytes().chunks(16 * 1024) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        request
    };
    let (status, _, body) = raw_exchange(s.addr, &chunked(&over)).await;
    assert_eq!(status, 413, "{body}");
    let body: ErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!(body.error, "payload_too_large");
    assert_eq!(body.message, format!("request body exceeds {limit} bytes"));
    // A chunked batch far above `max_body_bytes` but within its own limit.
    let txs: Vec<String> = (0..40u8)
        .map(|i| hex::encode([OK, b" ", &[i; 100]].concat()))
        .collect();
    let within = json!({ "txs": txs }).to_string();
    assert!(within.len() > 8 * MAX_BODY_BYTES);
    let (status, _, body) = raw_exchange(s.addr, &chunked(&within)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_batch_of_n_costs_n_rate_limit_tokens() {
    let s = start(HttpLimits {
        requests_per_s: 1,
        burst: 10,
        ..roomy()
    })
    .await;
    // 8 of the 10 tokens.
    let v = ok_json(s.submit_batch(&[OK; 8]).await, 200).await;
    assert_eq!(v["accepted"], 8);
    // 9 more do not fit in what is left (2, plus 1 a second): the whole
    // batch is refused as a single request would be, nothing submitted.
    let sent = Uuid::new_v4();
    let txs: Vec<String> = (0..9).map(|_| hex::encode(OK)).collect();
    let resp = s
        .client
        .post(s.url("/api/v1/txs"))
        .header("x-correlation-id", sent.to_string())
        .json(&json!({ "txs": txs }))
        .send()
        .await
        .unwrap();
    assert_eq!(correlation(&resp), sent);
    assert!(resp.headers().contains_key("retry-after"));
    error(resp, 429, "rate_limited").await;
    assert_eq!(s.node.submissions.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn client_submit_batch_maps_each_result_like_submit() {
    let s = start(roomy()).await;
    let http_client = bitcraps_node::localnet::client::http_client().unwrap();
    let client = NodeClient::new(format!("http://{}", s.addr), http_client);
    let items = vec![
        hex::encode(b"OK one"),
        "zz".to_owned(),
        hex::encode(b"forged"),
        hex::encode(FULL),
    ];
    let outcomes = client.submit_batch(items.clone()).await.unwrap();
    assert_eq!(outcomes.len(), 4);
    // Each outcome equals what `submit` gives for the item alone (but for
    // the correlation id: one per request).
    let id = match &outcomes[0] {
        SubmitOutcome::Accepted { correlation_id, .. } => correlation_id.clone(),
        other => panic!("{other:?}"),
    };
    for (item, batch) in items.into_iter().zip(&outcomes) {
        let alone = client.submit(item.clone()).await.unwrap();
        match (&alone, batch) {
            (
                SubmitOutcome::Accepted { hash: a, .. },
                SubmitOutcome::Accepted {
                    hash: b,
                    correlation_id,
                },
            ) => {
                assert_eq!(a, b);
                assert_eq!(correlation_id, &id);
            }
            _ => assert_eq!(&alone, batch, "{item}"),
        }
    }
    assert!(
        matches!(&outcomes[2], SubmitOutcome::Refused { status: 422, code, .. } if code == "bad_signature")
    );
    assert!(matches!(
        &outcomes[3],
        SubmitOutcome::Refused { status: 503, .. }
    ));

    // A refusal of the whole request refuses every item with it.
    let too_many = vec![hex::encode(OK); http::MAX_SUBMIT_BATCH + 1];
    let outcomes = client.submit_batch(too_many).await.unwrap();
    assert_eq!(outcomes.len(), http::MAX_SUBMIT_BATCH + 1);
    assert!(outcomes.iter().all(|o| matches!(
        o,
        SubmitOutcome::Refused { status: 413, code, .. } if code == "payload_too_large"
    )));
    // An empty batch sends nothing.
    assert_eq!(client.submit_batch(Vec::new()).await.unwrap(), Vec::new());
}

// ---------------------------------------------------------------------------
// Rate limits, concurrency, timeouts, panics

/// Requests `path` until one is refused with 429 and returns that response
/// (checking it echoes our correlation id). At 1 token/s only a second spent
/// between requests lets one through, so this normally takes one request; the
/// bound allows for a very slow machine.
async fn until_limited(s: &Server, path: &str) -> reqwest::Response {
    for _ in 0..20 {
        let sent = Uuid::new_v4();
        let resp = s
            .client
            .get(s.url(path))
            .header("x-correlation-id", sent.to_string())
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            assert_eq!(correlation(&resp), sent);
            return resp;
        }
    }
    panic!("{path} was never rate limited");
}

#[tokio::test]
async fn rate_limit_429_after_burst_and_health_is_exempt() {
    let burst = 5;
    let s = start(HttpLimits {
        requests_per_s: 1,
        burst,
        ..roomy()
    })
    .await;
    // The bucket starts full: the burst always passes.
    for _ in 0..burst {
        assert_eq!(s.get("/status").await.status(), 200);
    }
    let resp = until_limited(&s, "/status").await;
    assert_eq!(resp.headers()["retry-after"], "1");
    error(resp, 429, "rate_limited").await;
    // Unknown routes count too (scanners pay like everyone else).
    error(until_limited(&s, "/nope").await, 429, "rate_limited").await;
    // Health endpoints are not limited.
    for _ in 0..3 * burst {
        assert_eq!(s.get("/livez").await.status(), 200);
        assert_eq!(s.get("/readyz").await.status(), 200);
    }
}

#[tokio::test]
async fn concurrency_limit_sheds_with_503_overloaded() {
    let mut s = start(HttpLimits {
        max_concurrent_requests: 2,
        ..roomy()
    })
    .await;
    let mut in_flight = Vec::new();
    for i in 0..2u8 {
        let client = s.client.clone();
        let url = s.url("/api/v1/tx");
        let tx = [SLOW, &[i]].concat();
        in_flight.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "tx": hex::encode(tx) }))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    s.wait_entered(2).await;

    let resp = s.get("/status").await;
    assert_eq!(resp.headers()["retry-after"], "1");
    error(resp, 503, "overloaded").await;
    // Health probes still answer a saturated node.
    assert_eq!(s.get("/livez").await.status(), 200);
    assert_eq!(s.get("/readyz").await.status(), 200);

    s.node.release(2);
    for task in in_flight {
        assert_eq!(timeout(DEADLINE, task).await.unwrap().unwrap(), 202);
    }
    // Permits are back.
    assert_eq!(s.get("/status").await.status(), 200);
}

#[tokio::test]
async fn slow_request_times_out_with_503_and_frees_its_slot() {
    let mut s = start(HttpLimits {
        max_concurrent_requests: 1,
        request_timeout_ms: 300,
        ..roomy()
    })
    .await;
    let body = error(s.submit(SLOW).await, 503, "timeout").await;
    assert_eq!(body.message, "the request took longer than 300 ms");
    s.wait_entered(1).await;
    // The only slot was released when the handler was dropped.
    assert_eq!(s.get("/status").await.status(), 200);
}

#[tokio::test]
async fn a_panicking_node_call_is_a_500_and_the_server_survives() {
    let s = start(roomy()).await;
    let body = error(s.submit(PANIC).await, 500, "internal").await;
    assert!(!body.message.contains("panic"), "{body:?}");
    assert_eq!(s.get("/status").await.status(), 200);
    assert_eq!(s.submit(OK).await.status(), 202);
}

// ---------------------------------------------------------------------------
// Shutdown

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let mut s = start(roomy()).await;
    let client = s.client.clone();
    let url = s.url("/api/v1/tx");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({ "tx": hex::encode(SLOW) }))
            .send()
            .await
            .unwrap()
            .status()
    });
    s.wait_entered(1).await;

    s.shutdown.take().unwrap().send(()).unwrap();
    // New connections are refused once the listener is closed.
    timeout(DEADLINE, async {
        while TcpStream::connect(s.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("listener still accepting after shutdown");
    assert!(!s.task.is_finished(), "returned with a request in flight");

    s.node.release(1);
    assert_eq!(timeout(DEADLINE, in_flight).await.unwrap().unwrap(), 202);
    timeout(DEADLINE, s.task)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_stalled_client() {
    let mut s = start(HttpLimits {
        request_timeout_ms: 100,
        ..roomy()
    })
    .await;
    // Headers that never end, on a connection the server has accepted.
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    stalled
        .write_all(b"GET /status HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    // A full exchange on another connection proves the server is accepting
    // (and so has accepted the stalled one, which was first in the queue).
    assert_eq!(s.get("/livez").await.status(), 200);

    s.shutdown.take().unwrap().send(()).unwrap();
    timeout(DEADLINE, s.task)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap();
    drop(stalled);
}
