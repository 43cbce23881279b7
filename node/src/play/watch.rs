//! Following a table's rolls, and saying what they did in words.
//!
//! [`RollFeed`] pages through `GET /api/v1/tables/{id}/rolls?since=` and
//! hands out each roll exactly once, in order (used by `bitcraps play watch`
//! and by the localnet's table observer). The `describe_*` functions turn
//! rolls and settlements into the lines `watch` prints.

use super::bets::bet_name;
use crate::api::{Phase, TableRoll};
use crate::app::craps::{BetResult, Settlement};
use crate::localnet::client::{ClientError, NodeClient};

/// Rolls asked for per page (the node caps pages at 100).
pub const ROLLS_PAGE: usize = 100;
/// Pages one [`RollFeed::poll`] reads at most, so a feed far behind catches
/// up over several polls instead of holding one call for long.
pub const MAX_PAGES_PER_POLL: usize = 10;

/// Hands out a table's rolls in order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollFeed {
    table: u64,
    /// Roll number (`seq`) the next roll will have.
    next_seq: u64,
}

impl RollFeed {
    /// A feed of `table` that starts after its first `rolls_so_far` rolls
    /// (0: from the first roll).
    pub fn new(table: u64, rolls_so_far: u64) -> RollFeed {
        RollFeed {
            table,
            next_seq: rolls_so_far.saturating_add(1),
        }
    }

    pub fn table(&self) -> u64 {
        self.table
    }

    /// The `seq` of the next roll this feed will hand out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Rolls committed since the last call (up to [`MAX_PAGES_PER_POLL`]
    /// pages). `None` if the node has no such table.
    pub async fn poll(
        &mut self,
        client: &NodeClient,
    ) -> Result<Option<Vec<TableRoll>>, ClientError> {
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES_PER_POLL {
            let Some(page) = client.rolls(self.table, self.next_seq, ROLLS_PAGE).await? else {
                return Ok(None);
            };
            let fetched = page.len();
            if !self.accept(page, &mut out) || fetched < ROLLS_PAGE {
                break;
            }
        }
        Ok(Some(out))
    }

    /// Appends the contiguous run of `page` that starts at `next_seq` to
    /// `out`. Returns false if the page did not continue the feed (a node
    /// behind another one, or an unexpected answer): the rest is asked for
    /// again next time.
    fn accept(&mut self, page: Vec<TableRoll>, out: &mut Vec<TableRoll>) -> bool {
        for roll in page {
            if roll.table != self.table || roll.seq != self.next_seq {
                return false;
            }
            self.next_seq = self.next_seq.saturating_add(1);
            out.push(roll);
        }
        true
    }
}

/// `come-out` or `point 6`.
pub fn phase_text(phase: &Phase) -> String {
    match phase.point() {
        None => "come-out".into(),
        Some(p) => format!("point {p}"),
    }
}

/// What the roll did to the table, e.g. `seven out` or `point is 6`.
pub fn roll_effect(r: &TableRoll) -> String {
    let total = r.outcome.roll.total();
    match (
        r.outcome.phase_before.point(),
        r.outcome.phase_after.point(),
    ) {
        (None, Some(p)) => format!("point is {p}"),
        (Some(_), None) if total == 7 => "seven out".into(),
        (Some(p), None) => format!("point {p} made"),
        (None, None) if total == 7 || total == 11 => "natural".into(),
        (None, None) => "craps".into(),
        (Some(p), Some(_)) => format!("point stays {p}"),
    }
}

/// One line per roll: `table 1 roll #5: 3+4 = 7, seven out (point 6 -> come-out)`.
pub fn describe_roll(r: &TableRoll) -> String {
    let roll = r.outcome.roll;
    format!(
        "table {} roll #{}: {}+{} = {}, {} ({} -> {})",
        r.table,
        r.seq,
        roll.d1,
        roll.d2,
        roll.total(),
        roll_effect(r),
        phase_text(&r.outcome.phase_before),
        phase_text(&r.outcome.phase_after)
    )
}

/// `won`, `lost`, `push`, `moved` or `returned`.
pub fn result_name(result: &BetResult) -> &'static str {
    match result {
        BetResult::Won { .. } => "won",
        BetResult::Lost => "lost",
        BetResult::Push => "push",
        BetResult::Moved { .. } => "moved",
        BetResult::Returned => "returned",
    }
}

/// Whether a settlement decided the bet (won, lost or pushed), as opposed to
/// moving a come bet or handing a stake back.
pub fn is_decision(result: &BetResult) -> bool {
    matches!(
        result,
        BetResult::Won { .. } | BetResult::Lost | BetResult::Push
    )
}

/// One settlement in words, from the player's side.
pub fn describe_settlement(s: &Settlement) -> String {
    let bet = bet_name(&s.kind);
    match s.result {
        BetResult::Won { winnings } if s.kind.stays_up() => format!(
            "won {winnings} on {bet} (stake {} stays up; {} to your rail)",
            s.stake, s.credited
        ),
        BetResult::Won { winnings } => format!(
            "won {winnings} on {bet} (stake {}; {} to your rail)",
            s.stake, s.credited
        ),
        BetResult::Lost => format!("lost {} on {bet}", s.stake),
        BetResult::Push => format!("push on {bet} (stake {} stays)", s.stake),
        BetResult::Moved { to } => format!("{bet} moved to {} (stake {})", bet_name(&to), s.stake),
        BetResult::Returned => format!("{bet} returned: {} to your rail", s.credited),
    }
}

