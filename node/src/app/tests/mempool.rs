//! Tests of `app::mempool`.

use super::*;
use crate::app::payload::split_payload;
use crate::app::tx::{tx_hash, Action, Transaction};
use bitcraps_crypto::{hash, Keypair, Signature};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

fn key(i: usize) -> PublicKey {
    // Distinct valid keys; signatures are irrelevant here (the caller verifies).
    Keypair::from_seed(&[u8::try_from(i).unwrap() + 1; 32]).public()
}

/// A transaction from account `a` with `nonce`; `variant` changes the amount
/// so the same nonce can have several distinct transactions.
fn tx(a: usize, nonce: u64, variant: u64) -> (SignedTx, Vec<u8>, Hash32) {
    let t = SignedTx {
        tx: Transaction {
            from: key(a),
            nonce,
            action: Action::Transfer {
                to: key(9),
                amount: 1 + variant,
            },
        },
        signature: Signature([0; 64]),
    };
    let enc = t.encode();
    let h = t.hash();
    (t, enc, h)
}

fn config(capacity: usize, per_account: usize, max_txs: usize) -> MempoolConfig {
    MempoolConfig {
        capacity,
        per_account,
        max_txs_per_payload: max_txs,
    }
}

fn add(m: &mut Mempool, a: usize, nonce: u64, committed: u64) -> Result<Hash32, AdmitError> {
    add_v(m, a, nonce, 0, committed)
}

fn add_v(
    m: &mut Mempool,
    a: usize,
    nonce: u64,
    v: u64,
    committed: u64,
) -> Result<Hash32, AdmitError> {
    let (t, e, h) = tx(a, nonce, v);
    m.insert(t, e, h, committed).map(|()| h)
}

const BIG: usize = 1 << 20;

fn zero(_: &PublicKey) -> u64 {
    0
}

#[test]
fn admission_errors() {
    let mut m = Mempool::new(config(100, 4, 100));
    let h = add(&mut m, 0, 5, 5).unwrap();
    assert!(m.contains(&h));
    assert_eq!(add(&mut m, 0, 5, 5), Err(AdmitError::Duplicate));
    assert_eq!(add_v(&mut m, 0, 5, 1, 5), Err(AdmitError::DuplicateNonce));
    assert_eq!(
        add(&mut m, 1, 4, 5),
        Err(AdmitError::StaleNonce {
            expected: 5,
            got: 4
        })
    );
    assert_eq!(
        add(&mut m, 0, 9, 5),
        Err(AdmitError::NonceTooFarAhead {
            next: 5,
            got: 9,
            window: 4
        })
    );
    assert!(add(&mut m, 0, 8, 5).is_ok());
    // The pool remembers a newer committed nonce than a stale caller passes.
    assert_eq!(m.len(), 2);
    let codes = [
        AdmitError::Duplicate.code(),
        AdmitError::StaleNonce {
            expected: 0,
            got: 0,
        }
        .code(),
        AdmitError::Full { capacity: 1 }.code(),
    ];
    assert_eq!(codes, ["duplicate", "stale_nonce", "mempool_full"]);
    assert!(AdmitError::Full { capacity: 7 }.to_string().contains('7'));
}

#[test]
fn account_limit_and_capacity() {
    let mut m = Mempool::new(config(5, 3, 100));
    for n in 0..3 {
        add(&mut m, 0, n, 0).unwrap();
    }
    // Nonce 0 committed elsewhere but not yet pruned: the window moves, the
    // account still holds 3.
    assert_eq!(
        add(&mut m, 0, 3, 1),
        Err(AdmitError::AccountLimit { limit: 3 })
    );
    add(&mut m, 1, 0, 0).unwrap();
    add(&mut m, 2, 0, 0).unwrap();
    assert_eq!(add(&mut m, 3, 0, 0), Err(AdmitError::Full { capacity: 5 }));
    assert_eq!(m.len(), 5);
}

