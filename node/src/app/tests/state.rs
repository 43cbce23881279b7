//! Tests of `app::state`: execution rules, persistence and the state root.

use super::*;
use crate::app::genesis::Allocation;
use crate::app::payload::PayloadBuilder;
use crate::app::tree::{bit, first_difference, node_hash};
use crate::app::tx::{Action, Transaction};
use bitcraps_crypto::Keypair;
use proptest::prelude::*;

const CHAIN: &str = "bitcraps-test";

fn kp(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

fn genesis(balances: &[(u8, u64)]) -> AppState {
    AppState::genesis(&AppGenesis {
        allocations: balances
            .iter()
            .map(|(i, b)| Allocation {
                account: kp(*i).public(),
                balance: *b,
            })
            .collect(),
        faucet: None,
        ..AppGenesis::default()
    })
}

fn transfer(from: &Keypair, nonce: u64, to: &Keypair, amount: u64) -> Vec<u8> {
    Transaction {
        from: from.public(),
        nonce,
        action: Action::Transfer {
            to: to.public(),
            amount,
        },
    }
    .sign(CHAIN, from)
    .encode()
}

fn payload(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = PayloadBuilder::new(usize::MAX, MAX_TXS_PER_BLOCK);
    for e in entries {
        assert!(b.try_push(e));
    }
    b.finish()
}

fn run(s: &mut AppState, entries: &[Vec<u8>]) -> BlockResult {
    let mut cache = VerifiedCache::new(1000);
    let h = s.height() + 1;
    s.execute_block(ctx(h), &payload(entries), &mut cache)
        .unwrap()
}

/// Block `h` on the test chain, one second of block time per height.
fn ctx(h: u64) -> BlockContext<'static> {
    BlockContext {
        chain_id: CHAIN,
        height: h,
        timestamp_ms: h.saturating_mul(1_000),
        store_receipts: true,
    }
}

fn results(r: &BlockResult) -> Vec<Result<(), Rejection>> {
    r.receipts.iter().map(|r| r.result).collect()
}

fn total(s: &AppState) -> u128 {
    s.accounts.values().map(|a| u128::from(a.balance)).sum()
}

/// Applies writes to a key-value map, as the store would.
fn apply(kv: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: &[StateWrite]) {
    for (k, v) in writes {
        match v {
            Some(v) => kv.insert(k.clone(), v.clone()),
            None => kv.remove(k),
        };
    }
}

#[test]
fn transfer_moves_chips_and_consumes_nonce() {
    let (a, b) = (kp(1), kp(2));
    let mut s = genesis(&[(1, 100)]);
    let r = run(&mut s, &[transfer(&a, 0, &b, 30), transfer(&a, 1, &b, 70)]);
    assert_eq!(results(&r), vec![Ok(()), Ok(())]);
    assert_eq!((r.accepted, r.rejected), (2, 0));
    assert_eq!(
        s.account(&a.public()),
        Account {
            balance: 0,
            nonce: 2
        }
    );
    assert_eq!(
        s.account(&b.public()),
        Account {
            balance: 100,
            nonce: 0
        }
    );
    assert_eq!(s.height(), 1);
    assert_eq!(s.committed_tx(), 2);
    assert_eq!(r.state_root, s.state_root());
    assert_eq!(r.receipts[1].index, 1);
    assert_eq!(r.receipts[1].height, 1);
    // Sending to yourself moves nothing but consumes the nonce.
    let r = run(&mut s, &[transfer(&b, 0, &b, 60)]);
    assert_eq!(results(&r), vec![Ok(())]);
    assert_eq!(
        s.account(&b.public()),
        Account {
            balance: 100,
            nonce: 1
        }
    );
}

