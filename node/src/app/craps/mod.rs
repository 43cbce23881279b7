//! Casino craps, as a pure and deterministic rules engine.
//!
//! The types here are shared by the transaction format ([`super::tx`]), the
//! state machine ([`super::state`]), the HTTP API and the player CLI. Their
//! serde shape is part of the wire format: postcard encodes enum variants by
//! index, so **never reorder or remove a variant**; add new ones at the end.
//!
//! The engine never reads a clock, never iterates a hash map and never uses
//! floats: chips are `u64`, payouts are integer ratios, and every collection is
//! kept sorted, so the same transactions give the same table bytes on every
//! validator.
//!
//! * [`dice`]: [`Roll`] helpers, unbiased dice from a seed, the table [`Phase`].
//! * [`bet`]: facts about [`BetKind`]s (valid numbers, odds and their flat bet).
//! * [`payout`]: payout ratios, [`worst_case_payout`], the odds limits.
//! * [`rules`]: [`decide`], what one roll does to one bet.
//! * `table`: [`Table`], its chip accounting and the player/house actions.
//! * `settle`: [`Table::roll`] and the bankroll protection.
//! * `codec`: the canonical, validated byte encoding of a table.
//! * [`error`]: [`GameError`] with stable codes.
//!
//! # Rules
//!
//! The table is on the come-out ([`Phase::ComeOut`]) or has a point
//! ([`Phase::Point`]). A come-out 4, 5, 6, 8, 9 or 10 sets the point; with a
//! point set, the point or a 7 returns the table to the come-out. The phase
//! advances on every roll, whether or not anyone bets.
//!
//! | bet | wins | loses | pays | placeable | removable |
//! | --- | --- | --- | --- | --- | --- |
//! | Pass | come-out 7, 11; then the point | come-out 2, 3, 12; then 7 | 1:1 | come-out only | come-out only (a contract bet once the point is set) |
//! | Don't Pass | come-out 2, 3; then 7 | come-out 7, 11; then the point | 1:1, **12 pushes** (bet stays) | come-out only | any time |
//! | Come | first roll 7, 11 | first roll 2, 3, 12 | 1:1; a point number moves it to ComePoint{n} | with a point | before its first roll |
//! | Don't Come | first roll 2, 3 | first roll 7, 11 | 1:1, 12 pushes; a point number moves it to DontComePoint{n} | with a point | before its first roll |
//! | ComePoint{n} | n | 7 | 1:1 | never directly | never (contract) |
//! | DontComePoint{n} | 7 | n | 1:1 | never directly | any time |
//! | PassOdds / ComeOdds{n} (take) | the point / n | 7 | 4, 10: 2:1; 5, 9: 3:2; 6, 8: 6:5 | behind Pass with a point / behind ComePoint{n}; up to 3x (4, 10), 4x (5, 9), 5x (6, 8) the flat bet | any time |
//! | DontPassOdds / DontComeOdds{n} (lay) | 7 | the point / n | 4, 10: 1:2; 5, 9: 2:3; 6, 8: 5:6 | behind Don't Pass with a point / behind DontComePoint{n}; up to 6x the flat bet | any time |
//! | Field (one roll) | 2, 3, 4, 9, 10, 11, 12 | 5, 6, 7, 8 | 2: 2:1; 12: 3:1; others 1:1 | any time | before it is rolled |
//! | Place{n}, n in 4, 5, 6, 8, 9, 10 | n (bet stays up) | 7 | 4, 10: 9:5; 5, 9: 7:5; 6, 8: 7:6 | any time; off on the come-out | any time |
//! | Hard{n}, n in 4, 6, 8, 10 | n as a pair (bet stays up) | n the easy way, 7 | 4, 10: 7:1; 6, 8: 9:1 | any time; off on the come-out | any time |
//! | Any Seven (one roll) | 7 | anything else | 4:1 | any time | before it is rolled |
//! | Any Craps (one roll) | 2, 3, 12 | anything else | 7:1 | any time | before it is rolled |
//! | Yo (one roll) | 11 | anything else | 15:1 | any time | before it is rolled |
//!
//! Odds resolve with their flat bet. Come odds are **off on the come-out**: if
//! the table is on the come-out and the come point's number or a 7 rolls, the
//! flat bet is settled and the odds are returned. Lay odds always work. A
//! flat bet with odds behind it can only be removed after the odds
//! ([`GameError::OddsBehind`]).
//!
//! **Breakage:** chips are whole numbers, so winnings are
//! `floor(stake * num / den)`; the fraction is kept by the house (a 7 chip
//! Place 6 wins 8, not 8.17). Stakes that are multiples of the ratio's
//! denominator (5 on Place 4, 6 on Place 6, ...) are paid exactly.
//!
//! Placement limits: amount >= 1; a flat or one-roll spot's resulting stake
//! must be within `[min_bet, max_bet]` (adding to a spot checks the total);
//! odds have no minimum and are capped only by the multiple above; at most
//! [`MAX_BETS_PER_TABLE`] spots and [`MAX_RAILS_PER_TABLE`] players per table;
//! no new bets on a closed table; and the house's free bankroll must cover the
//! added worst case (see `table` and `settle` for the solvency argument).

pub mod bet;
mod codec;
pub mod dice;
pub mod error;
pub mod payout;
pub mod rules;
mod settle;
mod table;
#[cfg(test)]
mod tests;

pub use bet::HARD_NUMBERS;
pub use codec::{MAX_TABLE_BYTES, TABLE_ENCODING_VERSION};
pub use dice::{is_point_number, Phase, POINT_NUMBERS};
pub use error::GameError;
pub use payout::{odds_limit, worst_case_payout, Ratio};
pub use rules::{decide, Decision};
pub use settle::{BetResult, RollOutcome, Settlement};
pub use table::{BetView, Table, MAX_BETS_PER_TABLE, MAX_RAILS_PER_TABLE};

use serde::{Deserialize, Serialize};

/// One throw of two six-sided dice (`d1`, `d2` in `1..=6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roll {
    pub d1: u8,
    pub d2: u8,
}

/// A bet on a table. Together with the player's key it names one betting
/// spot: placing the same kind again adds to that spot's stake.
///
/// `ComePoint`/`DontComePoint` are where a `Come`/`DontCome` bet travels when
/// its first roll is a point number; players cannot place them directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BetKind {
    Pass,
    DontPass,
    /// Free odds behind a Pass bet, at true odds.
    PassOdds,
    /// Lay odds behind a Don't Pass bet, at true odds.
    DontPassOdds,
    Come,
    DontCome,
    /// A Come bet that travelled to `point`.
    ComePoint {
        point: u8,
    },
    /// A Don't Come bet that travelled to `point`.
    DontComePoint {
        point: u8,
    },
    /// Free odds behind the Come bet on `point`.
    ComeOdds {
        point: u8,
    },
    /// Lay odds behind the Don't Come bet on `point`.
    DontComeOdds {
        point: u8,
    },
    Field,
    /// Place bet on 4, 5, 6, 8, 9 or 10.
    Place {
        number: u8,
    },
    /// Hardway on 4, 6, 8 or 10.
    Hard {
        number: u8,
    },
    AnySeven,
    AnyCraps,
    /// Yo-leven: 11 on the next roll.
    Yo,
}

/// Limits the house sets when it opens a table (chips).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableParams {
    pub min_bet: u64,
    pub max_bet: u64,
}
