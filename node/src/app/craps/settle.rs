//! Applying a roll to a table: settle every spot, move come bets, advance the
//! phase, and keep the house solvent.
//!
//! # Why the bankroll always covers the winners
//!
//! Before the roll `bankroll >= reserved`, where `reserved` sums every spot's
//! worst case ([`super::worst_case_payout`]). A single roll pays each winning
//! spot at most its worst case, so the sum of all winnings of the roll is at
//! most `reserved <= bankroll`: subtracting winnings can never underflow,
//! whatever order the spots are settled in.
//!
//! # Why the invariant holds again after the roll
//!
//! Compare the slack `bankroll - reserved` before and after. A losing spot
//! adds its stake to the bankroll and drops its reservation: slack grows. A
//! winner that comes down pays `w <= worst case` and drops its reservation:
//! slack changes by `wc - w >= 0`. Pushes and moves keep the reservation
//! (a Come in the box and a come point both reserve 1x), returns drop it:
//! slack does not shrink. Only a winning place/hardway bet that stays up
//! shrinks the slack, by exactly its winnings, which equal its worst case
//! (those bets win at one ratio only). So if the slack is negative after
//! settling, taking down *all* of this roll's staying winners would add back
//! exactly what they took, leaving slack >= the slack before the roll >= 0.
//! The loop below takes them down one at a time and stops as soon as the
//! slack is non-negative; it visits each staying winner at most once, so it
//! terminates, and at the latest after the last one the invariant is true.
//!
//! Order of take-downs: largest worst case first (fewest bets disturbed),
//! ties by (player, kind), so every validator takes down the same bets.

use super::dice::Phase;
use super::rules::{decide, Decision};
use super::table::{BetView, Table};
use super::{BetKind, Roll};
use bitcraps_crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;

/// What happened to one spot in a roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetResult {
    /// Won `winnings` (the bet comes down, or stays up for place/hardways).
    Won { winnings: u64 },
    /// The stake went to the house.
    Lost,
    /// Don't Pass / Don't Come on 12: nothing paid, the bet stays.
    Push,
    /// A Come / Don't Come bet travelled to its come point.
    Moved { to: BetKind },
    /// The stake went back to the rail without action: come odds on the
    /// come-out, or a staying bet taken down to protect the bankroll.
    Returned,
}

/// One spot the roll affected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub player: PublicKey,
    pub kind: BetKind,
    /// The spot's stake when it was settled.
    pub stake: u64,
    pub result: BetResult,
    /// Chips credited to the rail by this settlement: stake + winnings for a
    /// winner that comes down, the winnings for one that stays up, the stake
    /// for a return, 0 otherwise.
    pub credited: u64,
}

/// The result of [`Table::roll`]. `settlements` lists only spots the roll
/// affected, in (player, kind) order, followed by any bankroll-protection
/// take-downs (a staying winner taken down appears twice: `Won`, then
/// `Returned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollOutcome {
    pub roll: Roll,
    pub phase_before: Phase,
    pub phase_after: Phase,
    pub settlements: Vec<Settlement>,
}

impl Table {
    /// Applies one roll: settles every spot, moves come bets, advances the
    /// phase, increments `rolls` and sets `last_roll`. The phase advances on
    /// every roll, bets or not.
    ///
    /// An invalid `Roll` (dice outside 1..=6, only constructible by hand since
    /// the fields are public) changes nothing and yields an empty outcome; use
    /// [`Table::try_roll`] to get an error instead.
    pub fn roll(&mut self, roll: Roll) -> RollOutcome {
        match self.try_roll(roll) {
            Ok(outcome) => outcome,
            Err(_) => RollOutcome {
                roll,
                phase_before: self.phase,
                phase_after: self.phase,
                settlements: Vec::new(),
            },
        }
    }