#[test]
fn every_rejection_kind_and_nonce_rule() {
    let (a, b, c) = (kp(1), kp(2), kp(3));
    let mut s = genesis(&[(1, 50)]);
    let wrong_chain = Transaction {
        from: a.public(),
        nonce: 0,
        action: Action::Transfer {
            to: b.public(),
            amount: 1,
        },
    }
    .sign("other-chain", &a)
    .encode();
    let garbage = vec![1u8, 2, 3];
    let r = run(
        &mut s,
        &[
            garbage.clone(),
            wrong_chain,
            transfer(&a, 5, &b, 1),  // future nonce
            transfer(&a, 0, &b, 0),  // zero: consumes 0
            transfer(&a, 1, &b, 51), // too much: consumes 1
            transfer(&a, 1, &b, 1),  // nonce 1 already used
            transfer(&c, 0, &b, 1),  // unfunded: consumes c's nonce 0
            transfer(&a, 2, &b, 50),
        ],
    );
    assert_eq!(
        results(&r),
        vec![
            Err(Rejection::Malformed),
            Err(Rejection::BadSignature),
            Err(Rejection::BadNonce {
                expected: 0,
                got: 5
            }),
            Err(Rejection::ZeroAmount),
            Err(Rejection::InsufficientFunds {
                balance: 50,
                needed: 51
            }),
            Err(Rejection::BadNonce {
                expected: 2,
                got: 1
            }),
            Err(Rejection::InsufficientFunds {
                balance: 0,
                needed: 1
            }),
            Ok(()),
        ]
    );
    assert_eq!((r.accepted, r.rejected), (1, 7));
    assert_eq!(r.receipts[0].hash, tx_hash(&garbage));
    assert_eq!(
        s.account(&a.public()),
        Account {
            balance: 0,
            nonce: 3
        }
    );
    assert_eq!(
        s.account(&b.public()),
        Account {
            balance: 50,
            nonce: 0
        }
    );
    assert_eq!(
        s.account(&c.public()),
        Account {
            balance: 0,
            nonce: 1
        }
    );
    let codes: Vec<&str> = r
        .receipts
        .iter()
        .filter_map(|r| r.result.err())
        .map(|e| e.code())
        .collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "bad_signature",
            "bad_nonce",
            "zero_amount",
            "insufficient_funds",
            "bad_nonce",
            "insufficient_funds"
        ]
    );
    assert!(Rejection::BadNonce {
        expected: 2,
        got: 1
    }
    .to_string()
    .contains("expects 2"));
    // The stale-nonce receipt is reported but not persisted.
    let persisted = stored_receipts(&r);
    assert!(!persisted.contains(&r.receipts[5]));
    assert!(persisted.contains(&r.receipts[4]));
    assert_eq!(persisted.len(), r.receipts.len() - 1);
}

/// The receipts `r` stores, decoded from its receipt chunks in key order.
fn stored_receipts(r: &BlockResult) -> Vec<Receipt> {
    let mut chunks: Vec<_> = r
        .writes
        .iter()
        .filter(|(k, _)| k.starts_with(b"R/"))
        .collect();
    chunks.sort();
    chunks
        .iter()
        .flat_map(|(_, v)| decode_receipts(v.as_ref().unwrap()).unwrap())
        .collect()
}

#[test]
fn bad_nonce_from_unknown_account_creates_nothing() {
    let mut s = genesis(&[(1, 10)]);
    let root = s.state_root();
    let r = run(&mut s, &[transfer(&kp(9), 3, &kp(1), 1)]);
    assert_eq!(s.account_count(), 1);
    assert_eq!(r.state_root, root, "no account changed");
    assert!(!r.writes.iter().any(|(k, _)| k.starts_with(b"a/")));
}

#[test]
fn invalid_framing_executes_nothing_but_advances() {
    let mut s = genesis(&[(1, 10)]);
    let root = s.state_root();
    let mut cache = VerifiedCache::new(10);
    let r = s
        .execute_block(ctx(1), &[0xff, 0xff, 0xff, 0x7f, 1], &mut cache)
        .unwrap();
    assert!(r.receipts.is_empty() && r.payload_error.is_some());
    assert_eq!(s.height(), 1);
    assert_eq!(r.state_root, root);
    assert!(r.writes.contains(&(root_key(1), Some(root.0.to_vec()))));
    // An empty payload is fine and also advances.
    let r = s.execute_block(ctx(2), &[], &mut cache).unwrap();
    assert!(r.payload_error.is_none() && r.receipts.is_empty());
}

#[test]
fn wrong_height_is_refused_without_change() {
    let mut s = genesis(&[(1, 10)]);
    let mut cache = VerifiedCache::new(10);
    let p = payload(&[transfer(&kp(1), 0, &kp(2), 1)]);
    for h in [0, 2, u64::MAX] {
        assert_eq!(
            s.execute_block(ctx(h), &p, &mut cache),
            Err(ExecError::WrongHeight {
                expected: 1,
                got: h
            })
        );
    }
    assert_eq!(s.height(), 0);
    assert_eq!(s.account(&kp(1).public()).nonce, 0);
    assert!(cache.is_empty());
}

