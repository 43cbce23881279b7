//! Four validator engines over real QUIC on loopback and real redb files in
//! temporary directories, in one process: they commit, agree on what they
//! committed, and a validator restarted from its data directory carries on.
//!
//! Deadlines here are failure bounds only; a healthy run takes a few seconds.

#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/engines.rs"]
mod support;

use bitcraps_consensus::Genesis;
use bitcraps_crypto::beacon::{deal_from_seed, SecretShare};
use bitcraps_crypto::{Keypair, PublicKey};
use bitcraps_node::app::craps::{BetKind, Table, TableParams};
use bitcraps_node::app::game::table_key;
use bitcraps_node::app::state::{account_key, decode_account, root_key};
use bitcraps_node::app::tx::{Action, SignedTx, Transaction};
use bitcraps_node::app::{Allocation, AppGenesis};
use bitcraps_node::engine::{Engine, EngineConfig, EngineHandle, EngineStatus, Listen};
use bitcraps_node::storage::Store;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{consensus_key, identity_key, limits};

const N: u16 = 4;
const POLL: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(60);

/// Players funded at genesis; player `i` submits through engine `i`.
fn player(i: u16) -> Keypair {
    let mut seed = [0x9a; 32];
    seed[..2].copy_from_slice(&i.to_be_bytes());
    Keypair::from_seed(&seed)
}

/// A signed transfer of 1 chip from `from` to `to` with `nonce`.
fn one_chip(chain_id: &str, from: &Keypair, to: PublicKey, nonce: u64) -> SignedTx {
    Transaction {
        from: from.public(),
        nonce,
        action: Action::Transfer { to, amount: 1 },
    }
    .sign(chain_id, from)
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

fn genesis(addrs: &[SocketAddr]) -> Genesis {
    support::genesis("engine-test", addrs)
}

fn start(g: &Genesis, me: u16, dir: &Path, listen: Listen) -> EngineHandle {
    start_with(g, me, dir, listen, app_genesis(), None)
}

fn start_with(
    g: &Genesis,
    me: u16,
    dir: &Path,
    listen: Listen,
    app: AppGenesis,
    beacon_share: Option<SecretShare>,
) -> EngineHandle {
    let mut config = config_for(g, me, dir, listen);
    config.app = app;
    config.beacon_share = beacon_share;
    Engine::start(config).unwrap()
}

/// Validator `me`'s engine config with the test limits and app genesis.
fn config_for(g: &Genesis, me: u16, dir: &Path, listen: Listen) -> EngineConfig {
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
    config
}

/// `N` engines (each config passed through `tune` first), connected to
/// each other. Keep the dirs alive as long as the engines.
async fn connected(
    tune: impl Fn(u16, &mut EngineConfig),
) -> (Genesis, Vec<EngineHandle>, Vec<tempfile::TempDir>) {
    let (sockets, addrs, dirs) = support::bind(N);
    let g = genesis(&addrs);
    let engines: Vec<EngineHandle> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let me = i as u16;
            let mut config = config_for(&g, me, dirs[i].path(), Listen::Socket(s));
            tune(me, &mut config);
            Engine::start(config).unwrap()
        })
        .collect();
    let all: Vec<&EngineHandle> = engines.iter().collect();
    wait_until(&all, "full connectivity", |_, s| {
        s.peers_connected == usize::from(N) - 1
    })
    .await;
    (g, engines, dirs)
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
    let (sockets, addrs, dirs) = support::bind(N);
    let g = genesis(&addrs);

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
            let tx = one_chip(&g.chain_id, &from, to, nonce);
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

