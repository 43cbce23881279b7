//! Random action sequences (valid and invalid) against the table invariants:
//! chip conservation, solvency, errors leave no trace, canonical roundtrip,
//! limits.

use super::super::{
    BetKind, BetResult, GameError, Roll, Table, TableParams, MAX_BETS_PER_TABLE,
    MAX_RAILS_PER_TABLE,
};
use super::{house, key};
use bitcraps_crypto::PublicKey;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Place(u8, BetKind, u64),
    Remove(u8, BetKind),
    Withdraw(u8),
    Close(u8),
    Roll(u8, u8),
}

/// Player 0 is the house (it may bet too); 1..=5 are players.
fn player(i: u8) -> PublicKey {
    if i == 0 {
        house()
    } else {
        key(i)
    }
}

/// Every kind, with numbers drawn from 0..=12 so invalid ones appear.
fn kind() -> impl Strategy<Value = BetKind> {
    use BetKind::*;
    let n = 0u8..=12;
    let point = prop_oneof![3 => prop::sample::select(vec![4u8, 5, 6, 8, 9, 10]), 1 => n.clone()];
    prop_oneof![
        Just(Pass),
        Just(DontPass),
        Just(PassOdds),
        Just(DontPassOdds),
        Just(Come),
        Just(DontCome),
        point.clone().prop_map(|point| ComePoint { point }),
        point.clone().prop_map(|point| DontComePoint { point }),
        point.clone().prop_map(|point| ComeOdds { point }),
        point.clone().prop_map(|point| DontComeOdds { point }),
        Just(Field),
        point.prop_map(|number| Place { number }),
        n.prop_map(|number| Hard { number }),
        Just(AnySeven),
        Just(AnyCraps),
        Just(Yo),
    ]
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        8 => 1u64..60,
        2 => 60u64..2_000,
        1 => any::<u64>(),
        1 => Just(u64::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0u8..6;
    prop_oneof![
        10 => (who.clone(), kind(), amount()).prop_map(|(p, k, a)| Op::Place(p, k, a)),
        3 => (who.clone(), kind()).prop_map(|(p, k)| Op::Remove(p, k)),
        2 => who.clone().prop_map(Op::Withdraw),
        1 => prop_oneof![5 => Just(0u8), 1 => who].prop_map(Op::Close),
        8 => (1u8..=6, 1u8..=6).prop_map(|(a, b)| Op::Roll(a, b)),
        1 => (0u8..=8, 0u8..=8).prop_map(|(a, b)| Op::Roll(a, b)),
    ]
}

fn check(t: &Table) -> Result<(), TestCaseError> {
    prop_assert!(
        t.bankroll >= t.reserved(),
        "bankroll {} < reserved {}",
        t.bankroll,
        t.reserved()
    );
    prop_assert!(t.bets().len() <= MAX_BETS_PER_TABLE);
    prop_assert!(t.rails().len() <= MAX_RAILS_PER_TABLE);
    prop_assert!(t.rails().iter().all(|(_, r)| *r > 0));
    prop_assert!(t.bets().iter().all(|b| b.stake > 0 && b.kind.is_valid()));
    prop_assert_eq!(t.check_invariants(), Ok(()));
    let back = Table::decode(&t.encode());
    prop_assert_eq!(back.as_ref(), Ok(t));
    Ok(())
}

fn apply(t: &mut Table, op: &Op) -> Result<(), TestCaseError> {
    let before = t.encode();
    let escrow = u128::from(t.escrow());
    let (result, delta): (Result<(), GameError>, i128) = match *op {
        Op::Place(p, k, a) => (t.place(player(p), k, a), i128::from(a)),
        Op::Remove(p, k) => match t.remove(player(p), k) {
            Ok(v) => (Ok(()), -i128::from(v)),
            Err(e) => (Err(e), 0),
        },
        Op::Withdraw(p) => match t.withdraw(player(p)) {
            Ok(v) => {
                prop_assert!(v > 0);
                (Ok(()), -i128::from(v))
            }
            Err(e) => (Err(e), 0),
        },
        Op::Close(p) => match t.close(player(p)) {
            Ok(v) => (Ok(()), -i128::from(v)),
            Err(e) => (Err(e), 0),
        },
        Op::Roll(d1, d2) => {
            let rails: u128 = t.rails().iter().map(|(_, r)| u128::from(*r)).sum();
            let rolls = t.rolls;
            let out = t.roll(Roll { d1, d2 });
            let credited: u128 = out.settlements.iter().map(|s| u128::from(s.credited)).sum();
            let rails_after: u128 = t.rails().iter().map(|(_, r)| u128::from(*r)).sum();
            prop_assert_eq!(rails + credited, rails_after, "credits land on rails");
            if Roll::new(d1, d2).is_some() {
                prop_assert_eq!(t.rolls, rolls + 1);
                prop_assert_eq!(out.phase_after, t.phase);
                for s in &out.settlements {
                    let expected = match s.result {
                        BetResult::Won { winnings } if s.kind.stays_up() => winnings,
                        BetResult::Won { winnings } => s.stake + winnings,
                        BetResult::Returned => s.stake,
                        _ => 0,
                    };
                    prop_assert_eq!(s.credited, expected);
                }
            } else {
                prop_assert_eq!(&t.encode(), &before, "an invalid roll changes nothing");
            }
            (Ok(()), 0)
        }
    };
    match result {
        Ok(()) => {
            let expected = i128::try_from(escrow).expect("fits") + delta;
            prop_assert_eq!(i128::from(t.escrow()), expected, "escrow after {:?}", op);
        }
        Err(e) => {
            prop_assert_eq!(
                &t.encode(),
                &before,
                "{:?} failed with {:?} but changed the table",
                op,
                e
            );
        }
    }
    check(t)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_action_sequences_keep_every_invariant(
        min_bet in 1u64..20,
        spread in 0u64..500,
        bankroll in prop_oneof![1u64..3_000, 3_000u64..1_000_000, Just(u64::MAX / 2)],
        ops in proptest::collection::vec(op(), 0..160),
    ) {
        let params = TableParams { min_bet, max_bet: min_bet + spread };
        let mut t = Table::open(1, house(), params, bankroll).expect("valid");
        check(&t)?;
        for op in &ops {
            apply(&mut t, op)?;
        }
    }
}
