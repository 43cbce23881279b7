//! One craps table: the house's bankroll, the bets on it and the chips it owes
//! players (their rails), with the actions players and the house take between
//! rolls. [`Table::roll`] lives in `settle.rs`, the byte encoding in `codec.rs`.
//!
//! # Chip accounting
//!
//! Every chip a table holds is in exactly one of three places: the
//! `bankroll` (the house's), a bet's stake, or a player's rail. Their sum is
//! [`Table::escrow`]. `place` adds exactly its amount; `remove`, `withdraw` and
//! `close` subtract exactly what they return; a roll only moves chips between
//! the three places. The caller moves the matching chips in and out of account
//! balances, so no chip is created or lost.
//!
//! # The house can always pay
//!
//! [`Table::reserved`] is the sum over all spots of the most each can win in a
//! single roll ([`worst_case_payout`]). Every action keeps
//! `bankroll >= reserved`: a bet is accepted only if the free bankroll covers
//! the reservation it adds, and a roll restores the invariant if it pays
//! place/hardway bets that stay up (see `settle.rs`). So whatever the dice
//! show, the bankroll covers every winner.
//!
//! # Limits
//!
//! At most [`MAX_BETS_PER_TABLE`] spots and at most [`MAX_RAILS_PER_TABLE`]
//! distinct players (with a bet or a rail) per table. 256 of each keeps a
//! table's encoding under ~25 KiB (a spot is ~40 bytes), so storing one table
//! per write stays cheap while a busy table still seats far more players than
//! a casino would. The player bound counts bets and rails together because a
//! roll must be able to credit every bettor's rail without failing.

use super::dice::Phase;
use super::error::GameError;
use super::payout::{odds_limit, worst_case_payout};
use super::{BetKind, Roll, TableParams};
use bitcraps_crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most betting spots (player, kind) a table holds.
pub const MAX_BETS_PER_TABLE: usize = 256;
/// Most distinct players (with a bet or a non-zero rail) a table holds.
pub const MAX_RAILS_PER_TABLE: usize = 256;

/// One betting spot: a player's stake on one kind of bet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetView {
    pub player: PublicKey,
    pub kind: BetKind,
    pub stake: u64,
}

/// A craps table. See the module docs for its invariants.
///
/// Bets are kept sorted by `(player, kind)` and rails by player, both without
/// duplicates or zero amounts, so the encoding is canonical and iteration
/// order is the same on every machine. Deserializing (JSON or postcard)
/// validates every invariant; [`Table::decode`] additionally checks that the
/// bytes are canonical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "super::codec::RawTable")]
pub struct Table {
    pub id: u64,
    pub house: PublicKey,
    pub params: TableParams,
    /// The house's chips on the table.
    pub bankroll: u64,
    pub phase: Phase,
    /// No new bets; the house is winding the table down.
    pub closed: bool,
    /// Rolls applied so far.
    pub rolls: u64,
    pub last_roll: Option<Roll>,
    pub(super) bets: Vec<BetView>,
    pub(super) rails: Vec<(PublicKey, u64)>,
}

impl Table {
    /// Opens a table. Validates params (`1 <= min_bet <= max_bet`) and that
    /// `bankroll >= 1`. The caller has already taken `bankroll` from the
    /// house's balance iff this returns `Ok`.
    pub fn open(
        id: u64,
        house: PublicKey,
        params: TableParams,
        bankroll: u64,
    ) -> Result<Table, GameError> {
        if params.min_bet == 0 || params.min_bet > params.max_bet {
            return Err(GameError::BadParams);
        }
        if bankroll == 0 {
            return Err(GameError::NoBankroll);
        }
        Ok(Table {
            id,
            house,
            params,
            bankroll,
            phase: Phase::ComeOut,
            closed: false,
            rolls: 0,
            last_roll: None,
            bets: Vec::new(),
            rails: Vec::new(),
        })
    }

    /// The point, if one is set.
    pub fn point(&self) -> Option<u8> {
        self.phase.point()
    }

    /// Index of the spot, or where it would be inserted.
    pub(super) fn find(&self, player: &PublicKey, kind: BetKind) -> Result<usize, usize> {
        self.bets
            .binary_search_by(|b| (&b.player, b.kind).cmp(&(player, kind)))
    }

    /// The stake on a spot (0 if there is none).
    pub fn stake(&self, player: &PublicKey, kind: BetKind) -> u64 {
        match self.find(player, kind) {
            Ok(i) => self.bets.get(i).map_or(0, |b| b.stake),
            Err(_) => 0,
        }
    }

    /// The worst case of one spot at the table's current point.
    pub fn worst_case(&self, kind: BetKind, stake: u64) -> u64 {
        worst_case_payout(kind, stake, self.point())
    }