    /// [`Table::roll`], refusing an invalid roll with
    /// [`super::GameError::InvalidRoll`] (the table is unchanged).
    pub fn try_roll(&mut self, roll: Roll) -> Result<RollOutcome, super::GameError> {
        if !roll.is_valid() {
            return Err(super::GameError::InvalidRoll);
        }
        let phase_before = self.phase;
        let mut settlements = Vec::new();
        let mut kept: Vec<BetView> = Vec::with_capacity(self.bets.len());
        let mut moved: Vec<BetView> = Vec::new();
        // (worst case, player, kind) of place/hardway winners that stayed up.
        let mut stayed: Vec<(u64, PublicKey, BetKind)> = Vec::new();
        let point = phase_before.point();
        for bet in std::mem::take(&mut self.bets) {
            let (result, credited) = match decide(bet.kind, phase_before, roll) {
                Decision::NoAction => {
                    kept.push(bet);
                    continue;
                }
                Decision::Lose => {
                    // Fits: the bankroll and the stake are both in the escrow.
                    self.bankroll = self.bankroll.saturating_add(bet.stake);
                    (BetResult::Lost, 0)
                }
                Decision::Push => (BetResult::Push, 0),
                Decision::Win { ratio, stays } => {
                    let winnings = ratio.winnings(bet.stake);
                    // Never saturates: see "Why the bankroll always covers".
                    self.bankroll = self.bankroll.saturating_sub(winnings);
                    if stays {
                        stayed.push((
                            super::worst_case_payout(bet.kind, bet.stake, point),
                            bet.player,
                            bet.kind,
                        ));
                        (BetResult::Won { winnings }, winnings)
                    } else {
                        (
                            BetResult::Won { winnings },
                            bet.stake.saturating_add(winnings),
                        )
                    }
                }
                Decision::Move { to } => (BetResult::Moved { to }, 0),
                Decision::Return => (BetResult::Returned, bet.stake),
            };
            self.credit(bet.player, credited);
            settlements.push(Settlement {
                player: bet.player,
                kind: bet.kind,
                stake: bet.stake,
                result,
                credited,
            });
            match result {
                BetResult::Push => kept.push(bet),
                BetResult::Won { .. } if bet.kind.stays_up() => kept.push(bet),
                BetResult::Moved { to } => moved.push(BetView { kind: to, ..bet }),
                _ => {}
            }
        }
        self.bets = kept;
        for bet in moved {
            self.merge(bet);
        }
        self.phase = phase_before.after(roll.total());
        self.rolls = self.rolls.saturating_add(1);
        self.last_roll = Some(roll);
        self.protect_bankroll(stayed, &mut settlements);
        Ok(RollOutcome {
            roll,
            phase_before,
            phase_after: self.phase,
            settlements,
        })
    }

    /// Adds a travelled come bet to the player's spot of that kind, creating
    /// it if needed. Never exceeds the spot limit: the come bet's own spot was
    /// removed in the same roll. (In fact a come point never already exists
    /// here, because the number that moves a come bet also settles the old
    /// come point on that number; merging is kept for robustness.)
    fn merge(&mut self, bet: BetView) {
        match self.find(&bet.player, bet.kind) {
            Ok(i) => {
                if let Some(b) = self.bets.get_mut(i) {
                    b.stake = b.stake.saturating_add(bet.stake);
                }
            }
            Err(i) => self.bets.insert(i, bet),
        }
    }

    /// Takes staying winners down until `bankroll >= reserved` (see the
    /// module docs for why this always succeeds).
    fn protect_bankroll(
        &mut self,
        mut stayed: Vec<(u64, PublicKey, BetKind)>,
        settlements: &mut Vec<Settlement>,
    ) {
        let mut reserved = self.reserved();
        if self.bankroll >= reserved {
            return;
        }
        stayed.sort_by_key(|&(wc, player, kind)| (Reverse(wc), player, kind));
        for (_, player, kind) in stayed {
            if self.bankroll >= reserved {
                break;
            }
            let Ok(i) = self.find(&player, kind) else {
                continue;
            };
            let bet = self.bets.remove(i);
            reserved = reserved.saturating_sub(self.worst_case(bet.kind, bet.stake));
            self.credit(bet.player, bet.stake);
            settlements.push(Settlement {
                player: bet.player,
                kind: bet.kind,
                stake: bet.stake,
                result: BetResult::Returned,
                credited: bet.stake,
            });
        }
    }
}
