//! Tests of `app::game` through `AppState`: when the dice roll, what a
//! byzantine proposer can and cannot do with beacon entries, and chip
//! conservation under arbitrary (valid and invalid) game transactions.

use crate::app::beacon_entry::BeaconEntry;
use crate::app::craps::{BetKind, Phase, Roll, TableParams};
use crate::app::game::{dice_seed, BeaconVerdict};
use crate::app::genesis::{Allocation, AppGenesis};
use crate::app::payload::{PayloadBuilder, MAX_TXS_PER_BLOCK};
use crate::app::state::{AppState, BlockContext, BlockResult, Rejection, StateWrite};
use crate::app::tx::{Action, Transaction};
use crate::app::verify::VerifiedCache;
use bitcraps_crypto::beacon::{
    deal_from_seed, round_message, BeaconPublic, BeaconSignature, SecretShare,
};
use bitcraps_crypto::Keypair;
use proptest::prelude::*;
use std::collections::BTreeMap;

const CHAIN: &str = "bitcraps-game-test";
const HOUSE: u8 = 100;
const BLOCK_MS: u64 = 1_000;

fn kp(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

struct Dice {
    public: BeaconPublic,
    shares: Vec<SecretShare>,
}

impl Dice {
    fn new(seed: u8) -> Dice {
        let (public, shares) = deal_from_seed(4, 3, [seed; 32]).unwrap();
        Dice { public, shares }
    }

    /// The group signature of `round`, from shares 2, 3 and 4.
    fn signature(&self, round: u64) -> BeaconSignature {
        let msg = round_message(CHAIN, round);
        let partials: Vec<_> = self.shares[1..].iter().map(|s| s.sign(&msg)).collect();
        self.public.recover(&msg, &partials).unwrap().signature
    }

    fn entry(&self, round: u64) -> Vec<u8> {
        BeaconEntry {
            round,
            signature: self.signature(round),
        }
        .encode()
    }
}

fn genesis(dice: &Dice) -> AppGenesis {
    AppGenesis {
        allocations: [HOUSE, 1, 2, 3, 4]
            .iter()
            .map(|i| Allocation {
                account: kp(*i).public(),
                balance: if *i == HOUSE { 1_000_000 } else { 10_000 },
            })
            .collect(),
        faucet: None,
        beacon: Some(dice.public.clone()),
        roll_interval_ms: BLOCK_MS,
    }
}

fn tx(from: u8, nonce: u64, action: Action) -> Vec<u8> {
    Transaction {
        from: kp(from).public(),
        nonce,
        action,
    }
    .sign(CHAIN, &kp(from))
    .encode()
}

fn open(nonce: u64) -> Vec<u8> {
    tx(
        HOUSE,
        nonce,
        Action::OpenTable {
            bankroll: 500_000,
            params: TableParams {
                min_bet: 5,
                max_bet: 1_000,
            },
        },
    )
}

fn bet(from: u8, nonce: u64, bet: BetKind, amount: u64) -> Vec<u8> {
    tx(
        from,
        nonce,
        Action::PlaceBet {
            table: 1,
            bet,
            amount,
        },
    )
}

fn payload(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = PayloadBuilder::new(usize::MAX, MAX_TXS_PER_BLOCK);
    for e in entries {
        assert!(b.try_push(e));
    }
    b.finish()
}

/// Executes the next block, one second of block time per height.
fn run(s: &mut AppState, entries: &[Vec<u8>]) -> BlockResult {
    let h = s.height() + 1;
    let ctx = BlockContext {
        chain_id: CHAIN,
        height: h,
        timestamp_ms: h * BLOCK_MS,
        store_receipts: true,
    };
    s.execute_block(ctx, &payload(entries), &mut VerifiedCache::new(64))
        .unwrap()
}

/// A table with bets from players 1..=4, betting closed at the returned round.
fn table_with_bets(dice: &Dice) -> (AppState, u64) {
    let mut s = AppState::genesis(&genesis(dice));
    run(&mut s, &[open(0)]);
    let r = run(
        &mut s,
        &[
            bet(1, 0, BetKind::Pass, 30),
            bet(2, 0, BetKind::DontPass, 60),
            bet(3, 0, BetKind::Field, 90),
            bet(4, 0, BetKind::AnySeven, 10),
        ],
    );
    assert!(r.receipts.iter().all(|r| r.result.is_ok()), "{r:?}");
    assert_eq!(s.awaiting_round(), None, "the window is one block long");
    run(&mut s, &[]);
    let round = s.awaiting_round().expect("betting closed");
    assert_eq!(round, s.height(), "the closing block's height is the round");
    (s, round)
}

fn rejections(r: &BlockResult) -> Vec<Option<&'static str>> {
    r.receipts
        .iter()
        .map(|r| r.result.err().map(|e| e.code()))
        .collect()
}

