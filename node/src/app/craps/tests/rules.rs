//! Placement, removal and settlement rules driven through the public actions.

use super::super::{BetKind, BetResult, GameError, Phase, Roll, Table, TableParams};
use super::{house, key, open_table};
use bitcraps_crypto::{Keypair, PublicKey};
use BetKind::*;

fn r(d1: u8, d2: u8) -> Roll {
    Roll::new(d1, d2).expect("valid dice")
}

/// A roll totalling the point number `point`.
fn point_roll(point: u8) -> Roll {
    if point <= 7 {
        r(1, point - 1)
    } else {
        r(6, point - 6)
    }
}

/// An empty table with the point set to `point`.
fn with_point(point: u8) -> Table {
    let mut t = open_table(1, 1_000_000, 10_000_000);
    t.roll(point_roll(point));
    assert_eq!(t.phase, Phase::Point(point));
    t
}

#[test]
fn open_validates_params_and_bankroll() {
    let p = |min_bet, max_bet| TableParams { min_bet, max_bet };
    assert_eq!(
        Table::open(1, house(), p(0, 5), 10),
        Err(GameError::BadParams)
    );
    assert_eq!(
        Table::open(1, house(), p(6, 5), 10),
        Err(GameError::BadParams)
    );
    assert_eq!(
        Table::open(1, house(), p(1, 5), 0),
        Err(GameError::NoBankroll)
    );
    let t = Table::open(1, house(), p(5, 5), 1).expect("ok");
    assert_eq!((t.escrow(), t.reserved(), t.free_bankroll()), (1, 0, 1));
}

#[test]
fn pass_only_on_come_out_and_a_contract_after_the_point() {
    let a = key(1);
    let mut t = open_table(1, 1000, 100_000);
    t.place(a, Pass, 10).expect("come-out pass");
    assert_eq!(t.remove(a, Pass), Ok(10), "removable before the point");
    t.place(a, Pass, 10).expect("again");
    t.roll(r(2, 2)); // point 4
    assert_eq!(t.place(a, Pass, 10), Err(GameError::NotOnComeOut));
    assert_eq!(t.place(a, DontPass, 10), Err(GameError::NotOnComeOut));
    assert_eq!(t.remove(a, Pass), Err(GameError::ContractBet));
    assert_eq!(t.stake(&a, Pass), 10);
}

#[test]
fn dont_pass_removable_any_time_but_odds_first() {
    let a = key(1);
    let mut t = open_table(1, 1000, 100_000);
    t.place(a, DontPass, 10).expect("dp");
    t.roll(r(6, 6)); // bar 12: push, bet stays
    assert_eq!(t.stake(&a, DontPass), 10);
    t.roll(r(4, 6)); // point 10
    t.place(a, DontPassOdds, 60).expect("lay 6x");
    assert_eq!(t.remove(a, DontPass), Err(GameError::OddsBehind));
    assert_eq!(t.remove(a, DontPassOdds), Ok(60));
    assert_eq!(t.remove(a, DontPass), Ok(10));
    assert!(!t.has_bets());
}

