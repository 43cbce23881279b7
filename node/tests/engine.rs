//! Four validator engines over real QUIC on loopback and real redb files in
//! temporary directories, in one process: they commit, agree on what they
//! committed, and a validator restarted from its data directory carries on.
//!
//! Deadlines here are failure bounds only; a healthy run takes a few seconds.

#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcraps_consensus::{Genesis, Params};
use bitcraps_crypto::Keypair;
use bitcraps_node::app::state::{account_key, decode_account, root_key};
use bitcraps_node::app::tx::{Action, Transaction};
use bitcraps_node::app::{Allocation, AppGenesis};
use bitcraps_node::engine::{Engine, EngineConfig, EngineHandle, EngineStatus, Listen};
use bitcraps_node::net::Limits;
use bitcraps_node::storage::Store;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

const N: u16 = 4;
const GENESIS_MS: u64 = 1_700_000_000_000;
const POLL: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(60);

fn consensus_key(i: u16) -> Keypair {
    let mut seed = [0xc0; 32];
    seed[..2].copy_from_slice(&i.to_be_bytes());
    Keypair::from_seed(&seed)
}

fn identity_key(i: u16) -> Keypair {
    let mut seed = [0x1d; 32];
    seed[..2].copy_from_slice(&i.to_be_bytes());
    Keypair::from_seed(&seed)
}

/// Players funded at genesis; player `i` submits through engine `i`.
fn player(i: u16) -> Keypair {
    let mut seed = [0x9a; 32];
    seed[..2].copy_from_slice(&i.to_be_bytes());
    Keypair::from_seed(&seed)
}

const FUNDS: u64 = 1_000;
const TRANSFERS: u64 = 8;

fn app_genesis() -> AppGenesis {
    AppGenesis {
        allocations: (0..N)
            .map(|i| Allocation {
                account: player(i).public(),
                balance: FUNDS,
            })
            .collect(),
        faucet: None,
        ..AppGenesis::default()
    }
}

fn limits() -> Limits {
    Limits {
        reconnect_base_ms: 20,
        reconnect_max_ms: 300,
        connect_timeout_ms: 1_500,
        breaker_failure_threshold: 50,
        breaker_cooldown_ms: 300,
        keep_alive_ms: 200,
        idle_timeout_ms: 3_000,
        ..Limits::default()
    }
}

fn genesis(addrs: &[SocketAddr]) -> Genesis {
    let keys: Vec<Keypair> = (0..N).map(consensus_key).collect();
    let params = Params {
        view_timeout_ms: 500,
        max_view_timeout_ms: 4_000,
        retry_interval_ms: 250,
        max_payload_bytes: 1 << 20,
        max_clock_drift_ms: 5_000,
    };
    let mut g = Genesis::from_keypairs("engine-test", GENESIS_MS, &keys, params);
    for (i, v) in g.validators.iter_mut().enumerate() {
        v.identity_key = identity_key(i as u16).public();
        v.address = addrs[i].to_string();
    }
    g.validate().unwrap();
    g
}

fn start(g: &Genesis, me: u16, dir: &Path, listen: Listen) -> EngineHandle {
    let mut config = EngineConfig::new(
        g.clone(),
        me,
        identity_key(me),
        consensus_key(me),
        dir,
        listen,
    );
    config.limits = limits();
    config.app = app_genesis();
    Engine::start(config).unwrap()
}

