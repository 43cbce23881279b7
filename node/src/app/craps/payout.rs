//! Payout ratios, the worst case a bet can cost the house, and the odds limits.
//!
//! Chips are integers, so winnings are `floor(stake * num / den)`; the
//! fraction that does not fit in a whole chip (the "breakage") stays with the
//! house, as in a real casino that pays no coins below its smallest chip. The
//! product is computed in `u128`, so no stake overflows.

use super::BetKind;

/// A payout of `num` to `den`: a winning stake `s` wins `floor(s * num / den)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub num: u64,
    pub den: u64,
}

impl Ratio {
    const fn new(num: u64, den: u64) -> Ratio {
        Ratio { num, den }
    }

    /// Even money.
    pub const EVEN: Ratio = Ratio::new(1, 1);

    /// `floor(stake * num / den)`, saturating at `u64::MAX` (only reachable for
    /// stakes no table can hold, since every stake sits inside a `u64` escrow
    /// and the bankroll covers the result).
    pub fn winnings(self, stake: u64) -> u64 {
        if self.den == 0 {
            return 0;
        }
        let w = u128::from(stake) * u128::from(self.num) / u128::from(self.den);
        u64::try_from(w).unwrap_or(u64::MAX)
    }
}

/// Take odds (behind Pass / Come) at true odds: 2:1, 3:2, 6:5.
pub fn take_odds_ratio(point: u8) -> Option<Ratio> {
    match point {
        4 | 10 => Some(Ratio::new(2, 1)),
        5 | 9 => Some(Ratio::new(3, 2)),
        6 | 8 => Some(Ratio::new(6, 5)),
        _ => None,
    }
}

/// Lay odds (behind Don't Pass / Don't Come) at true odds: 1:2, 2:3, 5:6.
pub fn lay_odds_ratio(point: u8) -> Option<Ratio> {
    match point {
        4 | 10 => Some(Ratio::new(1, 2)),
        5 | 9 => Some(Ratio::new(2, 3)),
        6 | 8 => Some(Ratio::new(5, 6)),
        _ => None,
    }
}

/// Place bets: 9:5, 7:5, 7:6.
pub fn place_ratio(number: u8) -> Option<Ratio> {
    match number {
        4 | 10 => Some(Ratio::new(9, 5)),
        5 | 9 => Some(Ratio::new(7, 5)),
        6 | 8 => Some(Ratio::new(7, 6)),
        _ => None,
    }
}

/// Hardways: 7:1 on 4 and 10, 9:1 on 6 and 8.
pub fn hard_ratio(number: u8) -> Option<Ratio> {
    match number {
        4 | 10 => Some(Ratio::new(7, 1)),
        6 | 8 => Some(Ratio::new(9, 1)),
        _ => None,
    }
}

/// The Field on `total`: 2 pays 2:1, 12 pays 3:1, 3/4/9/10/11 even money;
/// `None` (the bet loses) on 5, 6, 7 and 8.
pub fn field_ratio(total: u8) -> Option<Ratio> {
    match total {
        2 => Some(Ratio::new(2, 1)),
        12 => Some(Ratio::new(3, 1)),
        3 | 4 | 9 | 10 | 11 => Some(Ratio::EVEN),
        _ => None,
    }
}

pub const ANY_SEVEN: Ratio = Ratio::new(4, 1);
pub const ANY_CRAPS: Ratio = Ratio::new(7, 1);
pub const YO: Ratio = Ratio::new(15, 1);

/// The largest ratio `kind` can ever pay in one roll.
///
/// `point` is the table's point; only [`BetKind::PassOdds`] and
/// [`BetKind::DontPassOdds`] use it (every other odds bet carries its own
/// number). When a number is unknown or invalid the largest ratio of the
/// family is used, so the answer is always an upper bound.
pub fn max_ratio(kind: BetKind, point: Option<u8>) -> Ratio {
    let or = |r: Option<Ratio>, worst: Ratio| r.unwrap_or(worst);
    match kind {
        BetKind::Pass
        | BetKind::DontPass
        | BetKind::Come
        | BetKind::DontCome
        | BetKind::ComePoint { .. }
        | BetKind::DontComePoint { .. } => Ratio::EVEN,
        BetKind::PassOdds => or(point.and_then(take_odds_ratio), Ratio::new(2, 1)),
        BetKind::DontPassOdds => or(point.and_then(lay_odds_ratio), Ratio::new(5, 6)),
        BetKind::ComeOdds { point } => or(take_odds_ratio(point), Ratio::new(2, 1)),
        BetKind::DontComeOdds { point } => or(lay_odds_ratio(point), Ratio::new(5, 6)),
        BetKind::Field => Ratio::new(3, 1),
        BetKind::Place { number } => or(place_ratio(number), Ratio::new(9, 5)),
        BetKind::Hard { number } => or(hard_ratio(number), Ratio::new(9, 1)),
        BetKind::AnySeven => ANY_SEVEN,
        BetKind::AnyCraps => ANY_CRAPS,
        BetKind::Yo => YO,
    }
}

/// The most the spot `kind` holding `stake` can win in one roll (Field: 3x,
/// Hard 6/8: 9x, Yo: 15x, flat bets 1x, odds at their point's ratio, ...).
/// The house must hold this much for every spot on its table.
///
/// `point` is the table's point (see [`max_ratio`]).
pub fn worst_case_payout(kind: BetKind, stake: u64, point: Option<u8>) -> u64 {
    max_ratio(kind, point).winnings(stake)
}

/// Maximum take-odds multiple of the flat bet ("3-4-5x").
pub fn take_odds_multiple(point: u8) -> u64 {
    match point {
        4 | 10 => 3,
        5 | 9 => 4,
        6 | 8 => 5,
        _ => 0,
    }
}

/// Maximum lay-odds multiple of the flat bet (6x on every number).
pub const LAY_ODDS_MULTIPLE: u64 = 6;

/// The largest stake an odds spot `kind` may hold behind a flat bet of
/// `flat_stake`, with `point` the table's point for pass-line odds. 0 for
/// non-odds kinds or an unknown point.
pub fn odds_limit(kind: BetKind, flat_stake: u64, point: Option<u8>) -> u64 {
    let multiple = match kind {
        BetKind::PassOdds => point.map_or(0, take_odds_multiple),
        BetKind::ComeOdds { point } => take_odds_multiple(point),
        BetKind::DontPassOdds if point.is_some() => LAY_ODDS_MULTIPLE,
        BetKind::DontComeOdds { .. } => LAY_ODDS_MULTIPLE,
        _ => 0,
    };
    flat_stake.saturating_mul(multiple)
}