#[test]
fn a_beacon_round_rolls_every_table_with_bets() {
    let dice = Dice::new(1);
    let (mut s, round) = table_with_bets(&dice);
    let before = s.supply();
    assert!(before.conserved());
    let r = run(&mut s, &[dice.entry(round)]);
    assert_eq!(r.beacon, Some(BeaconVerdict::Applied { round }));
    assert_eq!(r.rolls.len(), 1);
    // The dice are a function of the round's unique signature and the table.
    let expected = Roll::from_seed(&dice_seed(&dice.signature(round).randomness(), 1).0);
    assert_eq!(r.rolls[0].outcome.roll, expected);
    let table = s.game().table(1).unwrap();
    assert_eq!((table.rolls, table.last_roll), (1, Some(expected)));
    assert!(s.supply().conserved());
    assert_eq!(s.awaiting_round(), None);
    // The one-roll bets are always settled.
    let settled: Vec<_> = r.rolls[0]
        .outcome
        .settlements
        .iter()
        .map(|x| x.kind)
        .collect();
    assert!(settled.contains(&BetKind::Field) && settled.contains(&BetKind::AnySeven));
}

#[test]
fn betting_is_frozen_between_the_close_and_the_roll() {
    let dice = Dice::new(2);
    let (mut s, round) = table_with_bets(&dice);
    let tables_before: Vec<_> = s.game().tables().map(|t| t.encode()).collect();
    let r = run(
        &mut s,
        &[
            bet(1, 1, BetKind::Field, 10),
            tx(
                2,
                1,
                Action::RemoveBet {
                    table: 1,
                    bet: BetKind::DontPass,
                },
            ),
        ],
    );
    assert_eq!(
        r.receipts[0].result,
        Err(Rejection::BettingClosed { round })
    );
    assert_eq!(rejections(&r), vec![Some("betting_closed"); 2]);
    let tables_after: Vec<_> = s.game().tables().map(|t| t.encode()).collect();
    assert_eq!(tables_before, tables_after, "no bet moved");
    assert!(s.supply().conserved());
}

/// A leader who withholds the entry (or whose blocks carry other things)
/// only delays the roll: the dice and every settlement are the same.
#[test]
fn withholding_the_entry_only_delays_the_roll() {
    let dice = Dice::new(3);
    let (mut prompt, round) = table_with_bets(&dice);
    let mut late = prompt.clone();
    let a = run(&mut prompt, &[dice.entry(round)]);
    // Three blocks without the entry; a bet in between is refused.
    let r = run(&mut late, &[bet(1, 1, BetKind::Yo, 5)]);
    assert_eq!(rejections(&r), vec![Some("betting_closed")]);
    run(&mut late, &[]);
    run(&mut late, &[]);
    assert_eq!(late.awaiting_round(), Some(round));
    let b = run(&mut late, &[dice.entry(round)]);
    assert_eq!(b.beacon, Some(BeaconVerdict::Applied { round }));
    assert_eq!(a.rolls.len(), 1);
    assert_eq!(a.rolls[0].outcome, b.rolls[0].outcome);
    assert_eq!(
        prompt.game().table(1).unwrap().encode(),
        late.game().table(1).unwrap().encode()
    );
}