#[test]
fn replays_do_not_overwrite_receipts() {
    let (a, b) = (kp(1), kp(2));
    let mut s = genesis(&[(1, 10)]);
    let t = transfer(&a, 0, &b, 1);
    let r1 = run(&mut s, &[t.clone(), t.clone()]);
    assert_eq!(
        results(&r1),
        vec![
            Ok(()),
            Err(Rejection::BadNonce {
                expected: 1,
                got: 0
            })
        ]
    );
    assert_eq!(stored_receipts(&r1), vec![r1.receipts[0]]);
    // Replayed in a later block: reported, not persisted.
    let r2 = run(&mut s, &[t]);
    assert_eq!(r2.rejected, 1);
    assert!(!r2.writes.iter().any(|(k, _)| k.starts_with(b"R/")));
    assert!(is_replay(&r2.receipts[0]) && !is_replay(&r1.receipts[0]));
}

#[test]
fn receipts_are_stored_per_block_in_bounded_chunks() {
    let mut s = genesis(&[(1, 10)]);
    // Malformed entries are the smallest: one receipt each, all stored.
    let n = RECEIPTS_PER_CHUNK + 3;
    let entries: Vec<Vec<u8>> = (0..n as u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let r = run(&mut s, &entries);
    let chunks: Vec<_> = r
        .writes
        .iter()
        .filter(|(k, _)| k.starts_with(b"R/"))
        .collect();
    assert_eq!(chunks.len(), 2);
    assert_eq!(parse_block_receipts_key(&chunks[0].0), Some((1, 0)));
    assert_eq!(parse_block_receipts_key(&chunks[1].0), Some((1, 1)));
    assert_eq!(stored_receipts(&r), r.receipts);
    assert!(
        block_receipts_key(1, 1) < block_receipts_key(2, 0),
        "heights sort"
    );
    assert!(block_receipts_key(2, 0).starts_with(&block_receipts_prefix(2)));
    assert_eq!(parse_block_receipts_key(b"R/short"), None);
    // Without receipts the block stores none, and the root is the same.
    let mut other = genesis(&[(1, 10)]);
    let mut no_receipts = ctx(1);
    no_receipts.store_receipts = false;
    let p = payload(&entries);
    let r2 = other
        .execute_block(no_receipts, &p, &mut VerifiedCache::new(10))
        .unwrap();
    assert!(!r2.writes.iter().any(|(k, _)| k.starts_with(b"R/")));
    assert_eq!(r2.state_root, r.state_root);
    assert_eq!(r2.receipts, r.receipts);
}

#[test]
fn the_largest_receipt_chunk_fits_a_store_value() {
    let worst = Receipt {
        hash: hash(b"x"),
        height: u64::MAX,
        index: u32::MAX,
        result: Err(Rejection::BadNonce {
            expected: u64::MAX,
            got: u64::MAX,
        }),
    };
    let chunk = encode_receipts(&vec![worst; RECEIPTS_PER_CHUNK]);
    assert!(
        chunk.len() <= crate::storage::MAX_APP_VALUE_BYTES / 2,
        "{}",
        chunk.len()
    );
    assert_eq!(decode_receipts(&chunk).unwrap().len(), RECEIPTS_PER_CHUNK);
    // A chunk over the bound is refused, not trusted.
    let over = encode_receipts(&vec![worst; RECEIPTS_PER_CHUNK + 1]);
    assert!(decode_receipts(&over).is_err());
}

#[test]
fn cache_is_filled_and_trusted() {
    let (a, b) = (kp(1), kp(2));
    let mut s = genesis(&[(1, 10)]);
    let mut cache = VerifiedCache::new(10);
    let good = transfer(&a, 0, &b, 1);
    let p = payload(std::slice::from_ref(&good));
    s.execute_block(ctx(1), &p, &mut cache).unwrap();
    assert!(cache.contains(&tx_hash(&good)));
    // A bad signature is not cached...
    let mut bad = transfer(&a, 1, &b, 1);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let r = s
        .execute_block(ctx(2), &payload(&[bad.clone()]), &mut cache)
        .unwrap();
    assert_eq!(results(&r), vec![Err(Rejection::BadSignature)]);
    assert!(!cache.contains(&tx_hash(&bad)));
    // ...and a cached id skips verification (the cache is the node's own
    // record of verified ids, so this is what makes it useful).
    cache.insert(tx_hash(&bad));
    let r = s
        .execute_block(ctx(3), &payload(&[bad]), &mut cache)
        .unwrap();
    assert_eq!(results(&r), vec![Ok(())]);
}

#[test]
fn writes_reload_to_identical_state() {
    let (a, b, c) = (kp(1), kp(2), kp(3));
    let mut s = genesis(&[(1, 1000), (2, 5)]);
    let mut kv = BTreeMap::new();
    apply(&mut kv, &s.genesis_writes());
    let loaded = AppState::load(&AppGenesis::default(), kv.clone()).unwrap();
    assert_eq!(loaded.state_root(), s.state_root());
    let blocks = [
        vec![transfer(&a, 0, &b, 10), transfer(&b, 0, &c, 15)],
        vec![vec![9, 9], transfer(&c, 0, &a, 1)],
        vec![],
    ];
    for blk in &blocks {
        let r = run(&mut s, blk);
        apply(&mut kv, &r.writes);
        assert_eq!(stored_receipts(&r), r.receipts);
    }
    let loaded = AppState::load(&AppGenesis::default(), kv.clone()).unwrap();
    assert_eq!(loaded.state_root(), s.state_root());
    assert_eq!(loaded.height(), 3);
    assert_eq!(loaded.committed_tx(), 4);
    assert_eq!(loaded.accounts, s.accounts);
    assert_eq!(
        decode_account(&kv[&account_key(&c.public())]).unwrap(),
        Account {
            balance: 14,
            nonce: 1
        }
    );
    // Receipts and old roots are optional.
    let lean: Vec<_> = kv
        .iter()
        .filter(|(k, _)| !k.starts_with(b"R/") && **k != root_key(1))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        AppState::load(&AppGenesis::default(), lean)
            .unwrap()
            .state_root(),
        s.state_root()
    );
    // A loaded state keeps executing identically.
    let mut l = loaded;
    let blk = vec![transfer(&a, 1, &c, 7)];
    assert_eq!(run(&mut l, &blk).state_root, run(&mut s, &blk).state_root);

    // Corruptions are refused.
    let mut bad = kv.clone();
    bad.insert(b"x/zzz".to_vec(), vec![]);
    assert!(AppState::load(&AppGenesis::default(), bad)
        .unwrap_err()
        .contains("unexpected"));
    let mut bad = kv.clone();
    bad.insert(
        account_key(&b.public()),
        encode_account(&Account {
            balance: 1,
            nonce: 0,
        }),
    );
    assert!(AppState::load(&AppGenesis::default(), bad)
        .unwrap_err()
        .contains("differs"));
    let mut bad = kv.clone();
    bad.remove(META_HEIGHT);
    assert!(AppState::load(&AppGenesis::default(), bad).is_err());
    let mut bad = kv.clone();
    bad.insert(root_key(99), vec![0; 32]);
    assert!(AppState::load(&AppGenesis::default(), bad).is_err());
    let mut bad = kv.clone();
    bad.insert(account_key(&b.public()), vec![0; 15]);
    assert!(AppState::load(&AppGenesis::default(), bad).is_err());
    let mut bad = kv;
    bad.insert(META_FORMAT.to_vec(), vec![2]);
    assert!(AppState::load(&AppGenesis::default(), bad).is_err());
}

