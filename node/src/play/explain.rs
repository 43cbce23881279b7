//! Plain words for the codes a node answers with.
//!
//! A receipt stores only the stable code of a rejection (`betting_closed`,
//! `odds_limit`, ...), not its message, so the client says what the code
//! means and what to do about it. Codes come from `Rejection::code`
//! (execution), `GameError::code` (the craps rules) and the admission codes
//! of `POST /api/v1/tx`; an unknown code (a newer node) still gets a sensible
//! sentence.

/// What `code` means for the player, in one sentence.
pub fn explain(code: &str) -> String {
    let text = match code {
        "ok" => "accepted",
        // Execution (app::state::Rejection).
        "malformed" => "the node could not decode the transaction",
        "bad_signature" => {
            "the signature does not verify (wrong key file, or a key for another chain)"
        }
        "bad_nonce" => {
            "the transaction's nonce was not the account's next one (another transaction from this key got there first); try again"
        }
        "insufficient_funds" => "your balance is too low for this (fund the key with `transfer` from the faucet)",
        "zero_amount" => "the amount must be at least 1 chip",
        "no_such_table" => "there is no table with that id (see `tables`)",
        "betting_closed" => {
            "betting is closed while the dice are being rolled; it reopens in a moment, try again"
        }
        "no_beacon" => "this chain has no dice beacon, so it takes no bets",
        "too_many_tables" => "the chain already has the most open tables it allows",
        // The craps rules (app::craps::GameError).
        "table_closed" => "the table is closed to new bets",
        "not_house" => "only the house that opened the table may do this",
        "below_minimum" => "the bet is below the table minimum (see `tables`)",
        "above_maximum" => "the bet (with what is already on that spot) is above the table maximum",
        "insufficient_bankroll" => {
            "the house's free bankroll cannot cover what this bet could win; bet less or pick another table"
        }
        "not_on_come_out" => "pass and don't pass can only be bet on the come-out roll (no point set)",
        "needs_point" => {
            "this bet needs a point to be set (come, don't come and odds do); wait for the come-out roll to set one"
        }
        "no_flat_bet" => {
            "odds need their flat bet first (pass, don't pass, or a come bet that moved to that number) with a point set"
        }
        "invalid_number" => "that number is not valid for this bet",
        "odds_limit" => "odds are limited to 3x (4, 10), 4x (5, 9), 5x (6, 8) the flat bet, or 6x for lay odds",
        "contract_bet" => "a pass or come bet with a point cannot be taken down",
        "cannot_place_directly" => "come points are reached by come bets; bet `come` or `dont-come` instead",
        "no_such_bet" => "you have no bet on that spot",
        "nothing_to_withdraw" => "your rail at this table is empty (winnings land there after a roll)",
        "too_many_bets" => "the table holds the most betting spots it allows; try another table",
        "too_many_players" => "the table seats the most players it allows; try another table",
        "bad_params" => "table limits need 1 <= min bet <= max bet",
        "odds_behind" => "take the odds down before the flat bet",
        "overflow" => "the amount is too large for the table's chip count",
        "invalid_roll" => "the dice were invalid",
        "no_bankroll" => "a table needs a bankroll of at least 1 chip",
        // Admission (POST /api/v1/tx answers 422 with these).
        "duplicate" => "this exact transaction is already waiting in the node's mempool",
        "stale_nonce" => "the nonce was already used; try again",
        "nonce_too_far_ahead" => "the nonce is too far ahead of the account's; try again",
        "duplicate_nonce" => "another transaction with this nonce is already pending; try again",
        "account_limit" => "this key has too many transactions pending; wait for them to commit",
        "mempool_full" | "busy" => "the node is overloaded; try again shortly",
        _ => return format!("the node refused it (code {code})"),
    };
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::craps::GameError;

    #[test]
    fn every_game_code_has_words() {
        let errors = [
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
        for e in errors {
            let words = explain(e.code());
            assert!(!words.contains("code "), "{}: {words}", e.code());
        }
        for code in [
            "betting_closed",
            "insufficient_funds",
            "bad_nonce",
            "no_such_table",
        ] {
            assert!(!explain(code).contains("code "), "{code}");
        }
        assert_eq!(explain("brand_new"), "the node refused it (code brand_new)");
    }
}