    fn reserved_wide(&self) -> u128 {
        self.bets
            .iter()
            .map(|b| u128::from(self.worst_case(b.kind, b.stake)))
            .sum()
    }

    /// Sum of the worst-case payouts of all spots: what the bankroll must cover.
    /// Saturates at `u64::MAX` (a table never gets there: it is always
    /// `<= bankroll`).
    pub fn reserved(&self) -> u64 {
        u64::try_from(self.reserved_wide()).unwrap_or(u64::MAX)
    }

    /// The bankroll not reserved for the bets on the table: what new bets can
    /// use and what `close` releases.
    pub fn free_bankroll(&self) -> u64 {
        self.bankroll.saturating_sub(self.reserved())
    }

    fn escrow_wide(&self) -> u128 {
        let stakes: u128 = self.bets.iter().map(|b| u128::from(b.stake)).sum();
        let rails: u128 = self.rails.iter().map(|(_, r)| u128::from(*r)).sum();
        u128::from(self.bankroll) + stakes + rails
    }

    /// All chips the table holds: bankroll + stakes + rails. Always fits a
    /// `u64`, because `place` refuses amounts that would overflow it.
    pub fn escrow(&self) -> u64 {
        u64::try_from(self.escrow_wide()).unwrap_or(u64::MAX)
    }

    /// Every spot, sorted by (player, kind).
    pub fn bets(&self) -> Vec<BetView> {
        self.bets.clone()
    }

    /// The player's spots, sorted by kind.
    pub fn bets_of(&self, player: &PublicKey) -> Vec<BetView> {
        self.bets
            .iter()
            .filter(|b| b.player == *player)
            .cloned()
            .collect()
    }

    pub fn has_bets(&self) -> bool {
        !self.bets.is_empty()
    }

    /// Chips the table owes `player` (0 if none).
    pub fn rail(&self, player: &PublicKey) -> u64 {
        match self.rails.binary_search_by(|(p, _)| p.cmp(player)) {
            Ok(i) => self.rails.get(i).map_or(0, |(_, r)| *r),
            Err(_) => 0,
        }
    }

    /// Every non-zero rail, sorted by player.
    pub fn rails(&self) -> Vec<(PublicKey, u64)> {
        self.rails.clone()
    }

    /// Closed and holding no chips at all: the caller may delete it.
    pub fn is_finished(&self) -> bool {
        self.closed && self.bankroll == 0 && self.bets.is_empty() && self.rails.is_empty()
    }

    /// Distinct players with a bet or a rail.
    pub(super) fn player_count(&self) -> usize {
        let mut players: BTreeSet<&PublicKey> = self.bets.iter().map(|b| &b.player).collect();
        players.extend(self.rails.iter().map(|(p, _)| p));
        players.len()
    }

    fn is_seated(&self, player: &PublicKey) -> bool {
        self.rail(player) > 0 || self.bets.iter().any(|b| b.player == *player)
    }

    /// Adds `amount` chips to `rail[player]` (0 is a no-op, so no zero rails
    /// are stored). Only called for players who have a bet, so the player
    /// bound holds (see the module docs). The total fits because it is part of
    /// the escrow.
    pub(super) fn credit(&mut self, player: PublicKey, amount: u64) {
        if amount == 0 {
            return;
        }
        match self.rails.binary_search_by(|(p, _)| p.cmp(&player)) {
            Ok(i) => {
                if let Some((_, r)) = self.rails.get_mut(i) {
                    *r = r.saturating_add(amount);
                }
            }
            Err(i) => self.rails.insert(i, (player, amount)),
        }
    }

    /// Whether craps lets `player` put chips on `kind` right now (phase and
    /// flat-bet rules only; amounts are checked by [`Table::place`]).
    fn check_placeable(&self, player: &PublicKey, kind: BetKind) -> Result<(), GameError> {
        match kind {
            BetKind::Pass | BetKind::DontPass if self.point().is_some() => {
                Err(GameError::NotOnComeOut)
            }
            BetKind::Come | BetKind::DontCome if self.point().is_none() => {
                Err(GameError::NeedsPoint)
            }
            BetKind::ComePoint { .. } | BetKind::DontComePoint { .. } => {
                Err(GameError::CannotPlaceDirectly)
            }
            BetKind::PassOdds | BetKind::DontPassOdds if self.point().is_none() => {
                Err(GameError::NeedsPoint)
            }
            _ => match kind.flat() {
                Some(flat) if self.stake(player, flat) == 0 => Err(GameError::NoFlatBet),
                _ => Ok(()),
            },
        }
    }