#[test]
fn come_bets_need_a_point_and_travel() {
    let a = key(1);
    let mut t = open_table(1, 1000, 100_000);
    assert_eq!(t.place(a, Come, 10), Err(GameError::NeedsPoint));
    assert_eq!(t.place(a, DontCome, 10), Err(GameError::NeedsPoint));
    t.roll(r(3, 3)); // point 6
    t.place(a, Come, 10).expect("come");
    t.place(a, DontCome, 20).expect("dont come");
    assert_eq!(
        t.remove(a, DontCome),
        Ok(20),
        "box bets come down before their roll"
    );
    t.place(a, DontCome, 20).expect("dont come again");
    let out = t.roll(r(4, 5)); // 9: both travel
    let moved: Vec<_> = out.settlements.iter().map(|s| (s.kind, s.result)).collect();
    assert_eq!(
        moved,
        vec![
            (
                Come,
                BetResult::Moved {
                    to: ComePoint { point: 9 }
                }
            ),
            (
                DontCome,
                BetResult::Moved {
                    to: DontComePoint { point: 9 }
                }
            ),
        ]
    );
    assert_eq!(t.stake(&a, ComePoint { point: 9 }), 10);
    assert_eq!(t.stake(&a, DontComePoint { point: 9 }), 20);
    assert_eq!(
        t.remove(a, ComePoint { point: 9 }),
        Err(GameError::ContractBet)
    );
    assert_eq!(
        t.place(a, ComePoint { point: 9 }, 10),
        Err(GameError::CannotPlaceDirectly)
    );
    assert_eq!(
        t.place(a, DontComePoint { point: 5 }, 10),
        Err(GameError::CannotPlaceDirectly)
    );
    assert_eq!(t.remove(a, DontComePoint { point: 9 }), Ok(20));
}

#[test]
fn odds_need_their_flat_bet() {
    let a = key(1);
    let mut t = open_table(1, 1000, 100_000);
    t.place(a, Pass, 10).expect("pass");
    assert_eq!(t.place(a, PassOdds, 10), Err(GameError::NeedsPoint));
    assert_eq!(t.place(a, DontPassOdds, 10), Err(GameError::NeedsPoint));
    assert_eq!(
        t.place(a, ComeOdds { point: 4 }, 10),
        Err(GameError::NoFlatBet)
    );
    assert_eq!(
        t.place(a, DontComeOdds { point: 4 }, 10),
        Err(GameError::NoFlatBet)
    );
    t.roll(r(2, 3)); // point 5
    assert_eq!(t.place(a, DontPassOdds, 10), Err(GameError::NoFlatBet));
    assert_eq!(t.place(key(2), PassOdds, 10), Err(GameError::NoFlatBet));
    t.place(a, PassOdds, 10).expect("odds behind pass");
}

#[test]
fn take_odds_follow_3_4_5x_and_lay_odds_6x() {
    for (point, take) in [(4, 3), (5, 4), (6, 5), (8, 5), (9, 4), (10, 3)] {
        let a = key(1);
        let mut t = open_table(10, 1000, 10_000_000);
        t.place(a, Pass, 10).expect("pass");
        t.place(a, DontPass, 10).expect("dp");
        t.roll(point_roll(point));
        let max = 10 * take;
        assert_eq!(
            t.place(a, PassOdds, max + 1),
            Err(GameError::OddsLimit { max })
        );
        t.place(a, PassOdds, 1)
            .expect("below the table minimum is fine for odds");
        t.place(a, PassOdds, max - 1).expect("up to the limit");
        assert_eq!(t.place(a, PassOdds, 1), Err(GameError::OddsLimit { max }));
        assert_eq!(
            t.place(a, DontPassOdds, 61),
            Err(GameError::OddsLimit { max: 60 })
        );
        t.place(a, DontPassOdds, 60).expect("lay 6x");
    }
}

#[test]
fn come_odds_limits_follow_their_own_number() {
    let a = key(1);
    let mut t = with_point(4);
    t.place(a, Come, 10).expect("come");
    t.place(a, DontCome, 10).expect("dont come");
    t.roll(r(3, 3)); // come points on 6
    let co = ComeOdds { point: 6 };
    let dco = DontComeOdds { point: 6 };
    assert_eq!(t.place(a, co, 51), Err(GameError::OddsLimit { max: 50 }));
    t.place(a, co, 50).expect("5x on 6");
    assert_eq!(t.place(a, dco, 61), Err(GameError::OddsLimit { max: 60 }));
    t.place(a, dco, 60).expect("6x");
    assert_eq!(
        t.place(a, ComeOdds { point: 5 }, 1),
        Err(GameError::NoFlatBet)
    );
}