#[test]
fn fifo_across_accounts_and_limits() {
    let mut m = Mempool::new(config(100, 10, 2));
    let a = add(&mut m, 0, 0, 0).unwrap();
    let b = add(&mut m, 1, 0, 0).unwrap();
    let c = add(&mut m, 2, 0, 0).unwrap();
    let (p, hs) = m.take_payload(1, BIG, zero);
    assert_eq!(hs, vec![a, b], "arrival order, max_txs_per_payload = 2");
    let entries = split_payload(&p).unwrap();
    assert_eq!(entries, vec![m.get(&a).unwrap(), m.get(&b).unwrap()]);
    // Byte limit: one entry is 4 + 132 bytes here.
    let one = entries[0].len() + 4;
    let mut m2 = Mempool::new(config(100, 10, 100));
    for i in 0..3 {
        add(&mut m2, i, 0, 0).unwrap();
    }
    let (p, hs) = m2.take_payload(1, 2 * one + 1, zero);
    assert_eq!(hs.len(), 2);
    assert!(p.len() <= 2 * one + 1);
    assert_eq!(m2.take_payload(2, one - 1, zero).1, vec![]);
    assert_eq!(m.take_payload(2, BIG, zero).1, vec![c]);
    assert_eq!(m.in_flight(), 3);
}

#[test]
fn nonce_order_within_an_account() {
    let mut m = Mempool::new(config(100, 10, 100));
    let a2 = add(&mut m, 0, 2, 0).unwrap();
    let b0 = add(&mut m, 1, 0, 0).unwrap();
    let a1 = add(&mut m, 0, 1, 0).unwrap();
    let a0 = add(&mut m, 0, 0, 0).unwrap();
    let a4 = add(&mut m, 0, 4, 0).unwrap();
    assert_eq!(m.pending_nonce(&key(0), 0), 3);
    assert_eq!(m.pending_nonce(&key(0), 4), 5);
    assert_eq!(m.pending_nonce(&key(5), 7), 7);
    let (_, hs) = m.take_payload(1, BIG, zero);
    assert_eq!(hs, vec![b0, a0, a1, a2], "a4 waits behind the gap at 3");
    assert!(m.contains(&a4) && !m.is_in_flight(&a4));
    let a3 = add(&mut m, 0, 3, 0).unwrap();
    assert_eq!(m.take_payload(2, BIG, zero).1, vec![a3, a4]);
}

#[test]
fn in_flight_is_not_reproposed_until_released() {
    let mut m = Mempool::new(config(100, 10, 100));
    let a0 = add(&mut m, 0, 0, 0).unwrap();
    let b0 = add(&mut m, 1, 0, 0).unwrap();
    assert_eq!(m.take_payload(5, BIG, zero).1, vec![a0, b0]);
    assert_eq!(m.take_payload(6, BIG, zero).1, vec![], "in flight");
    // The next nonce goes out while its predecessor is in flight.
    let b1 = add(&mut m, 1, 1, 0).unwrap();
    let c0 = add(&mut m, 2, 0, 0).unwrap();
    assert_eq!(m.take_payload(7, BIG, zero).1, vec![b1, c0]);
    assert_eq!(m.in_flight(), 4);
    // A commit at an earlier view releases nothing.
    m.on_commit(4, &[hash(b"other")], zero);
    assert_eq!(m.in_flight(), 4);
    // View 5 and 6 are dead once view 6 commits something else. View 7 is
    // alive, but b1 was built on b0 (view 5), so it goes back too; c0 stays.
    m.on_commit(6, &[hash(b"other")], zero);
    assert_eq!(m.in_flight(), 1);
    assert!(m.is_in_flight(&c0) && !m.is_in_flight(&a0) && !m.is_in_flight(&b1));
    assert_eq!(m.take_payload(8, BIG, zero).1, vec![a0, b0, b1]);
    // View 8 commits exactly our proposal: its transactions leave the pool and
    // c0 (view 7 <= 8, not included) is released.
    let nonce = |k: &PublicKey| match k {
        k if *k == key(0) => 1,
        k if *k == key(1) => 2,
        _ => 0,
    };
    m.on_commit(8, &[a0, b0, b1], nonce);
    assert_eq!(m.len(), 1);
    assert_eq!(m.in_flight(), 0);
    assert_eq!(m.take_payload(9, BIG, nonce).1, vec![c0]);
}

