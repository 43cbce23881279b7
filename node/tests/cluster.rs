//! Validators as real `bitcraps start` processes on loopback (QUIC + HTTP):
//! a late joiner syncs from genesis, a `kill -9`ed validator restarts and
//! catches up with the same state root, rogue QUIC peers are refused or
//! disconnected while the cluster keeps committing, and bad HTTP input gets a
//! clear 4xx without losing anything (also item by item in a batch).
//!
//! Deadlines are failure bounds only (the machine is shared); nothing asserts
//! on speed.

#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcraps_crypto::guard::{FileGuardStore, GuardState, GuardStore};
use bitcraps_crypto::{Keypair, PublicKey};
use bitcraps_node::api::BlockView;
use bitcraps_node::app::tx::{Action, Transaction};
use bitcraps_node::chainspec::ChainSpec;
use bitcraps_node::home::{read_key_file, testnet_init, Testnet, TestnetOptions};
use bitcraps_node::localnet::{Cluster, NodeClient, SubmitOutcome};
use bitcraps_node::net::frame;
use bitcraps_node::net::tls::{self, TlsIdentity};
use bytes::BytesMut;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, timeout, Instant};

const READY_MS: u64 = 90_000;
const DEADLINE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(200);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bitcraps"))
}

fn testnet(dir: &Path, validators: usize) -> (Testnet, ChainSpec) {
    let tn = testnet_init(&TestnetOptions {
        validators,
        out_dir: dir.to_path_buf(),
        ..TestnetOptions::default()
    })
    .unwrap();
    let spec = ChainSpec::load(&tn.genesis_path).unwrap();
    (tn, spec)
}

fn transfer(chain_id: &str, from: &Keypair, nonce: u64, to: PublicKey, amount: u64) -> String {
    let tx = Transaction {
        from: from.public(),
        nonce,
        action: Action::Transfer { to, amount },
    }
    .sign(chain_id, from);
    hex::encode(tx.encode())
}

fn accepted(outcome: SubmitOutcome) -> String {
    match outcome {
        SubmitOutcome::Accepted { hash, .. } => hash,
        other => panic!("transaction refused: {other:?}"),
    }
}

/// Polls `node` until its height reaches `height`.
async fn wait_height(cluster: &Cluster, node: usize, height: u64, what: &str) -> u64 {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = cluster.status(node).await {
            if s.height >= height {
                return s.height;
            }
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for {what} (node {node} to reach height {height}); log:\n{}",
            cluster.log_tail(node, 20)
        );
        sleep(POLL).await;
    }
}

async fn height(cluster: &Cluster, node: usize) -> u64 {
    cluster.status(node).await.unwrap().height
}

