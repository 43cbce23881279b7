//! The canonical encoding: roundtrips, and refusal of garbage, non-canonical
//! bytes and tables that break an invariant.

use super::super::{BetKind, BetView, Phase, Roll, Table, MAX_BETS_PER_TABLE};
use super::{forced, key, open_table};
use BetKind::*;

fn busy_table() -> Table {
    let (a, b) = (key(1), key(2));
    let mut t = open_table(1, 1000, 1_000_000);
    t.place(a, Pass, 10).expect("pass");
    t.place(b, DontPass, 20).expect("dp");
    t.place(b, Field, 5).expect("field");
    t.roll(Roll { d1: 1, d2: 2 }); // field wins (rail for b), pass loses
    t.place(a, Pass, 10).expect("pass");
    t.roll(Roll { d1: 4, d2: 4 }); // point 8
    t.place(a, PassOdds, 50).expect("odds");
    t.place(a, Come, 10).expect("come");
    t.place(b, Hard { number: 6 }, 7).expect("hard");
    t
}

#[test]
fn roundtrip() {
    let t = busy_table();
    let bytes = t.encode();
    assert_eq!(bytes[0], 0x01);
    assert_eq!(Table::decode(&bytes), Ok(t.clone()));
    let json = serde_json::to_string(&t).expect("json");
    assert_eq!(serde_json::from_str::<Table>(&json).expect("json back"), t);
    let fresh = open_table(3, 9, 12);
    assert_eq!(Table::decode(&fresh.encode()), Ok(fresh));
}

#[test]
fn garbage_is_refused() {
    let bytes = busy_table().encode();
    assert!(Table::decode(&[]).is_err());
    assert!(Table::decode(&[0x01]).is_err());
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 0x02;
    assert!(Table::decode(&wrong_version).is_err());
    for cut in 1..bytes.len() {
        assert!(Table::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Table::decode(&trailing).is_err());
    // Every single-byte corruption either fails or decodes to a table that
    // re-encodes to exactly those bytes (a different but canonical table).
    for i in 1..bytes.len() {
        for delta in [1u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] = b[i].wrapping_add(delta);
            if let Ok(t) = Table::decode(&b) {
                assert_eq!(t.encode(), b);
                t.check_invariants().expect("decoded tables are valid");
            }
        }
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..400 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = Table::decode(&junk); // must not panic
    }
}

#[test]
fn overlong_varint_is_non_canonical() {
    let t = open_table(1, 5, 10);
    let bytes = t.encode();
    assert_eq!(bytes[1], 7, "id is the first field: a one-byte varint");
    let mut long = vec![0x01, 0x87, 0x00];
    long.extend_from_slice(&bytes[2..]);
    assert!(Table::decode(&long).is_err());
}

/// Tables that break an invariant encode fine but must not decode.
#[test]
fn broken_invariants_are_refused() {
    let (a, b) = (key(1), key(2));
    let mut cases: Vec<(&str, Table)> = Vec::new();

    let mut t = forced(Phase::ComeOut, &[(a, Field, 1), (b, Field, 1)]);
    t.bets.swap(0, 1);
    cases.push(("unsorted bets", t));
    let mut t = forced(Phase::ComeOut, &[(a, Field, 1)]);
    let dup = t.bets[0].clone();
    t.bets.push(dup);
    cases.push(("duplicate bet", t));
    cases.push(("zero stake", forced(Phase::ComeOut, &[(a, Field, 0)])));
    cases.push((
        "place 7",
        forced(Phase::Point(4), &[(a, Place { number: 7 }, 1)]),
    ));
    cases.push((
        "hard 5",
        forced(Phase::Point(4), &[(a, Hard { number: 5 }, 1)]),
    ));
    cases.push(("point 7", forced(Phase::Point(7), &[])));
    cases.push(("odds alone", forced(Phase::Point(4), &[(a, PassOdds, 1)])));
    cases.push((
        "come odds alone",
        forced(Phase::Point(4), &[(a, ComeOdds { point: 5 }, 1)]),
    ));
    cases.push((
        "pass odds on come-out",
        forced(Phase::ComeOut, &[(a, Pass, 1), (a, PassOdds, 1)]),
    ));
    cases.push(("come on come-out", forced(Phase::ComeOut, &[(a, Come, 1)])));
    let mut t = forced(Phase::ComeOut, &[]);
    t.bankroll = 10;
    t.bets.push(BetView {
        player: a,
        kind: Yo,
        stake: 1,
    });
    cases.push(("bankroll below reserved", t));
    let mut t = forced(Phase::ComeOut, &[]);
    t.rails = vec![(b, 5), (a, 5)];
    if a < b {
        cases.push(("unsorted rails", t));
    } else {
        t.rails.reverse();
        cases.push(("unsorted rails", t));
    }
    let mut t = forced(Phase::ComeOut, &[]);
    t.rails = vec![(a, 0)];
    cases.push(("zero rail", t));
    let mut t = forced(Phase::ComeOut, &[]);
    t.rails = vec![(a, u64::MAX)];
    cases.push(("chip overflow", t));
    let mut t = forced(Phase::ComeOut, &[]);
    t.params.min_bet = 0;
    cases.push(("bad params", t));
    let mut t = forced(Phase::ComeOut, &[]);
    t.last_roll = Some(Roll { d1: 7, d2: 1 });
    t.rolls = 1;
    cases.push(("bad last roll", t));
    let mut t = forced(Phase::ComeOut, &[]);
    t.rolls = 3;
    cases.push(("rolls without last roll", t));
    let mut t = forced(Phase::ComeOut, &[]);
    t.bankroll = u64::MAX / 2;
    for i in 0..=MAX_BETS_PER_TABLE {
        let mut seed = [9u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let player = bitcraps_crypto::Keypair::from_seed(&seed).public();
        t.bets.push(BetView {
            player,
            kind: Field,
            stake: 1,
        });
    }
    t.bets.sort_by_key(|b| b.player);
    cases.push(("too many bets", t));

    for (name, t) in cases {
        let bytes = t.encode();
        assert!(Table::decode(&bytes).is_err(), "{name} decoded");
        assert!(t.check_invariants().is_err(), "{name} passed the check");
        let json = serde_json::to_string(&t).expect("json");
        assert!(
            serde_json::from_str::<Table>(&json).is_err(),
            "{name} via JSON"
        );
    }
}