#[test]
fn another_leaders_proposal_is_in_flight_here_too() {
    let mut m = Mempool::new(config(100, 10, 100));
    let a0 = add(&mut m, 0, 0, 0).unwrap();
    let a1 = add(&mut m, 0, 1, 0).unwrap();
    let b0 = add(&mut m, 1, 0, 0).unwrap();
    // A peer proposed a0 and b0 at view 5 (plus one we never saw).
    m.mark_in_flight(5, &[a0, b0, hash(b"unknown")]);
    assert_eq!(m.in_flight(), 2);
    // We propose only what is left, on top of theirs: a1 after a0.
    assert_eq!(m.take_payload(6, BIG, zero).1, vec![a1]);
    // Marking again (or our own in-flight tx) changes nothing.
    m.mark_in_flight(7, &[a0, a1]);
    assert!(m.is_in_flight(&a0) && m.is_in_flight(&a1));
    assert_eq!(m.in_flight(), 3);
    // View 5 dies (view 6 commits without it): a0 and b0 come back, and a1,
    // built on a0, comes back with it.
    m.on_commit(6, &[hash(b"other")], zero);
    assert_eq!(m.in_flight(), 0);
    assert_eq!(m.take_payload(8, BIG, zero).1, vec![a0, a1, b0]);
}

#[test]
fn stale_transactions_are_dropped() {
    let mut m = Mempool::new(config(100, 10, 100));
    let hs: Vec<Hash32> = (0..4).map(|n| add(&mut m, 0, n, 0).unwrap()).collect();
    let b0 = add(&mut m, 1, 0, 0).unwrap();
    // a0 committed here, a1 committed by another node: both leave.
    m.on_commit(1, &[hs[0]], |k| if *k == key(0) { 2 } else { 0 });
    assert_eq!(m.len(), 3);
    assert!(!m.contains(&hs[1]));
    // Account 1's nonce moved without us seeing the transaction: the take
    // notices and drops b0 instead of proposing it.
    let nonce = |k: &PublicKey| if *k == key(0) { 2 } else { 1 };
    assert_eq!(m.take_payload(2, BIG, nonce).1, vec![hs[2], hs[3]]);
    assert!(!m.contains(&b0));
    assert_eq!(m.len(), 2);
}

#[test]
fn gap_filled_elsewhere_is_found_by_the_probe() {
    let mut m = Mempool::new(config(100, 10, 100));
    let a2 = add(&mut m, 0, 2, 0).unwrap();
    assert_eq!(m.take_payload(1, BIG, zero).1, vec![]);
    // Nonces 0 and 1 commit through another node; we only see unknown ids.
    let nonce = |k: &PublicKey| if *k == key(0) { 2 } else { 0 };
    m.on_commit(2, &[hash(b"x"), hash(b"y")], nonce);
    assert_eq!(m.take_payload(3, BIG, nonce).1, vec![a2]);
}

#[test]
fn gap_probe_is_round_robin_and_bounded() {
    let n = GAP_PROBES_PER_COMMIT * 2 + 5;
    let mut m = Mempool::new(config(1000, 10, 1000));
    let keys: Vec<PublicKey> = (0..n)
        .map(|i| {
            Keypair::from_seed(&[
                (i % 250) as u8,
                (i / 250) as u8,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
            ])
            .public()
        })
        .collect();
    for k in &keys {
        let t = SignedTx {
            tx: Transaction {
                from: *k,
                nonce: 1,
                action: Action::Transfer { to: *k, amount: 1 },
            },
            signature: Signature([0; 64]),
        };
        m.insert(t, t.encode(), t.hash(), 0).unwrap();
    }
    let calls = std::cell::Cell::new(0usize);
    let one = |_: &PublicKey| {
        calls.set(calls.get() + 1);
        1
    };
    m.on_commit(1, &[], one);
    assert_eq!(calls.get(), GAP_PROBES_PER_COMMIT);
    assert_eq!(m.take_payload(10, BIG, one).1.len(), GAP_PROBES_PER_COMMIT);
    // Commits of earlier views: nothing released, the probe moves on.
    m.on_commit(3, &[], one);
    m.on_commit(4, &[], one);
    let (_, rest) = m.take_payload(11, BIG, one);
    assert_eq!(
        rest.len(),
        n - GAP_PROBES_PER_COMMIT,
        "every account probed"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        acct: usize,
        offset: u64,
        variant: u64,
    },
    Propose {
        max_bytes_txs: usize,
    },
    CommitOwn {
        pick: usize,
    },
    External {
        acct: usize,
        use_pool: bool,
    },
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..4, 0u64..6, 0u64..2).prop_map(|(acct, offset, variant)| Op::Insert { acct, offset, variant }),
        3 => (1usize..8).prop_map(|max_bytes_txs| Op::Propose { max_bytes_txs }),
        2 => any::<usize>().prop_map(|pick| Op::CommitOwn { pick }),
        1 => (0usize..4, any::<bool>()).prop_map(|(acct, use_pool)| Op::External { acct, use_pool }),
        1 => Just(Op::Tick),
    ]
}

