//! Casino craps, as a pure and deterministic rules engine.
//!
//! The types here are shared by the transaction format ([`super::tx`]), the
//! state machine ([`super::state`]), the HTTP API and the player CLI. Their
//! serde shape is part of the wire format: postcard encodes enum variants by
//! index, so **never reorder or remove a variant**; add new ones at the end.

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
    ComePoint { point: u8 },
    /// A Don't Come bet that travelled to `point`.
    DontComePoint { point: u8 },
    /// Free odds behind the Come bet on `point`.
    ComeOdds { point: u8 },
    /// Lay odds behind the Don't Come bet on `point`.
    DontComeOdds { point: u8 },
    Field,
    /// Place bet on 4, 5, 6, 8, 9 or 10.
    Place { number: u8 },
    /// Hardway on 4, 6, 8 or 10.
    Hard { number: u8 },
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