#[test]
fn come_odds_are_off_on_the_come_out() {
    let a = key(1);
    // 7 on the come-out: the come point loses, its odds come back.
    let mut t = with_point(6);
    t.place(a, Come, 10).expect("come");
    t.roll(r(2, 2)); // come point 4
    t.place(a, ComeOdds { point: 4 }, 30).expect("odds");
    t.roll(r(3, 3)); // point made: come-out
    assert_eq!(t.phase, Phase::ComeOut);
    let out = t.roll(r(3, 4));
    let got: Vec<_> = out
        .settlements
        .iter()
        .map(|s| (s.kind, s.result, s.credited))
        .collect();
    assert_eq!(
        got,
        vec![
            (ComePoint { point: 4 }, BetResult::Lost, 0),
            (ComeOdds { point: 4 }, BetResult::Returned, 30),
        ]
    );
    assert_eq!(t.rail(&a), 30);

    // The come point's number on the come-out: flat wins, odds come back.
    let mut t = with_point(6);
    t.place(a, Come, 10).expect("come");
    t.roll(r(2, 2));
    t.place(a, ComeOdds { point: 4 }, 30).expect("odds");
    t.roll(r(3, 3));
    let out = t.roll(r(1, 3));
    let got: Vec<_> = out
        .settlements
        .iter()
        .map(|s| (s.kind, s.result, s.credited))
        .collect();
    assert_eq!(
        got,
        vec![
            (ComePoint { point: 4 }, BetResult::Won { winnings: 10 }, 20),
            (ComeOdds { point: 4 }, BetResult::Returned, 30),
        ]
    );
    // With a point set the same odds work: 4 pays 2:1.
    let mut t = with_point(6);
    t.place(a, Come, 10).expect("come");
    t.roll(r(2, 2));
    t.place(a, ComeOdds { point: 4 }, 30).expect("odds");
    let out = t.roll(r(1, 3));
    assert_eq!(out.settlements[1].result, BetResult::Won { winnings: 60 });
}

#[test]
fn limits_check_the_spot_total() {
    let a = key(1);
    let mut t = open_table(5, 20, 100_000);
    assert_eq!(
        t.place(a, Field, 4),
        Err(GameError::BelowMinimum { min: 5 })
    );
    assert_eq!(
        t.place(a, Field, 21),
        Err(GameError::AboveMaximum { max: 20 })
    );
    t.place(a, Field, 15).expect("15");
    assert_eq!(
        t.place(a, Field, 6),
        Err(GameError::AboveMaximum { max: 20 })
    );
    t.place(a, Field, 1)
        .expect("total 16 >= min although 1 < min");
    assert_eq!(t.stake(&a, Field), 16);
    assert_eq!(t.place(a, Field, 0), Err(GameError::ZeroAmount));
}

#[test]
fn invalid_numbers_are_refused() {
    let a = key(1);
    let mut t = with_point(6);
    for kind in [
        Place { number: 7 },
        Place { number: 0 },
        Hard { number: 5 },
        Hard { number: 12 },
        ComeOdds { point: 3 },
        DontComeOdds { point: 11 },
        ComePoint { point: 2 },
    ] {
        assert_eq!(
            t.place(a, kind, 10),
            Err(GameError::InvalidNumber),
            "{kind:?}"
        );
        assert_eq!(t.remove(a, kind), Err(GameError::InvalidNumber), "{kind:?}");
    }
}

#[test]
fn closing_stops_new_bets_and_releases_the_free_bankroll() {
    let a = key(1);
    let mut t = with_point(6);
    let start = t.bankroll;
    t.place(a, Place { number: 6 }, 60).expect("place 6"); // reserves 70
    t.place(a, Field, 10).expect("field"); // reserves 30
    assert_eq!(t.close(a), Err(GameError::NotHouse));
    assert_eq!(t.close(house()), Ok(start - 100));
    assert_eq!((t.bankroll, t.reserved()), (100, 100));
    assert_eq!(t.place(a, Field, 10), Err(GameError::TableClosed));
    assert_eq!(
        t.remove(a, Field),
        Ok(10),
        "players can still take bets down"
    );
    assert_eq!(t.close(house()), Ok(30), "released once the field is down");
    t.roll(r(3, 4)); // seven-out: the place bet loses
    assert_eq!(t.close(house()), Ok(130));
    assert_eq!(t.bankroll, 0);
    assert!(t.is_finished());
}