#[test]
fn key_and_value_helpers() {
    let a = Account {
        balance: u64::MAX,
        nonce: 7,
    };
    assert_eq!(decode_account(&encode_account(&a)).unwrap(), a);
    assert!(decode_account(&[0; 17]).is_err());
    assert!(root_key(1) < root_key(256), "heights sort");
    let r = Receipt {
        hash: hash(b"x"),
        height: 9,
        index: 3,
        result: Err(Rejection::InsufficientFunds {
            balance: 1,
            needed: 2,
        }),
    };
    assert_eq!(decode_receipts(&encode_receipts(&[r])).unwrap(), vec![r]);
    let mut v = encode_receipts(&[r]);
    v.push(0);
    assert!(decode_receipts(&v).is_err());
    assert!(decode_receipts(&[2]).is_err());
    assert!(decode_receipts(&[]).is_err());
    // The per-transaction value of earlier versions: version byte, one receipt.
    let mut legacy = vec![1];
    legacy.extend(postcard::to_stdvec(&r).unwrap());
    assert_eq!(decode_receipt(&legacy).unwrap(), r);
    legacy.push(0);
    assert!(decode_receipt(&legacy).is_err());
}

#[test]
fn roots_distinguish_states() {
    let base = genesis(&[(1, 10), (2, 10)]);
    let mut roots = vec![
        base.state_root(),
        genesis(&[(1, 10), (2, 11)]).state_root(),
        genesis(&[(1, 10)]).state_root(),
        genesis(&[(1, 10), (3, 10)]).state_root(),
        genesis(&[]).state_root(),
    ];
    let mut nonce_only = base.clone();
    run(&mut nonce_only, &[transfer(&kp(1), 0, &kp(2), 0)]);
    roots.push(nonce_only.state_root());
    let n = roots.len();
    roots.sort();
    roots.dedup();
    assert_eq!(roots.len(), n, "every state has its own root");
    // With no accounts and no tables the tree holds only the roll clock.
    assert_eq!(
        genesis(&[]).state_root(),
        game::clock_leaf(
            &RollClock {
                next_table_id: 1,
                ..RollClock::default()
            }
            .encode()
        )
    );
    // Allocation order does not matter.
    assert_eq!(genesis(&[(2, 10), (1, 10)]).state_root(), base.state_root());
}