/// The settlements of `player` (hex key) in a roll.
pub fn settlements_of<'a>(r: &'a TableRoll, player_hex: &str) -> Vec<&'a Settlement> {
    r.outcome
        .settlements
        .iter()
        .filter(|s| s.player.to_hex() == player_hex)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::craps::{BetKind, Roll, RollOutcome};
    use bitcraps_crypto::Keypair;

    fn roll(seq: u64, d1: u8, d2: u8, before: Phase, after: Phase) -> TableRoll {
        TableRoll {
            table: 3,
            round: 10 + seq,
            height: 20 + seq,
            seq,
            outcome: RollOutcome {
                roll: Roll { d1, d2 },
                phase_before: before,
                phase_after: after,
                settlements: Vec::new(),
            },
        }
    }

    #[test]
    fn roll_lines() {
        let r = roll(5, 3, 4, Phase::Point(6), Phase::ComeOut);
        assert_eq!(
            describe_roll(&r),
            "table 3 roll #5: 3+4 = 7, seven out (point 6 -> come-out)"
        );
        assert_eq!(
            roll_effect(&roll(1, 2, 2, Phase::ComeOut, Phase::Point(4))),
            "point is 4"
        );
        assert_eq!(
            roll_effect(&roll(1, 3, 3, Phase::Point(6), Phase::ComeOut)),
            "point 6 made"
        );
        assert_eq!(
            roll_effect(&roll(1, 5, 6, Phase::ComeOut, Phase::ComeOut)),
            "natural"
        );
        assert_eq!(
            roll_effect(&roll(1, 1, 1, Phase::ComeOut, Phase::ComeOut)),
            "craps"
        );
        assert_eq!(
            roll_effect(&roll(1, 1, 2, Phase::Point(8), Phase::Point(8))),
            "point stays 8"
        );
    }

    #[test]
    fn settlement_lines() {
        let me = Keypair::from_seed(&[7; 32]).public();
        let s = |kind, stake, result, credited| Settlement {
            player: me,
            kind,
            stake,
            result,
            credited,
        };
        assert_eq!(
            describe_settlement(&s(BetKind::Pass, 10, BetResult::Won { winnings: 10 }, 20)),
            "won 10 on pass (stake 10; 20 to your rail)"
        );
        assert_eq!(
            describe_settlement(&s(
                BetKind::Place { number: 6 },
                12,
                BetResult::Won { winnings: 14 },
                14
            )),
            "won 14 on place:6 (stake 12 stays up; 14 to your rail)"
        );
        assert_eq!(
            describe_settlement(&s(BetKind::Field, 5, BetResult::Lost, 0)),
            "lost 5 on field"
        );
        assert_eq!(
            describe_settlement(&s(BetKind::DontPass, 5, BetResult::Push, 0)),
            "push on dont-pass (stake 5 stays)"
        );
        assert_eq!(
            describe_settlement(&s(
                BetKind::Come,
                5,
                BetResult::Moved {
                    to: BetKind::ComePoint { point: 9 }
                },
                0
            )),
            "come moved to come-point:9 (stake 5)"
        );
        assert_eq!(
            describe_settlement(&s(
                BetKind::ComeOdds { point: 9 },
                8,
                BetResult::Returned,
                8
            )),
            "come-odds:9 returned: 8 to your rail"
        );
        assert!(is_decision(&BetResult::Push));
        assert!(!is_decision(&BetResult::Returned));
        assert_eq!(result_name(&BetResult::Lost), "lost");

        let mut r = roll(1, 1, 1, Phase::ComeOut, Phase::ComeOut);
        let other = Keypair::from_seed(&[8; 32]).public();
        r.outcome.settlements = vec![
            s(BetKind::Field, 5, BetResult::Won { winnings: 10 }, 15),
            Settlement {
                player: other,
                ..s(BetKind::Pass, 5, BetResult::Lost, 0)
            },
        ];
        assert_eq!(settlements_of(&r, &me.to_hex()).len(), 1);
        assert_eq!(settlements_of(&r, &other.to_hex()).len(), 1);
    }

    #[test]
    fn feed_hands_out_each_roll_once_in_order() {
        let mut feed = RollFeed::new(3, 2);
        assert_eq!(feed.next_seq(), 3);
        let mut out = Vec::new();
        let p = |s| roll(s, 1, 2, Phase::ComeOut, Phase::ComeOut);
        assert!(feed.accept(vec![p(3), p(4)], &mut out));
        assert_eq!(out.len(), 2);
        assert_eq!(feed.next_seq(), 5);
        // A stale page (a node behind) is ignored from the first mismatch.
        assert!(!feed.accept(vec![p(4), p(5)], &mut out));
        assert_eq!(out.len(), 2);
        assert!(!feed.accept(vec![p(5), p(7)], &mut out));
        assert_eq!(out.len(), 3);
        assert_eq!(feed.next_seq(), 6);
        // Another table's roll is not ours.
        let mut foreign = p(6);
        foreign.table = 4;
        assert!(!feed.accept(vec![foreign], &mut out));
        assert_eq!(feed.next_seq(), 6);
    }
}