/// Polls until every engine satisfies `ok`, or fails with their statuses.
async fn wait_until(
    engines: &[&EngineHandle],
    what: &str,
    ok: impl Fn(usize, &EngineStatus) -> bool,
) {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let statuses: Vec<EngineStatus> = engines.iter().map(|e| e.status()).collect();
        assert!(
            statuses.iter().all(|s| s.fatal.is_none()),
            "engine stopped: {statuses:?}"
        );
        if statuses.iter().enumerate().all(|(i, s)| ok(i, s)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}: {statuses:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_engines_commit_agree_and_survive_a_restart() {
    let sockets: Vec<UdpSocket> = (0..N)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let g = genesis(&addrs);
    let dirs: Vec<tempfile::TempDir> = (0..N).map(|_| tempfile::tempdir().unwrap()).collect();

    let mut engines: Vec<EngineHandle> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| start(&g, i as u16, dirs[i].path(), Listen::Socket(s)))
        .collect();

    // Signed transfers ride along in the leaders' payloads: player i sends
    // 1 chip to player i+1, TRANSFERS times, through engine i.
    for (i, e) in engines.iter().enumerate() {
        let from = player(i as u16);
        let to = player((i as u16 + 1) % N).public();
        for nonce in 0..TRANSFERS {
            let tx = Transaction {
                from: from.public(),
                nonce,
                action: Action::Transfer { to, amount: 1 },
            }
            .sign(&g.chain_id, &from);
            e.submit(tx.encode()).await.unwrap();
        }
        // A replay and a forged signature are refused at admission.
        let replay = Transaction {
            from: from.public(),
            nonce: 0,
            action: Action::Transfer { to, amount: 1 },
        }
        .sign(&g.chain_id, &from);
        assert!(
            e.submit(replay.encode()).await.is_err(),
            "replayed nonce admitted"
        );
        let forged = Transaction {
            from: from.public(),
            nonce: TRANSFERS,
            action: Action::Transfer { to, amount: 1 },
        }
        .sign(&g.chain_id, &player(99));
        let err = e.submit(forged.encode()).await.unwrap_err();
        assert_eq!(err.code(), "bad_signature");
    }

    {
        let all: Vec<&EngineHandle> = engines.iter().collect();
        wait_until(&all, "height 5 everywhere", |_, s| s.height >= 5).await;
        let expected = u64::from(N) * TRANSFERS;
        wait_until(&all, "every transfer committed", |_, s| {
            s.committed_tx >= expected
        })
        .await;
        wait_until(&all, "full connectivity", |_, s| {
            s.peers_connected == usize::from(N) - 1
        })
        .await;
    }

    // Restart the last validator from its data directory, on the same address.
    let restarted = usize::from(N) - 1;
    let old = engines.remove(restarted);
    let before = old.status().height;
    old.shutdown().await.unwrap();
    engines.push(start(
        &g,
        restarted as u16,
        dirs[restarted].path(),
        Listen::Addr(addrs[restarted]),
    ));
    assert!(
        engines[restarted].status().height >= before,
        "restored below its committed height"
    );
    {
        let all: Vec<&EngineHandle> = engines.iter().collect();
        wait_until(&all, "progress after the restart", |i, s| {
            s.height >= before + 3 && (i != restarted || s.peers_connected > 0)
        })
        .await;
    }

    let mut heights = Vec::new();
    for e in engines {
        let s = e.status();
        assert_eq!(s.evidence, 0, "no honest validator double-signs");
        heights.push(s.height);
        e.shutdown().await.unwrap();
    }

    // Every store holds the same chain up to the lowest committed height.
    let common = *heights.iter().min().unwrap();
    assert!(common >= before + 3);
    let stores: Vec<Store> = dirs
        .iter()
        .map(|d| Store::open(d.path().join("db")).unwrap())
        .collect();
    let mut payload_bytes = 0;
    for h in 1..=common {
        let blocks: Vec<_> = stores
            .iter()
            .map(|s| {
                s.block_by_height(h)
                    .unwrap()
                    .expect("committed block stored")
            })
            .collect();
        let id = blocks[0].block.id();
        for b in &blocks {
            assert_eq!(b.block.id(), id, "validators disagree at height {h}");
        }
        payload_bytes += blocks[0].block.payload.len();
        let roots: Vec<_> = stores
            .iter()
            .map(|s| {
                s.reader()
                    .app_get(&root_key(h))
                    .unwrap()
                    .expect("root stored")
            })
            .collect();
        assert!(
            roots.iter().all(|r| *r == roots[0]),
            "state roots differ at {h}"
        );
    }
    assert!(payload_bytes > 0, "submitted transactions were proposed");
    // Every transfer executed exactly once on every validator: each player sent
    // TRANSFERS chips and received as many, so balances are back to FUNDS and
    // nonces at TRANSFERS.
    for s in &stores {
        for i in 0..N {
            let raw = s
                .reader()
                .app_get(&account_key(&player(i).public()))
                .unwrap()
                .unwrap();
            let account = decode_account(&raw).unwrap();
            assert_eq!((account.balance, account.nonce), (FUNDS, TRANSFERS));
        }
    }
}