/// The order of bets inside blocks cannot change the roll or who wins.
#[test]
fn reordering_bets_does_not_change_the_roll() {
    let dice = Dice::new(4);
    let bets = [
        bet(1, 0, BetKind::Pass, 30),
        bet(2, 0, BetKind::DontPass, 60),
        bet(3, 0, BetKind::Field, 90),
    ];
    let play = |order: &[usize]| {
        let mut s = AppState::genesis(&genesis(&dice));
        run(&mut s, &[open(0)]);
        let block: Vec<_> = order.iter().map(|i| bets[*i].clone()).collect();
        run(&mut s, &block);
        run(&mut s, &[]);
        let round = s.awaiting_round().unwrap();
        let r = run(&mut s, &[dice.entry(round)]);
        (r.rolls, s.state_root())
    };
    let (rolls_a, root_a) = play(&[0, 1, 2]);
    let (rolls_b, root_b) = play(&[2, 0, 1]);
    assert_eq!(rolls_a, rolls_b);
    assert_eq!(root_a, root_b);
}

/// Re-proposed, forged, early and malformed entries are ignored and change
/// nothing but the height.
#[test]
fn bad_entries_are_ignored() {
    let dice = Dice::new(5);
    let other = Dice::new(6);
    let (mut s, round) = table_with_bets(&dice);
    let snapshot = |s: &AppState| {
        (
            s.game().tables().map(|t| t.encode()).collect::<Vec<_>>(),
            *s.game().clock(),
            s.supply(),
        )
    };
    let before = snapshot(&s);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            other.entry(round),
            "signature does not verify against the group key",
        ),
        (dice.entry(round + 1), "not the awaited round"),
        (dice.entry(round - 1), "not the awaited round"),
        (
            BeaconEntry {
                round,
                signature: dice.signature(round + 1),
            }
            .encode(),
            "signature does not verify against the group key",
        ),
        (dice.entry(round)[..40].to_vec(), "malformed beacon entry"),
    ];
    for (entry, reason) in cases {
        let r = run(&mut s, &[entry]);
        assert!(
            matches!(r.beacon, Some(BeaconVerdict::Ignored { reason: got, .. }) if got == reason),
            "{:?} for {reason}",
            r.beacon
        );
        assert!(r.receipts.is_empty(), "an entry is not a transaction");
        assert_eq!(snapshot(&s), before);
    }
    // An entry anywhere but first is just a malformed transaction.
    let r = run(&mut s, &[bet(1, 1, BetKind::Yo, 5), dice.entry(round)]);
    assert_eq!(r.beacon, None);
    assert_eq!(
        rejections(&r),
        vec![Some("betting_closed"), Some("malformed")]
    );
    // The genuine entry still works, once; re-proposing it does nothing.
    let r = run(&mut s, &[dice.entry(round)]);
    assert_eq!(r.beacon, Some(BeaconVerdict::Applied { round }));
    let after = snapshot(&s);
    let r = run(&mut s, &[dice.entry(round)]);
    assert!(matches!(r.beacon, Some(BeaconVerdict::Ignored { .. })));
    assert_eq!(snapshot(&s), after);
}

#[test]
fn without_a_beacon_bets_are_refused() {
    let dice = Dice::new(7);
    let mut g = genesis(&dice);
    g.beacon = None;
    let mut s = AppState::genesis(&g);
    let r = run(&mut s, &[open(0), bet(1, 0, BetKind::Pass, 30)]);
    assert_eq!(rejections(&r), vec![None, Some("no_beacon")]);
    assert!(s.supply().conserved());
}

#[test]
fn the_house_gets_back_only_unencumbered_bankroll() {
    let dice = Dice::new(8);
    let (mut s, round) = table_with_bets(&dice);
    let house_before = s.account(&kp(HOUSE).public()).balance;
    let table = s.game().table(1).unwrap().clone();
    let r = run(&mut s, &[tx(HOUSE, 1, Action::CloseTable { table: 1 })]);
    assert_eq!(rejections(&r), vec![None]);
    let closed = s.game().table(1).unwrap();
    assert!(closed.closed);
    assert_eq!(closed.bankroll, table.reserved(), "the reserve stays");
    assert_eq!(
        s.account(&kp(HOUSE).public()).balance,
        house_before + table.bankroll - table.reserved()
    );
    // Bets in play still settle on the closed table.
    let r = run(&mut s, &[dice.entry(round)]);
    assert_eq!(r.rolls.len(), 1);
    assert!(s.supply().conserved());
    // No new bets on a closed table.
    let r = run(&mut s, &[bet(3, 1, BetKind::Field, 10)]);
    assert_eq!(rejections(&r), vec![Some("table_closed")]);
    // Other players cannot close it.
    let r = run(&mut s, &[tx(1, 1, Action::CloseTable { table: 1 })]);
    assert_eq!(rejections(&r), vec![Some("not_house")]);
}