/// Players bet through different validators; the dice come from the
/// validators' threshold beacon over QUIC while validator 3 holds no share
/// (t = 3 of 4 still roll); every node ends with the same tables, balances and
/// roots, and the chips add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_engines_roll_the_dice_without_one_share() {
    const ROLLS: u64 = 3;
    let (sockets, addrs, dirs) = support::bind(N);
    let g = genesis(&addrs);
    let (public, shares) = deal_from_seed(4, 3, [0x5e; 32]).unwrap();
    let mut app = app_genesis();
    app.beacon = Some(public);
    app.roll_interval_ms = 100;
    let engines: Vec<EngineHandle> = sockets
        .into_iter()
        .zip(shares)
        .enumerate()
        .map(|(i, (s, share))| {
            // Validator 3 withholds: it has no share to sign with.
            let share = (i != 3).then_some(share);
            start_with(
                &g,
                i as u16,
                dirs[i].path(),
                Listen::Socket(s),
                app.clone(),
                share,
            )
        })
        .collect();
    let all: Vec<&EngineHandle> = engines.iter().collect();
    let submit = |i: usize, nonce: u64, action: Action| {
        let from = player(i as u16);
        let tx = Transaction {
            from: from.public(),
            nonce,
            action,
        }
        .sign(&g.chain_id, &from);
        all[i].submit(tx.encode())
    };
    // Player 0 is the house.
    submit(
        0,
        0,
        Action::OpenTable {
            bankroll: 900,
            params: TableParams {
                min_bet: 1,
                max_bet: 10,
            },
        },
    )
    .await
    .unwrap();
    let table = |e: &EngineHandle| -> Option<Table> {
        e.reader()
            .app_get(&table_key(1))
            .unwrap()
            .map(|v| Table::decode(&v).unwrap())
    };
    let end = tokio::time::Instant::now() + DEADLINE;
    while table(all[1]).is_none() {
        assert!(tokio::time::Instant::now() < end, "table never opened");
        tokio::time::sleep(POLL).await;
    }
    // Players 1..3 bet a one-roll Field each round, each through its own
    // validator, until the table has rolled ROLLS times everywhere.
    let mut nonces = [0u64; 4];
    while all.iter().any(|e| table(e).map_or(0, |t| t.rolls) < ROLLS) {
        assert!(
            tokio::time::Instant::now() < end,
            "dice never rolled {ROLLS} times"
        );
        for (i, nonce) in nonces.iter_mut().enumerate().skip(1) {
            let bet = Action::PlaceBet {
                table: 1,
                bet: BetKind::Field,
                amount: 2,
            };
            if submit(i, *nonce, bet).await.is_ok() {
                *nonce += 1;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let stats: Vec<_> = all.iter().map(|e| e.status().beacon).collect();
    assert_eq!(stats[3].shares_signed, 0, "validator 3 has no share");
    assert!(
        stats[..3].iter().all(|s| s.shares_signed >= ROLLS),
        "{stats:?}"
    );
    assert!(stats.iter().all(|s| s.invalid_shares == 0), "{stats:?}");

    // Compare at a common height: stop, then read every store.
    let mut heights = Vec::new();
    for e in engines {
        let s = e.status();
        assert!(s.supply.conserved(), "{:?}", s.supply);
        heights.push(s.height);
        e.shutdown().await.unwrap();
    }
    let common = *heights.iter().min().unwrap();
    let stores: Vec<Store> = dirs
        .iter()
        .map(|d| Store::open(d.path().join("db")).unwrap())
        .collect();
    let roots: Vec<_> = stores
        .iter()
        .map(|s| s.reader().app_get(&root_key(common)).unwrap().unwrap())
        .collect();
    assert!(
        roots.iter().all(|r| *r == roots[0]),
        "roots differ at {common}"
    );
    // Stores may be a few blocks apart; balances are compared where they
    // agree in height, and the rolls happened on every node.
    for s in &stores {
        let t = Table::decode(&s.reader().app_get(&table_key(1)).unwrap().unwrap()).unwrap();
        assert!(t.rolls >= ROLLS);
    }
}

/// A transaction submitted to one validator reaches every other validator's
/// mempool by gossip (their trackers see it arrive before any proposal
/// carries it), and commits everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_are_gossiped_to_every_mempool() {
    use bitcraps_node::engine::SubmitTrace;
    use bitcraps_node::trace::tracker::{Origin, Stage};

    let (g, engines, _dirs) = connected(|_, _| {}).await;
    let all: Vec<&EngineHandle> = engines.iter().collect();
    let from = player(0);
    let to = player(1).public();
    let mut ids = Vec::new();
    for nonce in 0..TRANSFERS {
        let tx = one_chip(&g.chain_id, &from, to, nonce);
        let id = uuid::Uuid::now_v7();
        let trace = SubmitTrace {
            correlation_id: id,
            origin: Origin::default(),
            received_unix_us: bitcraps_node::trace::unix_now_us(),
        };
        engines[0].submit_traced(tx.encode(), trace).await.unwrap();
        ids.push(id);
    }
    wait_until(&all, "every transfer committed", |_, s| {
        s.committed_tx >= TRANSFERS
    })
    .await;
    for (i, e) in engines.iter().enumerate().skip(1) {
        for id in &ids {
            let timelines = e.tracker().get(id);
            let t = timelines
                .first()
                .unwrap_or_else(|| panic!("validator {i} never heard of {id}"));
            let stages: Vec<Stage> = t.stages.iter().map(|s| s.stage).collect();
            assert!(
                stages.contains(&Stage::Mempool),
                "validator {i} did not receive {id} by gossip: {stages:?}"
            );
            assert!(stages.contains(&Stage::Executed), "{stages:?}");
        }
    }
    for e in engines {
        e.shutdown().await.unwrap();
    }
}

/// Receipts are found by transaction id: from the recent transaction log
/// first, and from the background index after a restart (log empty) even
/// when the index file was lost (rebuilt from the per-block receipts).
/// `index_receipts = false` on one validator: it stores no receipt, still
/// knows (from its transaction log) that the transactions committed, and
/// agrees with the others on every state root (receipts are not state).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receipts_are_found_by_id_after_a_restart_and_not_kept_without_the_index() {
    let (g, mut engines, dirs) = connected(|me, config| config.index_receipts = me != 3).await;
    let from = player(0);
    let to = player(1).public();
    let mut hashes = Vec::new();
    for nonce in 0..TRANSFERS {
        let tx = one_chip(&g.chain_id, &from, to, nonce);
        hashes.push(engines[0].submit(tx.encode()).await.unwrap());
    }
    {
        let all: Vec<&EngineHandle> = engines.iter().collect();
        wait_until(&all, "every transfer committed", |_, s| {
            s.committed_tx >= TRANSFERS
        })
        .await;
    }
    assert!(engines[0].indexes_receipts() && !engines[3].indexes_receipts());
    let mut heights = Vec::new();
    for h in &hashes {
        let r = engines[0]
            .receipt(h)
            .unwrap()
            .expect("receipt on validator 0");
        assert_eq!((r.hash, r.result), (*h, Ok(())));
        assert_eq!(engines[0].tx_times(h).unwrap().height, Some(r.height));
        for (i, e) in engines.iter().enumerate().skip(1) {
            assert_eq!(
                e.receipt(h).unwrap(),
                (i != 3).then_some(r),
                "validator {i}"
            );
        }
        let times = engines[3].tx_times(h).unwrap_or_default();
        assert!(times.committed_ms.is_some(), "{h:?}");
        heights.push(r.height);
    }
    let common = engines.iter().map(|e| e.status().height).min().unwrap_or(0);
    assert!(common > 0);
    let roots: Vec<_> = engines
        .iter()
        .map(|e| e.reader().app_get(&root_key(common)).unwrap().unwrap())
        .collect();
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");

    // Restart validator 1 without its index file: it forgets its recent log,
    // rebuilds the index in the background, and finds every receipt again.
    let addr = engines[1].local_addr();
    let old = engines.remove(1);
    old.shutdown().await.unwrap();
    std::fs::remove_file(dirs[1].path().join("txindex")).unwrap();
    let mut config = config_for(&g, 1, dirs[1].path(), Listen::Addr(addr));
    config.index_receipts = true;
    engines.insert(1, Engine::start(config).unwrap());
    assert!(
        engines[1].tx_times(&hashes[0]).is_none(),
        "the log starts empty"
    );
    let end = tokio::time::Instant::now() + DEADLINE;
    for (h, height) in hashes.iter().zip(&heights) {
        loop {
            if let Some(r) = engines[1].receipt(h).unwrap() {
                assert_eq!((r.hash, r.height, r.result), (*h, *height, Ok(())));
                break;
            }
            assert!(tokio::time::Instant::now() < end, "{h:?} never indexed");
            tokio::time::sleep(POLL).await;
        }
    }
    assert!(dirs[1].path().join("txindex").exists());
    for e in engines {
        e.shutdown().await.unwrap();
    }
}
