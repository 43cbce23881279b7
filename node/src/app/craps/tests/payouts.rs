//! Every bet kind against every one of the 36 dice outcomes, in the phases
//! that matter, checked against a table of expected results written out by
//! hand below (not derived from the engine's ratios).

use super::super::{BetKind, BetResult, Phase, Roll};
use super::{forced, key};
use BetKind::*;
use Phase::{ComeOut, Point};

const STAKE: u64 = 30;

/// Expected effect of each total 2..=12 on a 30-chip bet:
/// `.` no action; `L` lost; `P` push (bet stays); `W<n>` won n, comes down;
/// `S<n>` won n, stays up; `R` returned; `M` moved to its come point;
/// `H<n>` the hardway number: `S<n>` if rolled as a pair, else `L`.
#[rustfmt::skip]
const TABLE: &[(BetKind, Phase, [&str; 11])] = &[
    //                                        2      3      4      5      6      7      8      9      10     11     12
    (Pass, ComeOut,                        ["L",   "L",   ".",   ".",   ".",   "W30", ".",   ".",   ".",   "W30", "L"]),
    (Pass, Point(4),                       [".",   ".",   "W30", ".",   ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (Pass, Point(9),                       [".",   ".",   ".",   ".",   ".",   "L",   ".",   "W30", ".",   ".",   "."]),
    (DontPass, ComeOut,                    ["W30", "W30", ".",   ".",   ".",   "L",   ".",   ".",   ".",   "L",   "P"]),
    (DontPass, Point(4),                   [".",   ".",   "L",   ".",   ".",   "W30", ".",   ".",   ".",   ".",   "."]),
    (DontPass, Point(8),                   [".",   ".",   ".",   ".",   ".",   "W30", "L",   ".",   ".",   ".",   "."]),
    (PassOdds, ComeOut,                    [".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   "."]),
    (PassOdds, Point(4),                   [".",   ".",   "W60", ".",   ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (PassOdds, Point(5),                   [".",   ".",   ".",   "W45", ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (PassOdds, Point(6),                   [".",   ".",   ".",   ".",   "W36", "L",   ".",   ".",   ".",   ".",   "."]),
    (PassOdds, Point(8),                   [".",   ".",   ".",   ".",   ".",   "L",   "W36", ".",   ".",   ".",   "."]),
    (PassOdds, Point(9),                   [".",   ".",   ".",   ".",   ".",   "L",   ".",   "W45", ".",   ".",   "."]),
    (PassOdds, Point(10),                  [".",   ".",   ".",   ".",   ".",   "L",   ".",   ".",   "W60", ".",   "."]),
    (DontPassOdds, Point(4),               [".",   ".",   "L",   ".",   ".",   "W15", ".",   ".",   ".",   ".",   "."]),
    (DontPassOdds, Point(5),               [".",   ".",   ".",   "L",   ".",   "W20", ".",   ".",   ".",   ".",   "."]),
    (DontPassOdds, Point(6),               [".",   ".",   ".",   ".",   "L",   "W25", ".",   ".",   ".",   ".",   "."]),
    (DontPassOdds, Point(8),               [".",   ".",   ".",   ".",   ".",   "W25", "L",   ".",   ".",   ".",   "."]),
    (DontPassOdds, Point(9),               [".",   ".",   ".",   ".",   ".",   "W20", ".",   "L",   ".",   ".",   "."]),
    (DontPassOdds, Point(10),              [".",   ".",   ".",   ".",   ".",   "W15", ".",   ".",   "L",   ".",   "."]),
    (Come, Point(6),                       ["L",   "L",   "M",   "M",   "M",   "W30", "M",   "M",   "M",   "W30", "L"]),
    (DontCome, Point(6),                   ["W30", "W30", "M",   "M",   "M",   "L",   "M",   "M",   "M",   "L",   "P"]),
    (ComePoint { point: 4 }, Point(6),     [".",   ".",   "W30", ".",   ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (ComePoint { point: 4 }, ComeOut,      [".",   ".",   "W30", ".",   ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (ComePoint { point: 9 }, Point(9),     [".",   ".",   ".",   ".",   ".",   "L",   ".",   "W30", ".",   ".",   "."]),
    (DontComePoint { point: 10 }, Point(6), [".",  ".",   ".",   ".",   ".",   "W30", ".",   ".",   "L",   ".",   "."]),
    (DontComePoint { point: 10 }, ComeOut, [".",   ".",   ".",   ".",   ".",   "W30", ".",   ".",   "L",   ".",   "."]),
    (ComeOdds { point: 4 }, Point(6),      [".",   ".",   "W60", ".",   ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (ComeOdds { point: 5 }, Point(6),      [".",   ".",   ".",   "W45", ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (ComeOdds { point: 6 }, Point(8),      [".",   ".",   ".",   ".",   "W36", "L",   ".",   ".",   ".",   ".",   "."]),
    (ComeOdds { point: 8 }, Point(4),      [".",   ".",   ".",   ".",   ".",   "L",   "W36", ".",   ".",   ".",   "."]),
    (ComeOdds { point: 9 }, Point(4),      [".",   ".",   ".",   ".",   ".",   "L",   ".",   "W45", ".",   ".",   "."]),
    (ComeOdds { point: 10 }, Point(4),     [".",   ".",   ".",   ".",   ".",   "L",   ".",   ".",   "W60", ".",   "."]),
    (ComeOdds { point: 4 }, ComeOut,       [".",   ".",   "R",   ".",   ".",   "R",   ".",   ".",   ".",   ".",   "."]),
    (ComeOdds { point: 8 }, ComeOut,       [".",   ".",   ".",   ".",   ".",   "R",   "R",   ".",   ".",   ".",   "."]),
    (DontComeOdds { point: 4 }, Point(6),  [".",   ".",   "L",   ".",   ".",   "W15", ".",   ".",   ".",   ".",   "."]),
    (DontComeOdds { point: 5 }, Point(6),  [".",   ".",   ".",   "L",   ".",   "W20", ".",   ".",   ".",   ".",   "."]),
    (DontComeOdds { point: 6 }, Point(8),  [".",   ".",   ".",   ".",   "L",   "W25", ".",   ".",   ".",   ".",   "."]),
    (DontComeOdds { point: 8 }, ComeOut,   [".",   ".",   ".",   ".",   ".",   "W25", "L",   ".",   ".",   ".",   "."]),
    (DontComeOdds { point: 9 }, ComeOut,   [".",   ".",   ".",   ".",   ".",   "W20", ".",   "L",   ".",   ".",   "."]),
    (DontComeOdds { point: 10 }, ComeOut,  [".",   ".",   ".",   ".",   ".",   "W15", ".",   ".",   "L",   ".",   "."]),
    (Field, ComeOut,                       ["W60", "W30", "W30", "L",   "L",   "L",   "L",   "W30", "W30", "W30", "W90"]),
    (Field, Point(5),                      ["W60", "W30", "W30", "L",   "L",   "L",   "L",   "W30", "W30", "W30", "W90"]),
    (Place { number: 4 }, Point(6),        [".",   ".",   "S54", ".",   ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (Place { number: 5 }, Point(6),        [".",   ".",   ".",   "S42", ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (Place { number: 6 }, Point(8),        [".",   ".",   ".",   ".",   "S35", "L",   ".",   ".",   ".",   ".",   "."]),
    (Place { number: 6 }, Point(6),        [".",   ".",   ".",   ".",   "S35", "L",   ".",   ".",   ".",   ".",   "."]),
    (Place { number: 8 }, Point(6),        [".",   ".",   ".",   ".",   ".",   "L",   "S35", ".",   ".",   ".",   "."]),
    (Place { number: 9 }, Point(6),        [".",   ".",   ".",   ".",   ".",   "L",   ".",   "S42", ".",   ".",   "."]),
    (Place { number: 10 }, Point(6),       [".",   ".",   ".",   ".",   ".",   "L",   ".",   ".",   "S54", ".",   "."]),
    (Place { number: 6 }, ComeOut,         [".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   "."]),
    (Hard { number: 4 }, Point(6),         [".",   ".",   "H210", ".",  ".",   "L",   ".",   ".",   ".",   ".",   "."]),
    (Hard { number: 6 }, Point(4),         [".",   ".",   ".",   ".",   "H270", "L",  ".",   ".",   ".",   ".",   "."]),
    (Hard { number: 8 }, Point(4),         [".",   ".",   ".",   ".",   ".",   "L",   "H270", ".",  ".",   ".",   "."]),
    (Hard { number: 10 }, Point(4),        [".",   ".",   ".",   ".",   ".",   "L",   ".",   ".",   "H210", ".",  "."]),
    (Hard { number: 8 }, ComeOut,          [".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   ".",   "."]),
    (AnySeven, ComeOut,                    ["L",   "L",   "L",   "L",   "L",   "W120", "L",  "L",   "L",   "L",   "L"]),
    (AnySeven, Point(4),                   ["L",   "L",   "L",   "L",   "L",   "W120", "L",  "L",   "L",   "L",   "L"]),
    (AnyCraps, ComeOut,                    ["W210", "W210", "L",  "L",   "L",   "L",   "L",   "L",   "L",   "L",   "W210"]),
    (AnyCraps, Point(10),                  ["W210", "W210", "L",  "L",   "L",   "L",   "L",   "L",   "L",   "L",   "W210"]),
    (Yo, ComeOut,                          ["L",   "L",   "L",   "L",   "L",   "L",   "L",   "L",   "L",   "W450", "L"]),
    (Yo, Point(8),                         ["L",   "L",   "L",   "L",   "L",   "L",   "L",   "L",   "L",   "W450", "L"]),
];

/// (result, credited, bet still up with the same stake, bet replaced by a
/// come point) expected for one token and roll.
fn expected(kind: BetKind, token: &str, roll: Roll) -> Option<(BetResult, u64, bool)> {
    let num = |t: &str| -> u64 { t[1..].parse().expect("number in token") };
    Some(match &token[..1] {
        "." => return None,
        "L" => (BetResult::Lost, 0, false),
        "P" => (BetResult::Push, 0, true),
        "W" => (
            BetResult::Won {
                winnings: num(token),
            },
            STAKE + num(token),
            false,
        ),
        "S" => (
            BetResult::Won {
                winnings: num(token),
            },
            num(token),
            true,
        ),
        "R" => (BetResult::Returned, STAKE, false),
        "H" if roll.is_hard() => (
            BetResult::Won {
                winnings: num(token),
            },
            num(token),
            true,
        ),
        "H" => (BetResult::Lost, 0, false),
        "M" => {
            let to = match kind {
                Come => ComePoint {
                    point: roll.total(),
                },
                DontCome => DontComePoint {
                    point: roll.total(),
                },
                other => panic!("M token on {other:?}"),
            };
            (BetResult::Moved { to }, 0, false)
        }
        other => panic!("bad token {other}"),
    })
}

#[test]
fn every_bet_every_outcome() {
    let player = key(1);
    let mut checked = 0;
    for &(kind, phase, row) in TABLE {
        for roll in Roll::all() {
            let token = row[usize::from(roll.total()) - 2];
            let mut t = forced(phase, &[(player, kind, STAKE)]);
            let bankroll = t.bankroll;
            let escrow = t.escrow();
            let out = t.roll(roll);
            let ctx = format!("{kind:?} in {phase:?} on {roll:?} (token {token})");
            assert_eq!(t.escrow(), escrow, "escrow changed: {ctx}");
            assert_eq!(out.phase_before, phase, "{ctx}");
            match expected(kind, token, roll) {
                None => {
                    assert!(out.settlements.is_empty(), "{ctx}: {out:?}");
                    assert_eq!(t.stake(&player, kind), STAKE, "{ctx}");
                    assert_eq!(t.bankroll, bankroll, "{ctx}");
                    assert_eq!(t.rail(&player), 0, "{ctx}");
                }
                Some((result, credited, stays)) => {
                    assert_eq!(out.settlements.len(), 1, "{ctx}: {out:?}");
                    let s = &out.settlements[0];
                    assert_eq!((s.player, s.kind, s.stake), (player, kind, STAKE), "{ctx}");
                    assert_eq!(s.result, result, "{ctx}");
                    assert_eq!(s.credited, credited, "{ctx}");
                    assert_eq!(t.rail(&player), credited, "{ctx}");
                    let left = if stays { STAKE } else { 0 };
                    assert_eq!(t.stake(&player, kind), left, "{ctx}");
                    if let BetResult::Moved { to } = result {
                        assert_eq!(t.bets_of(&player).len(), 1, "{ctx}");
                        assert_eq!(t.stake(&player, to), STAKE, "{ctx}");
                    } else {
                        assert_eq!(t.bets_of(&player).len(), usize::from(stays), "{ctx}");
                    }
                    let expected_bankroll = match result {
                        BetResult::Lost => bankroll + STAKE,
                        BetResult::Won { winnings } => bankroll - winnings,
                        _ => bankroll,
                    };
                    assert_eq!(t.bankroll, expected_bankroll, "{ctx}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, TABLE.len() * 36);
}

/// Every kind (with every valid number) appears in the table above, so no
/// kind escapes the exhaustive check.
#[test]
fn table_covers_every_kind() {
    let mut names: Vec<&str> = TABLE.iter().map(|(k, _, _)| k.name()).collect();
    names.dedup();
    let all = [
        "pass",
        "dont_pass",
        "pass_odds",
        "dont_pass_odds",
        "come",
        "dont_come",
        "come_point",
        "dont_come_point",
        "come_odds",
        "dont_come_odds",
        "field",
        "place",
        "hard",
        "any_seven",
        "any_craps",
        "yo",
    ];
    for name in all {
        assert!(
            names.contains(&name),
            "{name} missing from the payout table"
        );
    }
    for n in [4, 5, 6, 8, 9, 10] {
        for k in [
            ComeOdds { point: n },
            DontComeOdds { point: n },
            Place { number: n },
        ] {
            assert!(TABLE.iter().any(|(kind, _, _)| *kind == k), "{k:?} missing");
        }
    }
    for n in [4, 6, 8, 10] {
        assert!(TABLE.iter().any(|(kind, _, _)| *kind == Hard { number: n }));
    }
}

/// Phase transitions, written out.
#[test]
fn phase_advances_on_every_roll() {
    let after_come_out = [
        ComeOut,
        ComeOut,
        Point(4),
        Point(5),
        Point(6),
        ComeOut,
        Point(8),
        Point(9),
        Point(10),
        ComeOut,
        ComeOut,
    ];
    let after_point_6 = [
        Point(6),
        Point(6),
        Point(6),
        Point(6),
        ComeOut,
        ComeOut,
        Point(6),
        Point(6),
        Point(6),
        Point(6),
        Point(6),
    ];
    for roll in Roll::all() {
        let i = usize::from(roll.total()) - 2;
        let mut t = forced(ComeOut, &[]);
        let out = t.roll(roll);
        assert_eq!(
            (out.phase_after, t.phase),
            (after_come_out[i], after_come_out[i])
        );
        let mut t = forced(Point(6), &[]);
        t.roll(roll);
        assert_eq!(t.phase, after_point_6[i], "{roll:?}");
        assert_eq!((t.rolls, t.last_roll), (1, Some(roll)));
    }
}

/// Breakage: odd stakes are paid `floor(stake * num / den)`.
#[test]
fn breakage_goes_to_the_house() {
    let cases: &[(BetKind, Phase, u64, Roll, u64)] = &[
        (Place { number: 6 }, Point(4), 7, Roll { d1: 2, d2: 4 }, 8), // 8.17
        (Place { number: 4 }, Point(6), 7, Roll { d1: 1, d2: 3 }, 12), // 12.6
        (Place { number: 9 }, Point(6), 4, Roll { d1: 4, d2: 5 }, 5), // 5.6
        (PassOdds, Point(5), 3, Roll { d1: 1, d2: 4 }, 4),            // 4.5
        (PassOdds, Point(8), 4, Roll { d1: 2, d2: 6 }, 4),            // 4.8
        (DontPassOdds, Point(4), 3, Roll { d1: 3, d2: 4 }, 1),        // 1.5
        (
            DontComeOdds { point: 6 },
            Point(4),
            7,
            Roll { d1: 1, d2: 6 },
            5,
        ), // 5.83
        (
            DontComeOdds { point: 9 },
            Point(4),
            1,
            Roll { d1: 1, d2: 6 },
            0,
        ), // 0.67
    ];
    for &(kind, phase, stake, roll, winnings) in cases {
        let p = key(1);
        let mut t = forced(phase, &[(p, kind, stake)]);
        let out = t.roll(roll);
        assert_eq!(
            out.settlements[0].result,
            BetResult::Won { winnings },
            "{kind:?} {stake}"
        );
    }
}