#[test]
fn bets_the_bankroll_cannot_cover_are_refused() {
    let a = key(1);
    let mut t = open_table(1, 1000, 100);
    assert_eq!(
        t.place(a, Yo, 7),
        Err(GameError::InsufficientBankroll {
            free: 100,
            needed: 105
        })
    );
    t.place(a, Yo, 6).expect("90 reserved");
    assert_eq!(
        t.place(a, Field, 4),
        Err(GameError::InsufficientBankroll {
            free: 10,
            needed: 12
        })
    );
    t.place(a, Field, 3).expect("9 more");
    assert_eq!(t.free_bankroll(), 1);
    // Adding to a spot needs only the increase.
    t.place(a, DontPass, 1).expect("1x");
    assert_eq!(
        t.place(a, DontPass, 1),
        Err(GameError::InsufficientBankroll { free: 0, needed: 1 })
    );
}

#[test]
fn winning_bets_that_stay_up_are_taken_down_when_the_bankroll_is_short() {
    let a = key(1);
    // Exactly enough for one place-6 win.
    let mut t = open_table(1, 1000, 35);
    t.place(a, Place { number: 6 }, 30).expect("place");
    t.roll(r(2, 2)); // point 4; place bets are off
    let out = t.roll(r(3, 3));
    let got: Vec<_> = out
        .settlements
        .iter()
        .map(|s| (s.kind, s.result, s.credited))
        .collect();
    let p6 = Place { number: 6 };
    assert_eq!(
        got,
        vec![
            (p6, BetResult::Won { winnings: 35 }, 35),
            (p6, BetResult::Returned, 30)
        ]
    );
    assert_eq!(
        (t.bankroll, t.reserved(), t.rail(&a), t.escrow()),
        (0, 0, 65, 65)
    );

    // Two staying winners; only the larger reservation has to come down.
    let mut t = open_table(1, 1000, 575);
    t.place(a, Place { number: 6 }, 30).expect("place 6: 35");
    t.place(a, Hard { number: 6 }, 30).expect("hard 6: 270");
    t.roll(r(2, 2));
    let out = t.roll(r(3, 3)); // both win: 305 paid, 270 left, 305 reserved
    let downs: Vec<_> = out
        .settlements
        .iter()
        .filter(|s| s.result == BetResult::Returned)
        .map(|s| s.kind)
        .collect();
    assert_eq!(downs, vec![Hard { number: 6 }]);
    assert_eq!(t.stake(&a, p6), 30);
    assert!(t.bankroll >= t.reserved());
    assert_eq!(t.rail(&a), 305 + 30);
}

#[test]
fn spot_and_player_limits() {
    let keys: Vec<PublicKey> = (0..=256u32)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            Keypair::from_seed(&seed).public()
        })
        .collect();
    let kinds = [
        Pass,
        DontPass,
        Field,
        AnySeven,
        AnyCraps,
        Yo,
        Place { number: 4 },
        Place { number: 5 },
        Place { number: 6 },
        Place { number: 8 },
        Place { number: 9 },
        Place { number: 10 },
        Hard { number: 4 },
        Hard { number: 6 },
        Hard { number: 8 },
        Hard { number: 10 },
    ];
    let mut t = open_table(1, 10, u64::MAX / 2);
    for p in &keys[..16] {
        for k in kinds {
            t.place(*p, k, 1).expect("room");
        }
    }
    assert_eq!(t.bets().len(), super::super::MAX_BETS_PER_TABLE);
    assert_eq!(t.place(keys[16], Field, 1), Err(GameError::TooManyBets));
    t.place(keys[0], Field, 1)
        .expect("adding to a spot needs no new one");

    // 256 players with rails: a 257th cannot sit down.
    let mut t = open_table(1, 10, u64::MAX / 2);
    for p in &keys[..256] {
        t.place(*p, Field, 1).expect("room");
    }
    t.roll(r(1, 2)); // field wins: every player now has a rail, no bets
    assert!(!t.has_bets());
    assert_eq!(t.rails().len(), super::super::MAX_RAILS_PER_TABLE);
    assert_eq!(t.place(keys[256], Field, 1), Err(GameError::TooManyPlayers));
    t.place(keys[3], Field, 1).expect("a seated player may bet");
    assert_eq!(t.withdraw(keys[0]), Ok(2));
    t.place(keys[256], Field, 1).expect("a seat was freed");
}

