//! What one roll does to one bet: the rules of craps as a pure function.
//!
//! [`decide`] looks at a bet kind, the phase the table was in *before* the
//! roll, and the dice. It knows nothing about stakes, players or the bankroll;
//! [`super::Table::roll`] applies its answer. Keeping the rules in one
//! function makes them easy to read against the payout table in the module
//! docs and to test exhaustively (36 outcomes x every kind x every phase).

use super::dice::{is_point_number, Phase};
use super::payout::{
    field_ratio, hard_ratio, lay_odds_ratio, place_ratio, take_odds_ratio, Ratio, ANY_CRAPS,
    ANY_SEVEN, YO,
};
use super::{BetKind, Roll};

/// The effect of one roll on one bet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The roll does not concern the bet (or the bet is off).
    NoAction,
    /// The bet wins at `ratio`; if `stays` the stake stays up (place and
    /// hardway bets), otherwise it comes down with the winnings.
    Win { ratio: Ratio, stays: bool },
    /// The stake goes to the house.
    Lose,
    /// A tie (Don't Pass / Don't Come on 12): the bet stays as it is.
    Push,
    /// A Come / Don't Come bet travels to its come point.
    Move { to: BetKind },
    /// The stake goes back to the player without action (come odds, which are
    /// off on the come-out roll, when their number or a 7 rolls).
    Return,
}

fn win(ratio: Option<Ratio>) -> Decision {
    match ratio {
        Some(ratio) => Decision::Win {
            ratio,
            stays: false,
        },
        // Only reachable for an invalid number, which the table never holds.
        None => Decision::NoAction,
    }
}

fn win_stays(ratio: Option<Ratio>) -> Decision {
    match ratio {
        Some(ratio) => Decision::Win { ratio, stays: true },
        None => Decision::NoAction,
    }
}

const EVEN: Option<Ratio> = Some(Ratio::EVEN);

/// A "do" bet's first roll (Pass on the come-out, Come in the box):
/// 7/11 win, 2/3/12 lose, a point number goes on.
fn do_first_roll(total: u8, on_point: Decision) -> Decision {
    match total {
        7 | 11 => win(EVEN),
        2 | 3 | 12 => Decision::Lose,
        n if is_point_number(n) => on_point,
        _ => Decision::NoAction,
    }
}

/// A "don't" bet's first roll: 2/3 win, 12 pushes (bar 12), 7/11 lose.
fn dont_first_roll(total: u8, on_point: Decision) -> Decision {
    match total {
        2 | 3 => win(EVEN),
        12 => Decision::Push,
        7 | 11 => Decision::Lose,
        n if is_point_number(n) => on_point,
        _ => Decision::NoAction,
    }
}

/// A bet on `point` that wins when it rolls before a 7.
fn do_point(total: u8, point: u8, ratio: Option<Ratio>) -> Decision {
    if total == point {
        win(ratio)
    } else if total == 7 {
        Decision::Lose
    } else {
        Decision::NoAction
    }
}

/// A bet on `point` that wins when a 7 rolls before it.
fn dont_point(total: u8, point: u8, ratio: Option<Ratio>) -> Decision {
    if total == 7 {
        win(ratio)
    } else if total == point {
        Decision::Lose
    } else {
        Decision::NoAction
    }
}

/// What `roll` does to a `kind` bet when the table was in `phase`.
pub fn decide(kind: BetKind, phase: Phase, roll: Roll) -> Decision {
    let total = roll.total();
    let point = phase.point();
    match kind {
        BetKind::Pass => match point {
            None => do_first_roll(total, Decision::NoAction),
            Some(p) => do_point(total, p, EVEN),
        },
        BetKind::DontPass => match point {
            None => dont_first_roll(total, Decision::NoAction),
            Some(p) => dont_point(total, p, EVEN),
        },
        // Pass-line odds exist only while a point is set.
        BetKind::PassOdds => match point {
            None => Decision::NoAction,
            Some(p) => do_point(total, p, take_odds_ratio(p)),
        },
        BetKind::DontPassOdds => match point {
            None => Decision::NoAction,
            Some(p) => dont_point(total, p, lay_odds_ratio(p)),
        },
        BetKind::Come => do_first_roll(
            total,
            Decision::Move {
                to: BetKind::ComePoint { point: total },
            },
        ),
        BetKind::DontCome => dont_first_roll(
            total,
            Decision::Move {
                to: BetKind::DontComePoint { point: total },
            },
        ),
        BetKind::ComePoint { point: n } => do_point(total, n, EVEN),
        BetKind::DontComePoint { point: n } => dont_point(total, n, EVEN),
        BetKind::ComeOdds { point: n } => {
            // Off on the come-out (the standard house rule): their flat bet is
            // settled, the odds are handed back.
            if point.is_none() && (total == n || total == 7) {
                Decision::Return
            } else {
                do_point(total, n, take_odds_ratio(n))
            }
        }
        // Lay odds always work.
        BetKind::DontComeOdds { point: n } => dont_point(total, n, lay_odds_ratio(n)),
        BetKind::Field => match field_ratio(total) {
            Some(r) => win(Some(r)),
            None => Decision::Lose,
        },
        BetKind::Place { number } => match point {
            None => Decision::NoAction, // off on the come-out
            Some(_) if total == number => win_stays(place_ratio(number)),
            Some(_) if total == 7 => Decision::Lose,
            Some(_) => Decision::NoAction,
        },
        BetKind::Hard { number } => match point {
            None => Decision::NoAction, // off on the come-out
            Some(_) if total == number && roll.is_hard() => win_stays(hard_ratio(number)),
            Some(_) if total == number || total == 7 => Decision::Lose,
            Some(_) => Decision::NoAction,
        },
        BetKind::AnySeven if total == 7 => win(Some(ANY_SEVEN)),
        BetKind::AnyCraps if matches!(total, 2 | 3 | 12) => win(Some(ANY_CRAPS)),
        BetKind::Yo if total == 11 => win(Some(YO)),
        BetKind::AnySeven | BetKind::AnyCraps | BetKind::Yo => Decision::Lose,
    }
}