/// The (block id, state root) every running node reports at `h`.
async fn roots_at(cluster: &Cluster, nodes: &[usize], h: u64) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for &i in nodes {
        let b = cluster
            .client(i)
            .block(h)
            .await
            .unwrap()
            .expect("block stored");
        out.push((b.id, b.state_root));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_syncs_and_a_killed_validator_catches_up_with_equal_state() {
    let dir = tempfile::tempdir().unwrap();
    let (tn, spec) = testnet(dir.path(), 4);
    let chain = spec.consensus.chain_id.clone();
    let faucet = read_key_file(&tn.faucet_key_path).unwrap();
    let mut cluster = Cluster::create(bin(), &tn, &[]).unwrap();

    // Three of four validators are a quorum: they commit without the fourth.
    for i in 0..3 {
        cluster.start_node(i).unwrap();
    }
    for i in 0..3 {
        cluster.wait_ready(i, READY_MS).await.unwrap();
    }
    let players: Vec<Keypair> = (0..8u8).map(|i| Keypair::from_seed(&[i + 1; 32])).collect();
    let via = cluster.client(0);
    let mut nonce = 0;
    let mut send = |via: &NodeClient, n: u64| {
        let txs: Vec<String> = (0..n)
            .map(|k| {
                let to = players[(nonce + k) as usize % players.len()].public();
                transfer(&chain, &faucet, nonce + k, to, 10)
            })
            .collect();
        nonce += n;
        let via = via.clone();
        async move {
            for tx in txs {
                accepted(via.submit(tx).await.unwrap());
            }
        }
    };
    send(&via, 20).await;
    wait_height(&cluster, 0, 20, "the first blocks").await;

    // A validator that starts late syncs the whole chain from genesis.
    cluster.start_node(3).unwrap();
    cluster.wait_ready(3, READY_MS).await.unwrap();
    let target = height(&cluster, 0).await;
    wait_height(&cluster, 3, target, "the late joiner to catch up").await;

    // kill -9 one validator; the other three keep committing under load.
    cluster.kill(1);
    assert!(!cluster.is_running(1));
    let before = height(&cluster, 0).await;
    send(&via, 20).await;
    wait_height(
        &cluster,
        0,
        before + 20,
        "progress without the killed validator",
    )
    .await;

    // It restarts from its data directory and catches up.
    cluster.restart(1).unwrap();
    cluster.wait_ready(1, READY_MS).await.unwrap();
    let target = height(&cluster, 0).await;
    wait_height(&cluster, 1, target, "the restarted validator to catch up").await;
    let s1 = cluster.status(1).await.unwrap();
    assert!(!s1.catching_up, "{s1:?}");

    // Every validator holds the same block and state root at a common height,
    // and the same balances.
    let mut common = u64::MAX;
    for i in 0..4 {
        common = common.min(height(&cluster, i).await);
    }
    let roots = roots_at(&cluster, &[0, 1, 2, 3], common).await;
    assert!(roots[0].1.is_some());
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
    let mut committed_everywhere = true;
    for i in 0..4 {
        let a = cluster
            .client(i)
            .account(&players[0].public().to_hex())
            .await
            .unwrap();
        committed_everywhere &= a.balance == 50;
    }
    // 40 transfers of 10 round-robin over 8 players: 5 each, once all executed.
    if !committed_everywhere {
        sleep(Duration::from_secs(2)).await;
        for i in 0..4 {
            let a = cluster
                .client(i)
                .account(&players[0].public().to_hex())
                .await
                .unwrap();
            assert_eq!(a.balance, 50, "node {i}");
        }
    }
    for (i, exit) in cluster.stop_all().into_iter().enumerate() {
        if let Some(exit) = exit {
            assert!(exit.success(), "node {i} exited with {exit}");
        }
    }
}

fn rogue_client(id: &Keypair, server: PublicKey) -> (quinn::Endpoint, quinn::ClientConfig) {
    tls::install_crypto_provider();
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let cfg = tls::client_config(
        &TlsIdentity::from_keypair(id).unwrap(),
        server,
        Arc::new(quinn::TransportConfig::default()),
    )
    .unwrap();
    (ep, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_quic_peers_are_refused_or_disconnected_while_the_cluster_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (tn, spec) = testnet(dir.path(), 4);
    // Validator 0's identity key is in the attacker's hands; 1, 2, 3 run.
    let stolen = read_key_file(&tn.nodes[0].home.join("keys/identity.key")).unwrap();
    let mut cluster = Cluster::create(bin(), &tn, &[]).unwrap();
    for i in 1..4 {
        cluster.start_node(i).unwrap();
    }
    for i in 1..4 {
        cluster.wait_ready(i, READY_MS).await.unwrap();
    }
    let target = tn.nodes[1].p2p_addr;
    let target_key = spec.consensus.validators[1].identity_key;

    // 1. An unknown identity key gets no connection that carries anything.
    let stranger = Keypair::from_seed(&[0xee; 32]);
    let (ep, cfg) = rogue_client(&stranger, target_key);
    if let Ok(Ok(conn)) = timeout(
        DEADLINE,
        ep.connect_with(cfg, target, tls::SERVER_NAME).unwrap(),
    )
    .await
    {
        timeout(DEADLINE, conn.closed())
            .await
            .expect("stranger's connection stayed open");
    }

    // 2. A known key sending garbage frames is penalised and disconnected.
    let (ep, cfg) = rogue_client(&stolen, target_key);
    let conn = timeout(
        DEADLINE,
        ep.connect_with(cfg.clone(), target, tls::SERVER_NAME)
            .unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let mut s = conn.open_uni().await.unwrap();
    let mut garbage = BytesMut::new();
    for i in 0..64u8 {
        frame::encode_into(&mut garbage, &[0xff, i, 0xde, 0xad, 0xbe, 0xef]);
    }
    let closed = timeout(DEADLINE, async {
        loop {
            if s.write_all(&garbage).await.is_err() {
                break;
            }
            if conn.close_reason().is_some() {
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
        conn.closed().await
    })
    .await;
    assert!(closed.is_ok(), "garbage sender was not disconnected");

    // 3. An oversize frame closes the connection at once (if the penalised
    //    key may connect again at all).
    if let Ok(Ok(conn)) = timeout(
        DEADLINE,
        ep.connect_with(cfg, target, tls::SERVER_NAME).unwrap(),
    )
    .await
    {
        if let Ok(mut s) = conn.open_uni().await {
            let announced = (frame::MAX_FRAME_BYTES + frame::ENVELOPE_HEADER_BYTES + 1) as u32;
            let mut bytes = announced.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[frame::ENVELOPE_VERSION, frame::KIND_DATA, 1, 2, 3]);
            let _ = s.write_all(&bytes).await;
        }
        timeout(DEADLINE, conn.closed())
            .await
            .expect("oversize sender stayed connected");
    }

    // The node saw the misbehaviour, stayed up, and the cluster commits on.
    let peers: Vec<bitcraps_node::api::PeerView> =
        reqwest::get(format!("{}/api/v1/peers", cluster.http_url(1)))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let val0 = peers.iter().find(|p| p.index == 0).unwrap();
    assert!(val0.penalty_disconnects >= 1, "{val0:?}");
    let before = height(&cluster, 1).await;
    wait_height(&cluster, 1, before + 10, "commits after the attack").await;
    assert!(cluster.is_running(1));
    cluster.stop_all();
}

/// A page of `GET /api/v1/blocks` ends at the newest committed block, and a
/// long poll for the next height is answered with that block once it
/// commits: a follower (`bitcraps bench`, localnet's watcher) learns of each
/// commit at once, not when the block after it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_pages_end_at_the_newest_committed_block() {
    let dir = tempfile::tempdir().unwrap();
    let (tn, _) = testnet(dir.path(), 1);
    let mut cluster = Cluster::start(bin(), &tn, &[]).unwrap();
    cluster.wait_ready(0, READY_MS).await.unwrap();
    let node = cluster.client(0);
    let heights = |page: Vec<BlockView>| page.iter().map(|b| b.height).collect::<Vec<_>>();
    let top = wait_height(&cluster, 0, 3, "a few empty blocks").await;
    assert_eq!(heights(node.blocks(1, 1).await.unwrap()), [1]);
    assert_eq!(heights(node.blocks(1, 3).await.unwrap()), [1, 2, 3]);
    assert_eq!(heights(node.blocks(top, 1).await.unwrap()), [top]);
    let page = heights(node.blocks(top, 100).await.unwrap());
    assert_eq!(page.first(), Some(&top), "{page:?}");
    let top = height(&cluster, 0).await;
    let next = heights(node.blocks_wait(top + 1, 100, 20_000).await.unwrap());
    assert_eq!(next.first(), Some(&(top + 1)), "{next:?}");
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_input_gets_clear_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (tn, spec) = testnet(dir.path(), 1);
    let chain = spec.consensus.chain_id.clone();
    let faucet = read_key_file(&tn.faucet_key_path).unwrap();
    let mut cluster = Cluster::start(bin(), &tn, &[]).unwrap();
    cluster.wait_ready(0, READY_MS).await.unwrap();
    let url = cluster.http_url(0);
    let http = reqwest::Client::new();
    let node = cluster.client(0);
    let player = Keypair::from_seed(&[7; 32]).public();

    let post = |body: String| {
        http.post(format!("{url}/api/v1/tx"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let code = |v: serde_json::Value| v["error"].as_str().unwrap_or_default().to_owned();

    // Malformed JSON, bad hex, undecodable bytes: 400.
    let r = post("{\"tx\": ".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().contains_key("x-correlation-id"));
    let r = post("{\"tx\": \"zz\"}".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post("{\"tx\": \"00ff00ff\"}".into()).await.unwrap();
    assert_eq!(r.status(), 400, "{:?}", r.text().await);

    // Oversize body: 413.
    let big = format!("{{\"tx\": \"{}\"}}", "ab".repeat(100 * 1024));
    let r = post(big).await.unwrap();
    assert_eq!(r.status(), 413);

    // Wrong signature (signed for another chain, and by another key): 422.
    let other_chain = transfer("some-other-chain", &faucet, 0, player, 5);
    let r = post(format!("{{\"tx\": \"{other_chain}\"}}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(code(r.json().await.unwrap()), "bad_signature");
    // Claims to be the faucet, signed by someone else.
    let forged = Transaction {
        from: faucet.public(),
        nonce: 0,
        action: Action::Transfer {
            to: player,
            amount: 5,
        },
    }
    .sign(&chain, &Keypair::from_seed(&[9; 32]));
    let r = post(format!("{{\"tx\": \"{}\"}}", hex::encode(forged.encode())))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // A good transaction commits...
    let good = transfer(&chain, &faucet, 0, player, 5);
    let hash = accepted(node.submit(good.clone()).await.unwrap());
    let committed_ok = |hash: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let end = Instant::now() + DEADLINE;
            loop {
                let r = http
                    .get(format!("{url}/api/v1/tx/{hash}"))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 200 {
                    let v: serde_json::Value = r.json().await.unwrap();
                    if v["status"] == "committed" {
                        assert_eq!(v["result"], "ok", "{v}");
                        break;
                    }
                }
                assert!(Instant::now() < end, "transaction {hash} never committed");
                sleep(POLL).await;
            }
        }
    };
    committed_ok(hash).await;
    // ...and replaying it (same nonce) is refused.
    match node.submit(good).await.unwrap() {
        SubmitOutcome::Refused { status, code, .. } => {
            assert_eq!(status, 422);
            assert!(code.contains("nonce") || code == "duplicate", "{code}");
        }
        other => panic!("replay admitted: {other:?}"),
    }
    // A batch (POST /api/v1/txs): three good transfers with consecutive
    // nonces, one with a bad signature, bad hex and undecodable bytes. Each
    // gets its own answer, in order; the good ones commit.
    let payee = Keypair::from_seed(&[8; 32]).public();
    let outcomes = node
        .submit_batch(vec![
            transfer(&chain, &faucet, 1, payee, 1),
            transfer("some-other-chain", &faucet, 2, payee, 100),
            transfer(&chain, &faucet, 2, payee, 2),
            "zz".to_owned(),
            "00ff00ff".to_owned(),
            transfer(&chain, &faucet, 3, payee, 3),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 6, "{outcomes:?}");
    let refused = |i: usize| match &outcomes[i] {
        SubmitOutcome::Refused { status, code, .. } => (*status, code.clone()),
        other => panic!("item {i} admitted: {other:?}"),
    };
    assert_eq!(refused(1), (422, "bad_signature".to_owned()));
    assert_eq!(refused(3), (400, "bad_request".to_owned()));
    assert_eq!(refused(4), (400, "bad_request".to_owned()));
    let mut batch_id = None;
    for i in [0, 2, 5] {
        let SubmitOutcome::Accepted {
            hash,
            correlation_id,
        } = outcomes[i].clone()
        else {
            panic!("item {i} refused: {:?}", outcomes[i]);
        };
        // One correlation id for the whole batch.
        assert_eq!(
            batch_id.get_or_insert(correlation_id.clone()),
            &correlation_id
        );
        committed_ok(hash).await;
    }
    assert_eq!(node.account(&payee.to_hex()).await.unwrap().balance, 6);

    // Nothing was lost: the balance moved exactly once, the node still serves.
    let a = node.account(&player.to_hex()).await.unwrap();
    assert_eq!(a.balance, 5);
    let r = http
        .get(format!("{url}/api/v1/tx/{}", "00".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{url}/api/v1/accounts/not-a-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Metrics reflect what happened: a committed transfer and refusals by reason.
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    };
    assert!(value("bitcraps_height ") >= 1.0);
    assert!(value("bitcraps_tx_committed_total ") >= 1.0);
    assert!(value("bitcraps_tx_rejected_total{reason=\"bad_signature\"}") >= 2.0);
    promtool_check(&metrics);
    assert!(cluster.is_running(0));
    cluster.stop_all();
}

/// Runs node `i` outside the cluster's control with the guard-write crash
/// armed, and waits for it to abort there.
async fn crash_after_guard_writes(cluster: &Cluster, i: usize, writes: u64) {
    use std::os::unix::process::ExitStatusExt;
    let home = cluster.node(i).home.clone();
    let log = std::fs::File::create(home.join(format!("crash-{writes}.log"))).unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("--home")
        .arg(&home)
        .arg("start")
        .env(
            bitcraps_node::engine::fault::CRASH_AFTER_GUARD_WRITES_ENV,
            writes.to_string(),
        )
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("node {i} never reached guard write {writes}");
        }
        sleep(POLL).await;
    };
    // SIGABRT: it died inside the guard write, not some other way.
    assert_eq!(status.signal(), Some(6), "node {i} ended with {status}");
}

async fn evidence_total(cluster: &Cluster, i: usize) -> u64 {
    let text = reqwest::get(format!("{}/metrics", cluster.http_url(i)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("bitcraps_evidence_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .expect("bitcraps_evidence_total in /metrics")
}

/// A validator killed right after its signing guard made a new signature
/// durable, before the signature could reach the network, restarts from its
/// data directory and carries on: the guard state it died with is intact and
/// never goes back, no validator ever sees two conflicting votes from it
/// (double-sign evidence stays 0), and the chain agrees. (That a reloaded
/// guard refuses to sign a conflicting vote is tested directly in
/// `crypto/src/guard/tests.rs`; the simulator crashes validators at every
/// step under byzantine schedules.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_guard_write_and_broadcast_never_double_signs() {
    let dir = tempfile::tempdir().unwrap();
    let (tn, _spec) = testnet(dir.path(), 4);
    let mut cluster = Cluster::create(bin(), &tn, &[]).unwrap();
    for i in 1..4 {
        cluster.start_node(i).unwrap();
    }
    for i in 1..4 {
        cluster.wait_ready(i, READY_MS).await.unwrap();
    }
    let guard_path = cluster.node(0).home.join("data").join("guard_state");
    let mut last_crash_state = None;
    for writes in [3, 17, 40] {
        crash_after_guard_writes(&cluster, 0, writes).await;
        // The write it died after is complete and loads: a vote is recorded
        // (of any kind: a node that joins late may only finalize views whose
        // certificates reach it before their proposals), and no recorded
        // view ever goes back across crashes.
        let state = {
            let store = FileGuardStore::open(&guard_path).unwrap();
            store.load().unwrap().expect("guard state after the crash")
        };
        assert!(
            state.last_notarize.is_some()
                || state.last_nullify.is_some()
                || state.last_finalize.is_some(),
            "{state:?}"
        );
        if let Some(prev) = last_crash_state.replace(state.clone()) {
            let views = |s: &GuardState| {
                [s.last_notarize, s.last_nullify, s.last_finalize].map(|r| r.map(|r| r.view))
            };
            for (a, b) in views(&prev).into_iter().zip(views(&state)) {
                assert!(a <= b, "a recorded view went back: {prev:?} -> {state:?}");
            }
        }
        // Restarted normally, it resumes from the guard state it fsynced.
        cluster.start_node(0).unwrap();
        cluster.wait_ready(0, READY_MS).await.unwrap();
        let target = height(&cluster, 1).await + 5;
        wait_height(&cluster, 0, target, "progress after the crash").await;
        cluster.stop(0).unwrap();
    }
    cluster.start_node(0).unwrap();
    cluster.wait_ready(0, READY_MS).await.unwrap();
    let target = height(&cluster, 1).await + 5;
    for i in 0..4 {
        wait_height(&cluster, i, target, "progress with everyone back").await;
    }
    for i in 0..4 {
        assert_eq!(
            evidence_total(&cluster, i).await,
            0,
            "node {i} saw a double vote"
        );
    }
    let mut common = u64::MAX;
    for i in 0..4 {
        common = common.min(height(&cluster, i).await);
    }
    let roots = roots_at(&cluster, &[0, 1, 2, 3], common).await;
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
    cluster.stop_all();
}

/// The emergency wipe on a real validator: a wrong or missing token is
/// refused; the right one zeroizes the consensus key and the beacon share.
/// The node stays up and readable, reports the wipe, stops voting, and the
/// other three keep committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_wipe_stops_signing_and_the_node_stays_readable() {
    const TOKEN: &str = "wipe-token-5f0c2a9e71d34b8a";
    let dir = tempfile::tempdir().unwrap();
    let (tn, _spec) = testnet(dir.path(), 4);
    enable_admin(&tn.nodes[0].home, TOKEN);
    let mut cluster = Cluster::start(bin(), &tn, &[]).unwrap();
    for i in 0..4 {
        cluster.wait_ready(i, READY_MS).await.unwrap();
    }
    let url = cluster.http_url(0);
    let http = reqwest::Client::new();
    let wipe = |auth: Option<&str>| {
        let mut req = http.post(format!("{url}/api/v1/admin/wipe"));
        if let Some(a) = auth {
            req = req.header("authorization", format!("Bearer {a}"));
        }
        req.send()
    };
    assert_eq!(wipe(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        wipe(Some("wipe-token-wrong"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // Another node has no admin token configured: the API is off there.
    let off = http
        .post(format!("{}/api/v1/admin/wipe", cluster.http_url(1)))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status().as_u16(), 403);
    let status = cluster.status(0).await.unwrap();
    assert!(status.signer.healthy, "{status:?}");

    let ok = wipe(Some(TOKEN)).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["wiped_now"], true, "{body}");

    // Readable, and says why it no longer signs.
    let status = cluster.status(0).await.unwrap();
    assert!(!status.signer.healthy, "{status:?}");
    assert!(
        status
            .signer
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("wiped"),
        "{status:?}"
    );
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(ready.text().await.unwrap().contains("wiped"));
    let mem: serde_json::Value = http
        .get(format!("{url}/api/v1/memory-protection/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mem["keys_wiped"], true, "{mem}");
    // The admin token itself is held in a guard-paged secret buffer.
    assert!(mem["live_buffers"].as_u64().unwrap() >= 1, "{mem}");

    // The other three are a quorum: the chain goes on, and node 0 follows it
    // (it still verifies and executes) without voting.
    let wiped_at = height(&cluster, 1).await;
    let target = wiped_at + 5;
    for i in 0..4 {
        wait_height(&cluster, i, target, "progress after the wipe").await;
    }
    // No finalization after the wipe carries a vote from node 0. (Blocks a
    // couple of heights on: votes signed just before the call may still land.)
    for h in wiped_at + 2..=target {
        let block: serde_json::Value = http
            .get(format!("{}/api/v1/blocks/{h}", cluster.http_url(1)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let signers: Vec<u64> = block["signers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            !signers.is_empty() && !signers.contains(&0),
            "height {h}: {signers:?}"
        );
    }
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("bitcraps_secret_buffers"), "metrics");
    let log = std::fs::read_to_string(cluster.log_path(0)).unwrap();
    assert!(log.contains("EMERGENCY WIPE"), "the wipe is logged");
    assert!(!log.contains(TOKEN), "the token never reaches the log");
    cluster.stop_all();
}

/// Writes an admin token (0600) into a validator home and points its config
/// at it.
fn enable_admin(home: &Path, token: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let home = bitcraps_node::home::Home::new(home);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(home.keys_dir().join("admin.token"))
        .unwrap();
    writeln!(f, "{token}").unwrap();
    let mut config = home.load_config().unwrap();
    config.admin.token_file = "keys/admin.token".into();
    std::fs::write(home.config_path(), config.to_toml()).unwrap();
}

/// Rotating a validator's QUIC identity key through the admin API: peers
/// learn the new key (signed by the consensus key) while the node runs; it
/// restarts with the new key file, reconnects to everyone and the chain keeps
/// committing, with no double-sign evidence anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_key_rotation_through_the_admin_api_keeps_consensus() {
    const TOKEN: &str = "rotate-token-0b1c2d3e4f5a6b7c";
    let dir = tempfile::tempdir().unwrap();
    let (tn, _spec) = testnet(dir.path(), 4);
    enable_admin(&tn.nodes[0].home, TOKEN);
    let mut cluster = Cluster::start(bin(), &tn, &[]).unwrap();
    for i in 0..4 {
        cluster.wait_ready(i, READY_MS).await.unwrap();
    }
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/admin/rotate-identity", cluster.http_url(0));
    let refused = http
        .post(&url)
        .header("authorization", "Bearer not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let resp = http
        .post(&url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let key_file = body["key_file"].as_str().unwrap().to_owned();
    let new_key = read_key_file(Path::new(&key_file)).unwrap();
    assert_eq!(body["new_identity_key"], new_key.public().to_hex());
    assert_eq!(body["sequence"], 1);

    // Peers keep the rotation on disk once they have it.
    let end = Instant::now() + DEADLINE;
    for i in 1..4 {
        let file = cluster.node(i).home.join("data/identity_rotations.json");
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.contains(&new_key.public().to_hex()) {
                break;
            }
            assert!(Instant::now() < end, "node {i} never stored the rotation");
            sleep(POLL).await;
        }
    }

    // Restart with the new key: it reconnects to all three and votes again.
    cluster.stop(0).unwrap();
    let home = bitcraps_node::home::Home::new(&cluster.node(0).home);
    let mut config = home.load_config().unwrap();
    config.keys.identity = key_file.into();
    std::fs::write(home.config_path(), config.to_toml()).unwrap();
    cluster.start_node(0).unwrap();
    cluster.wait_ready(0, READY_MS).await.unwrap();
    let target = height(&cluster, 1).await + 5;
    for i in 0..4 {
        wait_height(&cluster, i, target, "progress after the rotation").await;
    }
    let end = Instant::now() + DEADLINE;
    loop {
        let s = cluster.status(0).await.unwrap();
        if s.peers_connected == 3 {
            break;
        }
        assert!(
            Instant::now() < end,
            "not reconnected under the new key: {s:?}"
        );
        sleep(POLL).await;
    }
    for i in 0..4 {
        assert_eq!(evidence_total(&cluster, i).await, 0, "node {i}");
    }
    cluster.stop_all();
}

/// `promtool check metrics` (Debian `prometheus`, installed by
/// scripts/test.sh) on a running node's exposition: it must parse, and the
/// lint (names, units, `_total` counters, help texts) must find nothing.
fn promtool_check(metrics: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: apt-get install prometheus (scripts/test.sh does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