#[test]
fn overflow_and_missing_things_are_errors() {
    let a = key(1);
    let mut t = open_table(1, u64::MAX, u64::MAX - 10);
    assert_eq!(t.place(a, DontPass, 11), Err(GameError::Overflow));
    t.place(a, DontPass, 5).expect("fits");
    assert_eq!(t.place(a, DontPass, u64::MAX), Err(GameError::Overflow));
    assert_eq!(t.remove(a, Field), Err(GameError::NoSuchBet));
    assert_eq!(t.withdraw(a), Err(GameError::NothingToWithdraw));
    let before = t.encode();
    assert_eq!(
        t.try_roll(Roll { d1: 0, d2: 7 }),
        Err(GameError::InvalidRoll)
    );
    let out = t.roll(Roll { d1: 9, d2: 1 });
    assert!(out.settlements.is_empty());
    assert_eq!(t.encode(), before, "an invalid roll changes nothing");
}

#[test]
fn error_codes_are_stable_and_match_json() {
    let all = [
        GameError::TableClosed,
        GameError::NotHouse,
        GameError::BelowMinimum { min: 1 },
        GameError::AboveMaximum { max: 1 },
        GameError::InsufficientBankroll { free: 1, needed: 2 },
        GameError::NotOnComeOut,
        GameError::NeedsPoint,
        GameError::NoFlatBet,
        GameError::InvalidNumber,
        GameError::OddsLimit { max: 1 },
        GameError::ContractBet,
        GameError::CannotPlaceDirectly,
        GameError::NoSuchBet,
        GameError::NothingToWithdraw,
        GameError::TooManyBets,
        GameError::TooManyPlayers,
        GameError::BadParams,
        GameError::ZeroAmount,
        GameError::OddsBehind,
        GameError::Overflow,
        GameError::InvalidRoll,
        GameError::NoBankroll,
    ];
    let mut codes: Vec<&str> = Vec::new();
    for (i, e) in all.iter().enumerate() {
        let code = e.code();
        assert!(
            code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{code}"
        );
        assert!(!codes.contains(&code), "duplicate {code}");
        codes.push(code);
        let json = serde_json::to_string(e).expect("json");
        assert!(json.contains(code), "{json} vs {code}");
        // Postcard tags by variant index: the order is part of the receipts.
        assert_eq!(postcard::to_allocvec(e).expect("postcard")[0] as usize, i);
        let back: GameError =
            postcard::from_bytes(&postcard::to_allocvec(e).expect("enc")).expect("dec");
        assert_eq!(back, *e);
    }
    assert_eq!(codes[4], "insufficient_bankroll");
}

#[test]
fn phase_json_shape() {
    assert_eq!(
        serde_json::to_string(&Phase::ComeOut).expect("json"),
        "\"come_out\""
    );
    assert_eq!(
        serde_json::to_string(&Phase::Point(6)).expect("json"),
        "{\"point\":6}"
    );
    let w = BetResult::Won { winnings: 3 };
    assert_eq!(
        serde_json::to_string(&w).expect("json"),
        "{\"won\":{\"winnings\":3}}"
    );
}
