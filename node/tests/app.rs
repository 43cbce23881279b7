//! The application layer end to end through its public API: clients' signed
//! transfers go through a mempool, proposals execute on two independent
//! nodes, and the persisted writes reload to the same state.

use bitcraps_crypto::Keypair;
use bitcraps_node::app::{
    split_payload, Action, Allocation, AppGenesis, AppState, BlockContext, Mempool, MempoolConfig,
    SignedTx, Transaction, VerifiedCache,
};
use std::collections::BTreeMap;

const CHAIN: &str = "bitcraps-e2e";

fn ctx(height: u64) -> BlockContext<'static> {
    BlockContext {
        chain_id: CHAIN,
        height,
        timestamp_ms: 1_000 * height,
        store_receipts: true,
    }
}

#[test]
fn mempool_to_execution_to_reload() {
    let players: Vec<Keypair> = (1..=8u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
    let genesis = AppGenesis {
        allocations: players
            .iter()
            .map(|k| Allocation {
                account: k.public(),
                balance: 1_000,
            })
            .collect(),
        faucet: None,
        ..AppGenesis::default()
    };
    genesis.validate().unwrap();
    let mut leader = AppState::genesis(&genesis);
    let mut follower = AppState::genesis(&genesis);
    let mut store: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (k, v) in leader.genesis_writes() {
        store.insert(k, v.unwrap());
    }
    let mut pool = Mempool::new(MempoolConfig::default());
    let (mut leader_cache, mut follower_cache) = (VerifiedCache::new(1_000), VerifiedCache::new(0));

    // Each player signs 5 transfers; they arrive interleaved, as clients would
    // send them, and the node admits them the way the HTTP handler will.
    for nonce in 0..5u64 {
        for (i, p) in players.iter().enumerate() {
            let to = players[(i + 1) % players.len()].public();
            let bytes = Transaction {
                from: p.public(),
                nonce,
                action: Action::Transfer { to, amount: 10 },
            }
            .sign(CHAIN, p)
            .encode();
            let tx = SignedTx::decode(&bytes).unwrap();
            tx.verify(CHAIN).unwrap();
            let id = tx.hash();
            leader_cache.insert_tx(id, tx);
            let committed = leader.account(&p.public()).nonce;
            pool.insert(tx, bytes, id, committed).unwrap();
        }
    }
    assert_eq!(pool.len(), 40);

    let mut view = 0;
    let mut executed = 0;
    while !pool.is_empty() {
        view += 1;
        let (payload, ids) = pool.take_payload(view, 2_000, |k| leader.account(k).nonce);
        assert!(!ids.is_empty() && payload.len() <= 2_000);
        assert_eq!(split_payload(&payload).unwrap().len(), ids.len());
        let height = leader.height() + 1;
        let a = leader
            .execute_block(ctx(height), &payload, &mut leader_cache)
            .unwrap();
        let b = follower
            .execute_block(ctx(height), &payload, &mut follower_cache)
            .unwrap();
        assert_eq!(a, b, "a node without a warm cache reaches the same result");
        assert_eq!(a.rejected, 0);
        executed += a.accepted;
        for (k, v) in a.writes {
            match v {
                Some(v) => store.insert(k, v),
                None => store.remove(&k),
            };
        }
        pool.on_commit(view, &ids, |k| leader.account(k).nonce);
    }
    assert_eq!(executed, 40);
    assert_eq!(pool.in_flight(), 0);
    for p in &players {
        let a = leader.account(&p.public());
        assert_eq!((a.balance, a.nonce), (1_000, 5), "everyone sent and got 50");
    }
    let reloaded = AppState::load(&genesis, store).unwrap();
    assert_eq!(reloaded.state_root(), leader.state_root());
    assert_eq!(reloaded.height(), leader.height());
    assert_eq!(reloaded.committed_tx(), 40);
}