// --- Properties --------------------------------------------------------------

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // test input, a few dozen per case
enum Step {
    Tx {
        from: u8,
        action: Action,
        nonce_delta: i8,
    },
    /// Include the awaited round's entry (if any) at the start of the block.
    Beacon,
    /// Include a forged entry for the awaited round.
    Forged,
    Empty,
}

fn bet_kind() -> impl Strategy<Value = BetKind> {
    let n = prop_oneof![
        Just(4u8),
        Just(5),
        Just(6),
        Just(8),
        Just(9),
        Just(10),
        Just(7)
    ];
    prop_oneof![
        Just(BetKind::Pass),
        Just(BetKind::DontPass),
        Just(BetKind::PassOdds),
        Just(BetKind::DontPassOdds),
        Just(BetKind::Come),
        Just(BetKind::DontCome),
        n.clone().prop_map(|point| BetKind::ComeOdds { point }),
        n.clone().prop_map(|point| BetKind::DontComeOdds { point }),
        n.clone().prop_map(|point| BetKind::ComePoint { point }),
        Just(BetKind::Field),
        n.clone().prop_map(|number| BetKind::Place { number }),
        n.prop_map(|number| BetKind::Hard { number }),
        Just(BetKind::AnySeven),
        Just(BetKind::AnyCraps),
        Just(BetKind::Yo),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let table = prop_oneof![4 => Just(1u64), 1 => Just(2u64), 1 => 0u64..5];
    let amount = prop_oneof![Just(0u64), 1u64..20, 5u64..500, Just(u64::MAX)];
    prop_oneof![
        6 => (table.clone(), bet_kind(), amount.clone())
            .prop_map(|(table, bet, amount)| Action::PlaceBet { table, bet, amount }),
        2 => (table.clone(), bet_kind()).prop_map(|(table, bet)| Action::RemoveBet { table, bet }),
        2 => table.clone().prop_map(|table| Action::Withdraw { table }),
        1 => table.prop_map(|table| Action::CloseTable { table }),
        1 => (prop_oneof![Just(0u64), 10u64..100, 1_000u64..200_000], 0u64..20, 0u64..2_000)
            .prop_map(|(bankroll, min_bet, max_bet)| Action::OpenTable {
                bankroll,
                params: TableParams { min_bet, max_bet },
            }),
        1 => (amount, 1u8..=4).prop_map(|(amount, to)| Action::Transfer { to: kp(to).public(), amount }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (prop_oneof![4 => 1u8..=4, 1 => Just(HOUSE)], action(), prop_oneof![8 => Just(0i8), 1 => -1i8..2])
            .prop_map(|(from, action, nonce_delta)| Step::Tx { from, action, nonce_delta }),
        3 => Just(Step::Beacon),
        1 => Just(Step::Forged),
        2 => Just(Step::Empty),
    ]
}

/// Everything but account nonces: what a rejected transaction must not touch.
fn observable(s: &AppState) -> (Vec<u64>, Vec<Vec<u8>>, String) {
    let balances = [HOUSE, 1, 2, 3, 4]
        .iter()
        .map(|i| s.account(&kp(*i).public()).balance)
        .collect();
    let tables = s.game().tables().map(|t| t.encode()).collect();
    (balances, tables, format!("{:?}", s.game().clock()))
}

fn apply_writes(kv: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: &[StateWrite]) {
    for (k, v) in writes {
        match v {
            Some(v) => kv.insert(k.clone(), v.clone()),
            None => kv.remove(k),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Chips are conserved after every block; a rejected transaction changes
    /// nothing but its sender's nonce; the same blocks give the same root on a
    /// second run; the persisted writes reload to the same state.
    #[test]
    fn game_blocks_conserve_reject_cleanly_and_replay(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let dice = Dice::new(9);
        let g = genesis(&dice);
        let mut s = AppState::genesis(&g);
        let mut kv = BTreeMap::new();
        apply_writes(&mut kv, &s.genesis_writes());
        // Open the table players aim at, so most bets reach the rules.
        let mut blocks: Vec<Vec<u8>> = vec![payload(&[open(0)])];
        let r = run(&mut s, &[open(0)]);
        apply_writes(&mut kv, &r.writes);
        let mut sent_nonce = 0u64;
        for step in steps {
            let h = s.height() + 1;
            let ctx = BlockContext { chain_id: CHAIN, height: h, timestamp_ms: h * BLOCK_MS, store_receipts: true };
            let entries: Vec<Vec<u8>> = match &step {
                Step::Tx { from, action, nonce_delta } => {
                    let expected = s.account(&kp(*from).public()).nonce;
                    sent_nonce = expected.saturating_add_signed(i64::from(*nonce_delta));
                    vec![tx(*from, sent_nonce, *action)]
                }
                Step::Beacon => s.awaiting_round().map(|r| dice.entry(r)).into_iter().collect(),
                Step::Forged => s.awaiting_round().map(|r| Dice::new(10).entry(r)).into_iter().collect(),
                Step::Empty => Vec::new(),
            };
            let p = payload(&entries);
            // The same block without the transaction, to compare against.
            let mut without = s.clone();
            without.execute_block(ctx, &payload(&[]), &mut VerifiedCache::new(4)).unwrap();
            let r = s.execute_block(ctx, &p, &mut VerifiedCache::new(4)).unwrap();
            prop_assert!(s.supply().conserved(), "{:?}", s.supply());
            for t in s.game().tables() {
                prop_assert!(t.bankroll >= t.reserved(), "table {} cannot pay", t.id);
            }
            if let (Step::Tx { from, .. }, Some(receipt)) = (&step, r.receipts.first()) {
                if receipt.result.is_err() {
                    prop_assert_eq!(observable(&s), observable(&without));
                    let (a, b) = (s.account(&kp(*from).public()), without.account(&kp(*from).public()));
                    prop_assert!(a.nonce == b.nonce || a.nonce == b.nonce + 1);
                } else {
                    let before = without.account(&kp(*from).public()).nonce;
                    prop_assert_eq!(sent_nonce, before, "accepted with a wrong nonce");
                    prop_assert_eq!(s.account(&kp(*from).public()).nonce, before + 1);
                }
            }
            apply_writes(&mut kv, &r.writes);
            blocks.push(p);
        }
        // Determinism: a second node running the same blocks.
        let mut again = AppState::genesis(&g);
        for (i, p) in blocks.iter().enumerate() {
            let h = i as u64 + 1;
            again.execute_block(BlockContext { chain_id: CHAIN, height: h, timestamp_ms: h * BLOCK_MS, store_receipts: true }, p, &mut VerifiedCache::new(64)).unwrap();
        }
        prop_assert_eq!(again.state_root(), s.state_root());
        let loaded = AppState::load(&g, kv).unwrap();
        prop_assert_eq!(loaded.state_root(), s.state_root());
        prop_assert_eq!(observable(&loaded), observable(&s));
    }
}

#[test]
fn phase_follows_the_dice() {
    // A table with a pass bet: after enough rolls the phase has taken every
    // shape the dice allow and always matches the last roll.
    let dice = Dice::new(11);
    let mut s = AppState::genesis(&genesis(&dice));
    run(&mut s, &[open(0)]);
    let mut phase = Phase::ComeOut;
    for nonce in 0..12 {
        // A one-roll bet keeps the table rolling.
        run(&mut s, &[bet(3, nonce, BetKind::Field, 10)]);
        run(&mut s, &[]);
        let round = s.awaiting_round().unwrap();
        let r = run(&mut s, &[dice.entry(round)]);
        let out = &r.rolls[0].outcome;
        assert_eq!(out.phase_before, phase);
        phase = out.phase_before.after(out.roll.total());
        assert_eq!(out.phase_after, phase);
        assert!(s.supply().conserved());
    }
}