    /// Adds `amount` to the player's `kind` spot.
    ///
    /// Checks, in this order (the first failure is returned): table open,
    /// `amount >= 1`, valid number, the bet is allowed in this phase (and its
    /// flat bet exists for odds), spot and player limits, the resulting stake
    /// within `[min_bet, max_bet]` (odds: at most the 3-4-5x / 6x multiple of
    /// the flat bet, no minimum), no chip overflow, and the free bankroll
    /// covering the added worst case. On `Ok` the caller debits `amount` from
    /// the player's balance (having checked it before calling); on `Err`
    /// nothing changed.
    pub fn place(
        &mut self,
        player: PublicKey,
        kind: BetKind,
        amount: u64,
    ) -> Result<(), GameError> {
        if self.closed {
            return Err(GameError::TableClosed);
        }
        if amount == 0 {
            return Err(GameError::ZeroAmount);
        }
        if !kind.is_valid() {
            return Err(GameError::InvalidNumber);
        }
        self.check_placeable(&player, kind)?;
        let slot = self.find(&player, kind);
        let old = match slot {
            Ok(i) => self.bets.get(i).map_or(0, |b| b.stake),
            Err(_) => {
                if self.bets.len() >= MAX_BETS_PER_TABLE {
                    return Err(GameError::TooManyBets);
                }
                if !self.is_seated(&player) && self.player_count() >= MAX_RAILS_PER_TABLE {
                    return Err(GameError::TooManyPlayers);
                }
                0
            }
        };
        let new = old.checked_add(amount).ok_or(GameError::Overflow)?;
        match kind.flat() {
            Some(flat) => {
                let max = odds_limit(kind, self.stake(&player, flat), self.point());
                if new > max {
                    return Err(GameError::OddsLimit { max });
                }
            }
            None => {
                if new < self.params.min_bet {
                    return Err(GameError::BelowMinimum {
                        min: self.params.min_bet,
                    });
                }
                if new > self.params.max_bet {
                    return Err(GameError::AboveMaximum {
                        max: self.params.max_bet,
                    });
                }
            }
        }
        if self.escrow_wide() + u128::from(amount) > u128::from(u64::MAX) {
            return Err(GameError::Overflow);
        }
        let needed = self
            .worst_case(kind, new)
            .saturating_sub(self.worst_case(kind, old));
        let free = self.free_bankroll();
        if needed > free {
            return Err(GameError::InsufficientBankroll { free, needed });
        }
        match slot {
            Ok(i) => {
                if let Some(b) = self.bets.get_mut(i) {
                    b.stake = new;
                }
            }
            Err(i) => self.bets.insert(
                i,
                BetView {
                    player,
                    kind,
                    stake: new,
                },
            ),
        }
        Ok(())
    }

    /// Takes the whole spot down, if craps allows it, and returns its stake
    /// (the caller credits it to the player's balance). Allowed on a closed
    /// table.
    ///
    /// Refused: Pass once a point is set and every ComePoint (contract bets:
    /// the odds have turned in the player's favour); a flat bet with odds
    /// behind it (`OddsBehind`: take the odds down first, so one action never
    /// silently moves two spots). Everything else may come down at any time:
    /// Come/Don't Come and one-roll bets are by construction not yet rolled.
    pub fn remove(&mut self, player: PublicKey, kind: BetKind) -> Result<u64, GameError> {
        if !kind.is_valid() {
            return Err(GameError::InvalidNumber);
        }
        let i = self.find(&player, kind).map_err(|_| GameError::NoSuchBet)?;
        match kind {
            BetKind::Pass if self.point().is_some() => return Err(GameError::ContractBet),
            BetKind::ComePoint { .. } => return Err(GameError::ContractBet),
            _ => {}
        }
        if let Some(odds) = kind.odds() {
            if self.stake(&player, odds) > 0 {
                return Err(GameError::OddsBehind);
            }
        }
        // Removing a stake lowers `reserved`, so the bankroll invariant holds.
        Ok(self.bets.remove(i).stake)
    }

    /// Removes and returns the player's rail.
    pub fn withdraw(&mut self, player: PublicKey) -> Result<u64, GameError> {
        match self.rails.binary_search_by(|(p, _)| p.cmp(&player)) {
            Ok(i) => Ok(self.rails.remove(i).1),
            Err(_) => Err(GameError::NothingToWithdraw),
        }
    }

    /// House only: closes the table to new bets and releases the free
    /// bankroll (`bankroll - reserved`, possibly 0), which it returns for the
    /// caller to credit to the house. Bets already up keep playing; call again
    /// after they resolve to release the rest.
    pub fn close(&mut self, caller: PublicKey) -> Result<u64, GameError> {
        if caller != self.house {
            return Err(GameError::NotHouse);
        }
        self.closed = true;
        let released = self.free_bankroll();
        self.bankroll = self.bankroll.saturating_sub(released); // released <= bankroll
        Ok(released)
    }
}
