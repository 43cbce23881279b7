//! Application fixtures: a block of signed transfers and craps bets on open
//! tables, state-root inputs, and mempools of realistic size.

use bitcraps_crypto::beacon::deal_from_seed;
use bitcraps_crypto::hash::hash_parts;
use bitcraps_crypto::{hash, Hash32, Keypair, PublicKey};
use bitcraps_node::app::craps::{BetKind, TableParams};
use bitcraps_node::app::{
    Action, Allocation, AppGenesis, AppState, BlockContext, BlockResult, Mempool, MempoolConfig,
    PayloadBuilder, SignedTx, Transaction, VerifiedCache, MAX_TXS_PER_BLOCK,
};

/// Chain id of every application fixture.
pub const CHAIN: &str = "bitcraps-bench";
/// Block time: block `h` has timestamp `h * BLOCK_MS`.
const BLOCK_MS: u64 = 1_000;
/// Tables the house opens in block 1 (bets are spread over them).
pub const TABLES: u64 = 8;
const PLAYER_BALANCE: u64 = 10_000;
const TABLE_BANKROLL: u64 = 1_000_000;
/// Bet kinds placeable on the come-out roll, cycled through by the bets.
const BETS: [BetKind; 8] = [
    BetKind::Pass,
    BetKind::DontPass,
    BetKind::Field,
    BetKind::AnySeven,
    BetKind::AnyCraps,
    BetKind::Yo,
    BetKind::Place { number: 6 },
    BetKind::Hard { number: 8 },
];

/// A deterministic key: `tag` and `i` name it.
pub fn keypair(tag: &str, i: u64) -> Keypair {
    Keypair::from_seed(hash_parts(&[tag.as_bytes(), &i.to_le_bytes()]).as_bytes())
}

/// `action` from `from` at `nonce`, signed for [`CHAIN`].
pub fn signed_tx(from: &Keypair, nonce: u64, action: Action) -> SignedTx {
    Transaction {
        from: from.public(),
        nonce,
        action,
    }
    .sign(CHAIN, from)
}

/// A transfer and a bet, for the codec benchmarks.
pub fn sample_txs() -> (SignedTx, SignedTx) {
    let (a, b) = (keypair("player", 1), keypair("player", 2));
    let transfer = signed_tx(
        &a,
        17,
        Action::Transfer {
            to: b.public(),
            amount: 1_000,
        },
    );
    let bet = signed_tx(
        &b,
        3,
        Action::PlaceBet {
            table: 1,
            bet: BetKind::Pass,
            amount: 25,
        },
    );
    (transfer, bet)
}

fn payload(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = PayloadBuilder::new(usize::MAX, MAX_TXS_PER_BLOCK);
    for e in entries {
        assert!(b.try_push(e), "entry fits");
    }
    b.finish()
}

/// Block 2 of a chain whose block 1 opened [`TABLES`] craps tables: `txs`
/// transactions, one per player, alternating a transfer to the next player and
/// a bet (cycling through [`BETS`]) on table `1 + (i / 2) % TABLES`. Every
/// transaction's signature was verified and its decoded form cached, as the
/// node does at admission, so executing the block costs decoding-free
/// application work, the receipts and the state-root update.
#[derive(Debug)]
pub struct GameBlock {
    /// The state after block 1.
    pub pre: AppState,
    pub payload: Vec<u8>,
    /// Holds every transaction of `payload`; execution only reads it.
    pub cache: VerifiedCache,
    pub txs: usize,
}