/// The root from the module doc's definition, computed naively over every
/// leaf: accounts, tables and the roll clock.
fn reference_root(state: &AppState) -> Hash32 {
    fn go(leaves: &[([u8; 32], Hash32)]) -> Hash32 {
        match leaves {
            [] => Hash32::ZERO,
            [(_, h)] => *h,
            _ => {
                let first = &leaves[0].0;
                let last = &leaves[leaves.len() - 1].0;
                let d = first_difference(first, last).unwrap();
                let split = leaves.iter().position(|(k, _)| bit(k, d) == 1).unwrap();
                node_hash(d, &go(&leaves[..split]), &go(&leaves[split..]))
            }
        }
    }
    let mut leaves: Vec<_> = state
        .accounts
        .iter()
        .map(|(k, a)| (*k.as_bytes(), leaf_hash(k, a)))
        .collect();
    for (id, t) in &state.game.tables {
        leaves.push((
            game::table_tree_key(*id),
            game::table_leaf(*id, &t.encode()),
        ));
    }
    leaves.push((
        game::clock_tree_key(),
        game::clock_leaf(&state.game.clock.encode()),
    ));
    leaves.sort();
    go(&leaves)
}

#[test]
fn tree_matches_reference_definition() {
    let mut s = genesis(&[(1, 100), (2, 3), (3, 0), (4, 9)]);
    assert_eq!(s.state_root(), reference_root(&s));
    for i in 5..40u8 {
        run(&mut s, &[transfer(&kp(1), u64::from(i) - 5, &kp(i), 1)]);
        assert_eq!(s.state_root(), reference_root(&s), "after adding {i}");
    }
    assert_eq!(first_difference(&[0; 32], &[0; 32]), None);
    let mut k = [0u8; 32];
    k[31] = 1;
    assert_eq!(first_difference(&[0; 32], &k), Some(255));
    assert_eq!(bit(&k, 255), 1);
}

#[test]
// Informal timing for the report only; nothing depends on the clock.
#[allow(clippy::disallowed_methods)]
fn hundred_thousand_accounts_update_incrementally() {
    // Valid keys without 100k scalar multiplications: about half of all
    // 32-byte strings decode to a usable point.
    let mut allocations = Vec::new();
    let mut i: u64 = 0;
    while allocations.len() < 100_000 {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&i.to_le_bytes());
        let h = hash(&b);
        if let Ok(k) = PublicKey::from_bytes(&h.0) {
            allocations.push(Allocation {
                account: k,
                balance: 1,
            });
        }
        i += 1;
    }
    allocations.push(Allocation {
        account: kp(1).public(),
        balance: 1_000,
    });
    let mut s = AppState::genesis(&AppGenesis {
        allocations,
        faucet: None,
        ..AppGenesis::default()
    });
    assert_eq!(s.account_count(), 100_001);
    let before = s.tree_hashes_computed();
    assert!(before >= 100_000, "genesis hashes every node once");
    // 20 transfers to 20 new accounts: ~40 changed leaves.
    let txs: Vec<Vec<u8>> = (0..20u8)
        .map(|j| transfer(&kp(1), u64::from(j), &kp(100 + j), 1))
        .collect();
    let mut cache = VerifiedCache::new(100);
    let p = payload(&txs);
    let start = std::time::Instant::now();
    let r = s.execute_block(ctx(1), &p, &mut cache).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(r.accepted, 20);
    let rehashed = s.tree_hashes_computed() - before;
    // 21 leaves changed or added, ~17 levels each, shared near the root.
    assert!(rehashed < 21 * 40, "rehashed {rehashed} nodes");
    eprintln!(
        "100k accounts: block of 20 transfers executed in {elapsed:?}, {rehashed} nodes rehashed"
    );
    let full = AppState::load(&AppGenesis::default(), {
        let mut kv = BTreeMap::new();
        apply(&mut kv, &AppState::genesis_writes(&s));
        kv
    })
    .unwrap();
    assert_eq!(full.state_root(), s.state_root());
}

