//! Facts about bet kinds that do not depend on the table: which numbers are
//! valid, which flat bet an odds bet sits behind, and a stable name for logs
//! and the API.

use super::dice::is_point_number;
use super::BetKind;

/// Hardway numbers: the only totals that can be rolled as a pair and are not
/// craps or 12.
pub const HARD_NUMBERS: [u8; 4] = [4, 6, 8, 10];

impl BetKind {
    /// The number the kind carries (come point, place or hardway number).
    pub fn number(&self) -> Option<u8> {
        match *self {
            BetKind::ComePoint { point }
            | BetKind::DontComePoint { point }
            | BetKind::ComeOdds { point }
            | BetKind::DontComeOdds { point } => Some(point),
            BetKind::Place { number } | BetKind::Hard { number } => Some(number),
            _ => None,
        }
    }

    /// Whether the carried number is allowed for this kind: a point number for
    /// come points, come odds and place bets; 4, 6, 8 or 10 for hardways.
    pub fn is_valid(&self) -> bool {
        match *self {
            BetKind::Hard { number } => HARD_NUMBERS.contains(&number),
            _ => self.number().is_none_or(is_point_number),
        }
    }

    /// Free (take or lay) odds.
    pub fn is_odds(&self) -> bool {
        matches!(
            self,
            BetKind::PassOdds
                | BetKind::DontPassOdds
                | BetKind::ComeOdds { .. }
                | BetKind::DontComeOdds { .. }
        )
    }

    /// Lay odds (behind a "don't" bet): they pay less than they risk.
    pub fn is_lay(&self) -> bool {
        matches!(self, BetKind::DontPassOdds | BetKind::DontComeOdds { .. })
    }

    /// For an odds bet, the flat bet it must sit behind.
    pub fn flat(&self) -> Option<BetKind> {
        match *self {
            BetKind::PassOdds => Some(BetKind::Pass),
            BetKind::DontPassOdds => Some(BetKind::DontPass),
            BetKind::ComeOdds { point } => Some(BetKind::ComePoint { point }),
            BetKind::DontComeOdds { point } => Some(BetKind::DontComePoint { point }),
            _ => None,
        }
    }

    /// For a flat bet that can carry odds, the odds bet behind it.
    pub fn odds(&self) -> Option<BetKind> {
        match *self {
            BetKind::Pass => Some(BetKind::PassOdds),
            BetKind::DontPass => Some(BetKind::DontPassOdds),
            BetKind::ComePoint { point } => Some(BetKind::ComeOdds { point }),
            BetKind::DontComePoint { point } => Some(BetKind::DontComeOdds { point }),
            _ => None,
        }
    }

    /// Place and hardway bets: a win pays the winnings and the bet stays up.
    pub fn stays_up(&self) -> bool {
        matches!(self, BetKind::Place { .. } | BetKind::Hard { .. })
    }

    /// Stable snake_case name (without the number), for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            BetKind::Pass => "pass",
            BetKind::DontPass => "dont_pass",
            BetKind::PassOdds => "pass_odds",
            BetKind::DontPassOdds => "dont_pass_odds",
            BetKind::Come => "come",
            BetKind::DontCome => "dont_come",
            BetKind::ComePoint { .. } => "come_point",
            BetKind::DontComePoint { .. } => "dont_come_point",
            BetKind::ComeOdds { .. } => "come_odds",
            BetKind::DontComeOdds { .. } => "dont_come_odds",
            BetKind::Field => "field",
            BetKind::Place { .. } => "place",
            BetKind::Hard { .. } => "hard",
            BetKind::AnySeven => "any_seven",
            BetKind::AnyCraps => "any_craps",
            BetKind::Yo => "yo",
        }
    }
}
