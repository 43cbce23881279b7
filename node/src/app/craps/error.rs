//! Why a table refused an action.
//!
//! The error goes into stored receipts, so it is `Copy`, serde-encodable and
//! holds only integers. Postcard encodes the variant index: append new
//! variants at the end, never reorder. [`GameError::code`] is the stable
//! machine-readable name clients match on.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum GameError {
    #[error("the table is closed to new bets")]
    TableClosed,
    #[error("only the house may do this")]
    NotHouse,
    #[error("bet below the table minimum of {min}")]
    BelowMinimum { min: u64 },
    #[error("bet above the table maximum of {max}")]
    AboveMaximum { max: u64 },
    #[error("the house bankroll cannot cover this bet: {free} free, {needed} needed")]
    InsufficientBankroll { free: u64, needed: u64 },
    #[error("this bet can only be placed on the come-out roll")]
    NotOnComeOut,
    #[error("this bet needs a point to be set")]
    NeedsPoint,
    #[error("odds need their flat bet (with a point) first")]
    NoFlatBet,
    #[error("invalid number for this bet")]
    InvalidNumber,
    #[error("odds limited to {max} behind this flat bet")]
    OddsLimit { max: u64 },
    #[error("a contract bet cannot be taken down")]
    ContractBet,
    #[error("come points are reached by come bets, not placed directly")]
    CannotPlaceDirectly,
    #[error("no such bet")]
    NoSuchBet,
    #[error("nothing to withdraw")]
    NothingToWithdraw,
    #[error("too many bets on this table")]
    TooManyBets,
    #[error("too many players on this table")]
    TooManyPlayers,
    #[error("invalid table parameters (need 1 <= min_bet <= max_bet)")]
    BadParams,
    #[error("amount must be at least 1")]
    ZeroAmount,
    // --- added beyond the original list; keep appending ---
    #[error("take the odds down before the flat bet")]
    OddsBehind,
    #[error("amount overflows the table's chip count")]
    Overflow,
    #[error("dice must be in 1..=6")]
    InvalidRoll,
    #[error("a table needs a bankroll of at least 1")]
    NoBankroll,
}

impl GameError {
    /// Stable snake_case code for APIs and receipts.
    pub fn code(&self) -> &'static str {
        match self {
            GameError::TableClosed => "table_closed",
            GameError::NotHouse => "not_house",
            GameError::BelowMinimum { .. } => "below_minimum",
            GameError::AboveMaximum { .. } => "above_maximum",
            GameError::InsufficientBankroll { .. } => "insufficient_bankroll",
            GameError::NotOnComeOut => "not_on_come_out",
            GameError::NeedsPoint => "needs_point",
            GameError::NoFlatBet => "no_flat_bet",
            GameError::InvalidNumber => "invalid_number",
            GameError::OddsLimit { .. } => "odds_limit",
            GameError::ContractBet => "contract_bet",
            GameError::CannotPlaceDirectly => "cannot_place_directly",
            GameError::NoSuchBet => "no_such_bet",
            GameError::NothingToWithdraw => "nothing_to_withdraw",
            GameError::TooManyBets => "too_many_bets",
            GameError::TooManyPlayers => "too_many_players",
            GameError::BadParams => "bad_params",
            GameError::ZeroAmount => "zero_amount",
            GameError::OddsBehind => "odds_behind",
            GameError::Overflow => "overflow",
            GameError::InvalidRoll => "invalid_roll",
            GameError::NoBankroll => "no_bankroll",
        }
    }
}