impl GameBlock {
    pub fn new(txs: usize) -> GameBlock {
        let house = keypair("house", 0);
        let players: Vec<Keypair> = (0..txs as u64).map(|i| keypair("player", i)).collect();
        let (beacon, _shares) = deal_from_seed(4, 3, [9; 32]).expect("deal");
        let mut allocations = vec![Allocation {
            account: house.public(),
            balance: TABLES * TABLE_BANKROLL,
        }];
        allocations.extend(players.iter().map(|p| Allocation {
            account: p.public(),
            balance: PLAYER_BALANCE,
        }));
        let genesis = AppGenesis {
            allocations,
            faucet: None,
            beacon: Some(beacon),
            roll_interval_ms: BLOCK_MS,
        };
        genesis.validate().expect("valid genesis");
        let mut pre = AppState::genesis(&genesis);
        let open: Vec<Vec<u8>> = (0..TABLES)
            .map(|nonce| {
                let action = Action::OpenTable {
                    bankroll: TABLE_BANKROLL,
                    params: TableParams {
                        min_bet: 5,
                        max_bet: 1_000,
                    },
                };
                signed_tx(&house, nonce, action).encode()
            })
            .collect();
        let ctx = BlockContext {
            chain_id: CHAIN,
            height: 1,
            timestamp_ms: BLOCK_MS,
            store_receipts: true,
        };
        let r = pre
            .execute_block(ctx, &payload(&open), &mut VerifiedCache::new(64))
            .expect("block 1");
        assert_eq!(r.accepted as u64, TABLES, "tables open: {:?}", r.receipts);

        let mut cache = VerifiedCache::new(txs);
        let entries: Vec<Vec<u8>> = players
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let action = if i % 2 == 0 {
                    Action::Transfer {
                        to: players[(i + 1) % players.len()].public(),
                        amount: 7,
                    }
                } else {
                    Action::PlaceBet {
                        table: 1 + (i as u64 / 2) % TABLES,
                        bet: BETS[(i / 2) % BETS.len()],
                        amount: 10,
                    }
                };
                let tx = signed_tx(p, 0, action);
                tx.verify(CHAIN).expect("valid signature");
                let encoded = tx.encode();
                cache.insert_tx(tx.hash(), tx);
                encoded
            })
            .collect();
        let mut block = GameBlock {
            pre,
            payload: payload(&entries),
            cache,
            txs,
        };
        // Check once that the block does what it claims.
        let mut s = block.pre.clone();
        let r = block.execute(&mut s);
        assert_eq!(r.accepted as usize, txs, "{:?}", r.receipts);
        assert_eq!(block.cache.len(), txs, "execution verified nothing");
        assert!(s.supply().conserved());
        block
    }

    /// Block 2's context.
    pub fn context(&self) -> BlockContext<'static> {
        BlockContext {
            chain_id: CHAIN,
            height: 2,
            timestamp_ms: 2 * BLOCK_MS,
            store_receipts: true,
        }
    }

    /// Executes the block on `state` (a clone of [`Self::pre`]).
    pub fn execute(&mut self, state: &mut AppState) -> BlockResult {
        let ctx = self.context();
        state
            .execute_block(ctx, &self.payload, &mut self.cache)
            .expect("block 2 follows block 1")
    }
}

/// `n` distinct valid account keys, cheaply: hashes that decode as points
/// (about half of all 32-byte strings do), no scalar multiplication.
pub fn account_keys(n: usize) -> Vec<PublicKey> {
    let mut keys = Vec::with_capacity(n);
    let mut i: u64 = 0;
    while keys.len() < n {
        if let Ok(k) = PublicKey::from_bytes(&hash(&i.to_le_bytes()).0) {
            keys.push(k);
        }
        i += 1;
    }
    keys
}

/// A genesis funding `leaves` accounts: building its state inserts one leaf
/// per account (plus the roll clock's) into the crit-bit tree and hashes every
/// branch once.
pub fn root_genesis(leaves: usize) -> AppGenesis {
    AppGenesis {
        allocations: account_keys(leaves)
            .into_iter()
            .map(|account| Allocation {
                account,
                balance: 1,
            })
            .collect(),
        ..AppGenesis::default()
    }
}

/// A transaction ready for [`Mempool::insert`]: decoded, encoded, id.
pub type PoolTx = (SignedTx, Vec<u8>, Hash32);

fn pool_tx(from: &Keypair, nonce: u64) -> PoolTx {
    let tx = signed_tx(
        from,
        nonce,
        Action::Transfer {
            to: keypair("merchant", 0).public(),
            amount: 1 + nonce,
        },
    );
    let encoded = tx.encode();
    let id = tx.hash();
    (tx, encoded, id)
}

/// Transactions per account already pending in [`PoolFixture::pool`].
pub const PENDING_PER_ACCOUNT: u64 = 4;