#[test]
fn genesis_clamps_an_invalid_supply() {
    let s = genesis(&[(1, u64::MAX), (2, 5), (1, 3)]);
    assert_eq!(total(&s), u128::from(u64::MAX));
    assert_eq!(s.account(&kp(2).public()).balance, 0);
}

#[derive(Debug, Clone)]
struct TxSpec {
    from: usize,
    to: usize,
    amount: u64,
    nonce_delta: i8,
    corrupt: bool,
}

fn tx_spec() -> impl Strategy<Value = TxSpec> {
    (
        0usize..5,
        0usize..5,
        prop_oneof![Just(0u64), 1u64..50, 40u64..200],
        prop_oneof![6 => Just(0i8), 1 => -2i8..3],
        proptest::bool::weighted(0.05),
    )
        .prop_map(|(from, to, amount, nonce_delta, corrupt)| TxSpec {
            from,
            to,
            amount,
            nonce_delta,
            corrupt,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Chips are conserved, two nodes agree, and the writes reload to the
    /// same state, whatever the transactions.
    #[test]
    fn random_blocks_conserve_and_agree(
        blocks in proptest::collection::vec(proptest::collection::vec(tx_spec(), 0..12), 1..6)
    ) {
        let keys: Vec<Keypair> = (1..=5u8).map(kp).collect();
        let mut s1 = genesis(&[(1, 100), (2, 50), (3, 0), (4, 7)]);
        let mut s2 = s1.clone();
        let supply = total(&s1);
        let mut kv = BTreeMap::new();
        apply(&mut kv, &s1.genesis_writes());
        // Nonces as the transactions' author believes them.
        let mut nonces = [0u64; 5];
        let mut c2 = VerifiedCache::new(3); // a tiny cache must not change verdicts
        for blk in &blocks {
            let mut entries = Vec::new();
            for t in blk {
                let nonce = nonces[t.from].saturating_add_signed(i64::from(t.nonce_delta));
                if t.nonce_delta == 0 {
                    nonces[t.from] += 1;
                }
                let mut e = transfer(&keys[t.from], nonce, &keys[t.to], t.amount);
                if t.corrupt {
                    e[10] ^= 0x55;
                }
                entries.push(e);
            }
            let r1 = run(&mut s1, &entries);
            let h = s2.height() + 1;
            let r2 = s2.execute_block(ctx(h), &payload(&entries), &mut c2).unwrap();
            prop_assert_eq!(&r1, &r2);
            prop_assert_eq!(total(&s1), supply);
            prop_assert_eq!(r1.accepted + r1.rejected, entries.len() as u32);
            prop_assert_eq!(s1.state_root(), reference_root(&s1));
            apply(&mut kv, &r1.writes);
        }
        let loaded = AppState::load(&AppGenesis::default(), kv).unwrap();
        prop_assert_eq!(loaded.state_root(), s1.state_root());
        prop_assert_eq!(&loaded.accounts, &s1.accounts);
        prop_assert_eq!(loaded.committed_tx(), s1.committed_tx());
    }

    #[test]
    fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut s = genesis(&[(1, 100)]);
        let root = s.state_root();
        let mut cache = VerifiedCache::new(10);
        let r = s.execute_block(ctx(1), &bytes, &mut cache).unwrap();
        prop_assert_eq!(r.accepted, 0);
        prop_assert_eq!(r.state_root, root);
        prop_assert_eq!(s.height(), 1);
    }
}