/// The model: a chain that executes blocks with the real nonce rule, and the
/// bookkeeping needed to check the pool's promises.
#[derive(Default)]
struct Model {
    committed: [u64; 4],
    view: u64,
    last_commit_view: u64,
    outstanding: Vec<(u64, Vec<Hash32>)>,
    in_flight: HashMap<Hash32, u64>,
    info: HashMap<Hash32, (usize, u64)>,
    accepted: Vec<Hash32>,
    committed_ids: HashSet<Hash32>,
    /// Ids in a committed block, executed successfully or not: the pool may
    /// forget them.
    included: HashSet<Hash32>,
    /// Latest view at which each (account, nonce) was proposed.
    proposed_at: HashMap<(usize, u64), u64>,
    externals: u64,
}

impl Model {
    fn nonce_of(&self) -> impl Fn(&PublicKey) -> u64 + '_ {
        move |k| {
            (0..4)
                .find(|i| key(*i) == *k)
                .map_or(0, |i| self.committed[i])
        }
    }

    /// Executes a block's ids in order; returns how many succeeded.
    fn execute(&mut self, ids: &[Hash32]) -> usize {
        let mut ok = 0;
        for h in ids {
            self.included.insert(*h);
            if let Some(&(a, n)) = self.info.get(h) {
                if n == self.committed[a] {
                    self.committed[a] += 1;
                    self.committed_ids.insert(*h);
                    ok += 1;
                }
            }
        }
        ok
    }

    fn commit(&mut self, pools: &mut [Mempool; 2], view: u64, ids: &[Hash32]) {
        for p in pools.iter_mut() {
            p.on_commit(view, ids, self.nonce_of());
        }
        self.last_commit_view = view;
        self.in_flight.retain(|_, v| *v > view);
        self.outstanding.retain(|(v, _)| *v > view);
    }

    fn check(&self, m: &Mempool, capacity: usize) -> Result<(), TestCaseError> {
        prop_assert!(m.len() <= capacity);
        let mut flying = 0;
        for h in &self.accepted {
            if m.contains(h) {
                // The pool never holds back what the model released (it may
                // release more: see the re-proposal rule in Propose).
                prop_assert!(!m.is_in_flight(h) || self.in_flight.contains_key(h));
                flying += usize::from(m.is_in_flight(h));
            } else {
                // Never dropped while it could still execute.
                let (a, n) = self.info[h];
                prop_assert!(
                    self.included.contains(h) || n < self.committed[a],
                    "dropped a live transaction"
                );
            }
        }
        prop_assert_eq!(m.in_flight(), flying);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pool_keeps_its_promises(ops in proptest::collection::vec(op(), 1..80), max_txs in 1usize..6) {
        let cfg = config(12, 4, max_txs);
        // Two pools in lockstep: their hash maps are seeded differently, so
        // any iteration-order leak shows up as different payloads.
        let mut pools = [Mempool::new(cfg), Mempool::new(cfg)];
        let mut model = Model::default();
        let tx_bytes = tx(0, 0, 0).1.len() + 4;
        for op in &ops {
            match *op {
                Op::Insert { acct, offset, variant } => {
                    let nonce = (model.committed[acct] + offset).saturating_sub(1);
                    let (t, e, h) = tx(acct, nonce, variant);
                    let r0 = pools[0].insert(t, e.clone(), h, model.committed[acct]);
                    let r1 = pools[1].insert(t, e, h, model.committed[acct]);
                    prop_assert_eq!(&r0, &r1);
                    if r0.is_ok() {
                        prop_assert!(!model.committed_ids.contains(&h));
                        // Re-admission after inclusion in a block that
                        // rejected it is legitimate; track each id once.
                        if model.info.insert(h, (acct, nonce)).is_none() {
                            model.accepted.push(h);
                        }
                    }
                }
                Op::Propose { max_bytes_txs } => {
                    model.view += 1;
                    let v = model.view;
                    let (p0, ids) = pools[0].take_payload(v, max_bytes_txs * tx_bytes, model.nonce_of());
                    let (p1, ids1) = pools[1].take_payload(v, max_bytes_txs * tx_bytes, model.nonce_of());
                    prop_assert_eq!(&p0, &p1);
                    prop_assert_eq!(&ids, &ids1);
                    prop_assert!(ids.len() <= max_txs.min(max_bytes_txs));
                    let entries = split_payload(&p0).unwrap();
                    prop_assert_eq!(entries.len(), ids.len());
                    let mut last: HashMap<usize, u64> = HashMap::new();
                    for (e, h) in entries.iter().zip(&ids) {
                        prop_assert_eq!(tx_hash(e), *h);
                        let (a, n) = model.info[h];
                        // Re-proposing an in-flight tx is only allowed when an
                        // earlier nonce of its account went out again after
                        // it (its proposal was built on a dead one).
                        if let Some(&was) = model.in_flight.get(h) {
                            let justified = (model.committed[a]..n)
                                .any(|k| model.proposed_at.get(&(a, k)).is_some_and(|p| *p > was));
                            prop_assert!(justified, "re-proposed while in flight");
                        }
                        model.proposed_at.insert((a, n), v);
                        prop_assert!(n >= model.committed[a], "stale tx proposed");
                        if let Some(prev) = last.insert(a, n) {
                            prop_assert_eq!(n, prev + 1, "nonces in order, no gaps");
                        }
                        model.in_flight.insert(*h, v);
                    }
                    if !ids.is_empty() {
                        model.outstanding.push((v, ids));
                    }
                }
                Op::CommitOwn { pick } => {
                    let live: Vec<usize> = (0..model.outstanding.len())
                        .filter(|i| model.outstanding[*i].0 > model.last_commit_view)
                        .collect();
                    if !live.is_empty() {
                        let (v, ids) = model.outstanding[live[pick % live.len()]].clone();
                        model.execute(&ids);
                        model.commit(&mut pools, v, &ids);
                    }
                }
                Op::External { acct, use_pool } => {
                    model.view += 1;
                    model.externals += 1;
                    let want = model.committed[acct];
                    let pooled = model.accepted.iter().copied().find(|h| {
                        pools[0].contains(h) && model.info[h] == (acct, want)
                    });
                    let id = match (use_pool, pooled) {
                        (true, Some(h)) => h,
                        _ => hash(&model.externals.to_le_bytes()),
                    };
                    model.committed[acct] += 1;
                    model.included.insert(id);
                    if model.info.contains_key(&id) {
                        model.committed_ids.insert(id);
                    }
                    let v = model.view;
                    model.commit(&mut pools, v, &[id]);
                }
                Op::Tick => {
                    model.view += 1;
                    let v = model.view;
                    model.commit(&mut pools, v, &[]);
                }
            }
            model.check(&pools[0], cfg.capacity)?;
            model.check(&pools[1], cfg.capacity)?;
        }

        // Drain: release everything, then propose and commit until nothing is
        // takeable. Every proposed transaction must execute.
        model.view += 1;
        let v = model.view;
        model.commit(&mut pools, v, &[]);
        for _ in 0..100 {
            model.view += 1;
            let v = model.view;
            let (_, ids) = pools[0].take_payload(v, BIG, model.nonce_of());
            let (_, ids1) = pools[1].take_payload(v, BIG, model.nonce_of());
            prop_assert_eq!(&ids, &ids1);
            if ids.is_empty() {
                break;
            }
            prop_assert_eq!(model.execute(&ids), ids.len(), "a drained tx failed");
            model.commit(&mut pools, v, &ids);
        }
        for _ in 0..3 {
            model.view += 1;
            let v = model.view;
            model.commit(&mut pools, v, &[]);
        }
        for m in &pools {
            model.check(m, cfg.capacity)?;
            // Whatever is left waits behind a nonce nobody has.
            for h in model.accepted.iter().filter(|h| m.contains(h)) {
                let (a, n) = model.info[h];
                prop_assert!(n > model.committed[a], "left a takeable tx behind");
                let gap_filled = model.accepted.iter().any(|g| {
                    m.contains(g) && model.info[g] == (a, model.committed[a])
                });
                prop_assert!(!gap_filled);
            }
        }
    }
}