/// A mempool holding `pending` signed transfers (accounts with
/// [`PENDING_PER_ACCOUNT`] consecutive nonces each, all committed nonces 0),
/// and `incoming` further signed transfers to admit: half the next nonce of
/// pending accounts, half nonce 0 of new accounts.
#[derive(Debug)]
pub struct PoolFixture {
    pub pool: Mempool,
    pub incoming: Vec<PoolTx>,
    /// Each sender's nonce after all its pending and incoming transactions.
    next_nonce: std::collections::BTreeMap<PublicKey, u64>,
}

impl PoolFixture {
    pub fn new(pending: usize, incoming: usize, config: MempoolConfig) -> PoolFixture {
        let accounts = (pending as u64).div_ceil(PENDING_PER_ACCOUNT);
        let senders: Vec<Keypair> = (0..accounts).map(|i| keypair("sender", i)).collect();
        let mut pool = Mempool::new(config);
        for nonce in 0..PENDING_PER_ACCOUNT {
            for s in &senders {
                if pool.len() == pending {
                    break;
                }
                let (tx, encoded, id) = pool_tx(s, nonce);
                pool.insert(tx, encoded, id, 0).expect("admitted");
            }
        }
        let incoming: Vec<PoolTx> = (0..incoming as u64)
            .map(|i| {
                if i % 2 == 0 && i / 2 < accounts {
                    pool_tx(&senders[(i / 2) as usize], PENDING_PER_ACCOUNT)
                } else {
                    pool_tx(&keypair("newcomer", i), 0)
                }
            })
            .collect();
        let mut next_nonce: std::collections::BTreeMap<PublicKey, u64> =
            std::collections::BTreeMap::new();
        for (tx, _, _) in incoming.iter() {
            next_nonce.insert(tx.tx.from, tx.tx.nonce + 1);
        }
        for s in &senders {
            next_nonce.entry(s.public()).or_insert(PENDING_PER_ACCOUNT);
        }
        let f = PoolFixture {
            pool,
            incoming,
            next_nonce,
        };
        let mut check = f.pool.clone();
        assert_eq!(f.admit(&mut check), f.incoming.len(), "all admitted");
        f
    }

    /// Admits every incoming transaction into `pool` (a clone of
    /// [`Self::pool`]); returns how many were admitted.
    pub fn admit(&self, pool: &mut Mempool) -> usize {
        self.incoming
            .iter()
            .filter(|(tx, encoded, id)| pool.insert(*tx, encoded.clone(), *id, 0).is_ok())
            .count()
    }
}

impl PoolFixture {
    /// The whole pool life of the incoming transactions: admits them into
    /// `pool` (a clone of [`Self::pool`]), takes one payload for view 1 and
    /// commits it at view 1, as the engine does for a block it proposed.
    /// Returns how many transactions the payload committed.
    pub fn cycle(&self, pool: &mut Mempool) -> usize {
        self.admit(pool);
        let (_, taken) = pool.take_payload(1, MAX_PAYLOAD_BYTES, |_| 0);
        // Every account's transactions all committed: its committed nonce is
        // past its last one.
        let committed = |k: &PublicKey| self.next_nonce.get(k).copied().unwrap_or(0);
        pool.on_commit(1, &taken, committed);
        taken.len()
    }
}

/// Mempool limits with `max_txs` per payload (the default 4 MiB byte limit
/// of a proposal applies separately).
pub fn pool_config(max_txs: usize) -> MempoolConfig {
    MempoolConfig {
        max_txs_per_payload: max_txs,
        ..MempoolConfig::default()
    }
}

/// Payload byte limit the engine passes to `take_payload` (the genesis
/// default `max_payload_bytes`).
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_build() {
        let mut b = GameBlock::new(40);
        let mut s = b.pre.clone();
        assert_eq!(b.execute(&mut s).accepted, 40);
        let s = AppState::genesis(&root_genesis(100));
        assert_eq!(s.account_count(), 100);
        let f = PoolFixture::new(100, 20, pool_config(30));
        assert_eq!(f.pool.len(), 100);
        let mut p = f.pool.clone();
        let (payload, ids) = p.take_payload(1, MAX_PAYLOAD_BYTES, |_| 0);
        assert_eq!(ids.len(), 30);
        assert!(!payload.is_empty());
        // The whole cycle empties the pool when one payload takes it all.
        let f = PoolFixture::new(100, 20, pool_config(1000));
        let mut p = f.pool.clone();
        assert_eq!(f.cycle(&mut p), 120);
        assert!(p.is_empty(), "{} left", p.len());
    }
}
