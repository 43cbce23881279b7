//! Unit tests of the craps engine: the payout table against literal expected
//! results, the placement/removal rules, bankroll protection, the codec and
//! randomized action sequences.

mod codec;
mod payouts;
mod props;
mod rules;

use super::{BetKind, Phase, Table, TableParams};
use bitcraps_crypto::{Keypair, PublicKey};

/// A deterministic test key.
pub(super) fn key(i: u8) -> PublicKey {
    Keypair::from_seed(&[i; 32]).public()
}

pub(super) fn house() -> PublicKey {
    key(200)
}

/// An open table with a deep bankroll and wide limits.
pub(super) fn open_table(min_bet: u64, max_bet: u64, bankroll: u64) -> Table {
    Table::open(7, house(), TableParams { min_bet, max_bet }, bankroll).expect("valid params")
}

/// A table forced into `phase` holding exactly `bets` (bypassing the
/// placement rules, so a single bet can be settled in isolation).
pub(super) fn forced(phase: Phase, bets: &[(PublicKey, BetKind, u64)]) -> Table {
    let mut t = open_table(1, 1_000_000, 1_000_000);
    t.phase = phase;
    for &(player, kind, stake) in bets {
        let i = t.find(&player, kind).expect_err("distinct spots");
        t.bets.insert(
            i,
            super::BetView {
                player,
                kind,
                stake,
            },
        );
    }
    t
}
