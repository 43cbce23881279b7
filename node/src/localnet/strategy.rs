//! What a simulated localnet player does next: a pure function of what it
//! can see (its table's phase and limits, its own spots and rail, whether
//! betting is open) and a seeded RNG, so the choices are unit-tested
//! without a cluster.
//!
//! The mix follows how people play craps: mostly line bets (pass, or don't
//! pass for the "wrong way" players) on the come-out, odds behind them once a
//! point is on, come/don't come bets with odds on their numbers, and a
//! sprinkle of field, place 6/8, hardways and one-roll props; now and then a
//! withdrawal of the rail or a place bet taken down. Amounts are multiples
//! of each payout's denominator where that matters, so payouts are exact.
//!
//! What the player sees may be a moment old (its own bets still in flight,
//! a roll just applied), so some choices are refused by the chain
//! (`no_flat_bet`, `not_on_come_out`, `betting_closed`, ...): that is normal
//! play, and the localnet counts those rejections by reason.

use super::stats::SplitMix64;
use crate::app::craps::{odds_limit, BetKind, Phase, HARD_NUMBERS};

/// Distinct spots one player keeps at most. 16 players a table times this
/// stays below the table's 256-spot limit.
pub const MAX_SPOTS_PER_PLAYER: usize = 12;
/// A rail this large is worth a withdrawal (chips).
pub const WITHDRAW_MIN_CHIPS: u64 = 50;
/// Most odds put behind one flat bet in one go, as a multiple of the flat
/// stake (the table allows 3-4-5x, 6x lay; players rarely max out at once).
const ODDS_STEP_MULTIPLE: u64 = 2;

/// How a player bets: with the shooter (pass, come) or against (don't).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Right,
    Wrong,
}

impl Style {
    /// One player in four bets the wrong way.
    pub fn of_player(p: usize) -> Style {
        if p % 4 == 3 {
            Style::Wrong
        } else {
            Style::Right
        }
    }
}

/// What the player can see when it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub phase: Phase,
    pub min_bet: u64,
    pub max_bet: u64,
    /// The table is closed to new bets.
    pub closed: bool,
    /// The chain takes bets now (the roll clock is not waiting for dice).
    pub betting_open: bool,
    /// The player's spots and stakes.
    pub spots: Vec<(BetKind, u64)>,
    /// Settled chips waiting on the player's rail.
    pub rail: u64,
}

impl Seat {
    fn stake(&self, kind: BetKind) -> u64 {
        self.spots
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, s)| *s)
    }

    fn has(&self, kind: BetKind) -> bool {
        self.stake(kind) > 0
    }
}

/// The player's next move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Bet {
        kind: BetKind,
        amount: u64,
    },
    Remove {
        kind: BetKind,
    },
    Withdraw,
    /// Nothing at the table now (betting closed, nothing on the rail): the
    /// caller sends a small transfer instead, so the offered load stays on
    /// schedule.
    Transfer,
}

/// Picks the next move. `retry` is a bet the chain refused with
/// `betting_closed`: it is sent again first once betting is open.
pub fn choose(
    seat: &Seat,
    style: Style,
    retry: Option<(BetKind, u64)>,
    rng: &mut SplitMix64,
) -> Move {
    if !seat.betting_open || seat.closed {
        if seat.rail >= WITHDRAW_MIN_CHIPS {
            return Move::Withdraw;
        }
        return Move::Transfer;
    }
    if let Some((kind, amount)) = retry {
        return Move::Bet { kind, amount };
    }
    let options = candidates(seat, style, rng);
    let total: u64 = options.iter().map(|(w, _)| *w).sum();
    if total == 0 {
        return Move::Transfer;
    }
    let mut pick = rng.below(total);
    for (w, m) in &options {
        if pick < *w {
            return *m;
        }
        pick -= *w;
    }
    Move::Transfer
}

/// Weighted moves that make sense at this seat.
fn candidates(seat: &Seat, style: Style, rng: &mut SplitMix64) -> Vec<(u64, Move)> {
    let mut out: Vec<(u64, Move)> = Vec::new();
    let full = seat.spots.len() >= MAX_SPOTS_PER_PLAYER;
    // A flat or one-roll spot: the new total must stay within the limits,
    // and a player at its spot limit only adds to spots it has.
    let flat = |out: &mut Vec<(u64, Move)>, weight: u64, kind: BetKind, amount: u64| {
        let amount = amount.max(seat.min_bet);
        let total = seat.stake(kind).saturating_add(amount);
        if total > seat.max_bet || (full && !seat.has(kind)) {
            return;
        }
        out.push((weight, Move::Bet { kind, amount }));
    };
    let line = 10 * (1 + rng.below(5));
    match seat.phase.point() {
        None => match style {
            Style::Right if !seat.has(BetKind::Pass) => flat(&mut out, 40, BetKind::Pass, line),
            Style::Wrong if !seat.has(BetKind::DontPass) => {
                flat(&mut out, 40, BetKind::DontPass, line)
            }
            _ => {}
        },
        Some(point) => {
            let (flat_kind, come) = match style {
                Style::Right => (BetKind::Pass, BetKind::Come),
                Style::Wrong => (BetKind::DontPass, BetKind::DontCome),
            };
            if let Some(m) = odds_move(seat, flat_kind, Some(point), rng) {
                out.push((30, m));
            }
            flat(&mut out, 15, come, line);
            // Odds behind come bets that travelled to a number.
            for (kind, _) in &seat.spots {
                let travelled = matches!(
                    (style, kind),
                    (Style::Right, BetKind::ComePoint { .. })
                        | (Style::Wrong, BetKind::DontComePoint { .. })
                );
                if travelled {
                    if let Some(m) = odds_move(seat, *kind, None, rng) {
                        out.push((10, m));
                    }
                }
            }
        }
    }
    flat(&mut out, 10, BetKind::Field, 5 * (1 + rng.below(5)));
    let six_eight = if rng.below(2) == 0 { 6 } else { 8 };
    flat(
        &mut out,
        8,
        BetKind::Place { number: six_eight },
        6 * (1 + rng.below(5)),
    );
    let hard = HARD_NUMBERS
        .get(usize::try_from(rng.below(4)).unwrap_or(0))
        .copied()
        .unwrap_or(8);
    flat(
        &mut out,
        4,
        BetKind::Hard { number: hard },
        1 + rng.below(10),
    );
    flat(&mut out, 2, BetKind::AnySeven, 1 + rng.below(5));
    flat(&mut out, 3, BetKind::AnyCraps, 1 + rng.below(5));
    flat(&mut out, 3, BetKind::Yo, 1 + rng.below(5));
    if seat.rail >= WITHDRAW_MIN_CHIPS {
        out.push((5, Move::Withdraw));
    }
    // Now and then a place bet comes down (always allowed).
    if let Some((kind, _)) = seat
        .spots
        .iter()
        .find(|(k, _)| matches!(k, BetKind::Place { .. }))
    {
        out.push((1, Move::Remove { kind: *kind }));
    }
    out
}

/// Odds behind `flat_kind` (Pass/DontPass with the table's `point`, or a
/// come point), if the flat bet is there and the limit leaves room. The
/// amount is a multiple of the payout's denominator.
fn odds_move(
    seat: &Seat,
    flat_kind: BetKind,
    point: Option<u8>,
    rng: &mut SplitMix64,
) -> Option<Move> {
    let odds = flat_kind.odds()?;
    let flat_stake = seat.stake(flat_kind);
    if flat_stake == 0 {
        return None;
    }
    let number = point.or(flat_kind.number())?;
    let room = odds_limit(odds, flat_stake, Some(number)).saturating_sub(seat.stake(odds));
    let want = flat_stake
        .saturating_mul(1 + rng.below(ODDS_STEP_MULTIPLE))
        .min(room);
    let step = odds_step(odds, number);
    let amount = want - want % step;
    if amount == 0 || (seat.spots.len() >= MAX_SPOTS_PER_PLAYER && !seat.has(odds)) {
        return None;
    }
    Some(Move::Bet { kind: odds, amount })
}

/// The denominator of the odds payout on `number`: stakes that are multiples
/// of it are paid without breakage.
fn odds_step(odds: BetKind, number: u8) -> u64 {
    let lay = odds.is_lay();
    match (number, lay) {
        (4 | 10, false) => 1,
        (5 | 9, false) => 2,
        (6 | 8, false) => 5,
        (4 | 10, true) => 2,
        (5 | 9, true) => 3,
        (6 | 8, true) => 6,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(phase: Phase, spots: Vec<(BetKind, u64)>) -> Seat {
        Seat {
            phase,
            min_bet: 1,
            max_bet: 10_000,
            closed: false,
            betting_open: true,
            spots,
            rail: 0,
        }
    }

    fn moves(seat: &Seat, style: Style, n: usize) -> Vec<Move> {
        let mut rng = SplitMix64::new(9);
        (0..n)
            .map(|_| choose(seat, style, None, &mut rng))
            .collect()
    }

    fn bets(ms: &[Move]) -> Vec<(BetKind, u64)> {
        ms.iter()
            .filter_map(|m| match m {
                Move::Bet { kind, amount } => Some((*kind, *amount)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn closed_betting_withdraws_or_transfers() {
        let mut s = seat(Phase::ComeOut, vec![]);
        s.betting_open = false;
        let mut rng = SplitMix64::new(1);
        assert_eq!(choose(&s, Style::Right, None, &mut rng), Move::Transfer);
        s.rail = WITHDRAW_MIN_CHIPS;
        assert_eq!(choose(&s, Style::Right, None, &mut rng), Move::Withdraw);
        // A retry waits for betting to open, then goes first.
        let retry = Some((BetKind::Field, 5));
        assert_eq!(choose(&s, Style::Right, retry, &mut rng), Move::Withdraw);
        s.betting_open = true;
        assert_eq!(
            choose(&s, Style::Right, retry, &mut rng),
            Move::Bet {
                kind: BetKind::Field,
                amount: 5
            }
        );
    }

    #[test]
    fn come_out_mix_is_mostly_line_bets_and_never_needs_a_point() {
        let right = bets(&moves(&seat(Phase::ComeOut, vec![]), Style::Right, 2_000));
        let pass = right.iter().filter(|(k, _)| *k == BetKind::Pass).count();
        assert!(pass > 700, "{pass} pass bets of 2000");
        for (kind, amount) in &right {
            assert!(
                !matches!(
                    kind,
                    BetKind::Come
                        | BetKind::DontCome
                        | BetKind::DontPass
                        | BetKind::PassOdds
                        | BetKind::ComeOdds { .. }
                ),
                "{kind:?} on the come-out"
            );
            assert!(*amount >= 1);
            if let BetKind::Place { number } = kind {
                assert!(matches!(number, 6 | 8));
                assert_eq!(amount % 6, 0, "place bets pay 7:6");
            }
        }
        let kinds: std::collections::BTreeSet<&str> = right.iter().map(|(k, _)| k.name()).collect();
        for k in [
            "pass",
            "field",
            "place",
            "hard",
            "any_seven",
            "any_craps",
            "yo",
        ] {
            assert!(kinds.contains(k), "{k} never chosen: {kinds:?}");
        }
        let wrong = bets(&moves(&seat(Phase::ComeOut, vec![]), Style::Wrong, 500));
        assert!(wrong.iter().any(|(k, _)| *k == BetKind::DontPass));
        assert!(!wrong.iter().any(|(k, _)| *k == BetKind::Pass));
    }

    #[test]
    fn with_a_point_odds_go_behind_flat_bets_within_the_limit() {
        let s = seat(
            Phase::Point(6),
            vec![(BetKind::Pass, 10), (BetKind::ComePoint { point: 9 }, 20)],
        );
        let b = bets(&moves(&s, Style::Right, 2_000));
        let pass_odds: Vec<u64> = b
            .iter()
            .filter(|(k, _)| *k == BetKind::PassOdds)
            .map(|(_, a)| *a)
            .collect();
        assert!(!pass_odds.is_empty());
        for a in &pass_odds {
            assert!(*a <= 50 && a % 5 == 0, "pass odds {a} on 6");
        }
        let come_odds: Vec<u64> = b
            .iter()
            .filter(|(k, _)| *k == BetKind::ComeOdds { point: 9 })
            .map(|(_, a)| *a)
            .collect();
        assert!(!come_odds.is_empty());
        for a in &come_odds {
            assert!(*a <= 80 && a % 2 == 0, "come odds {a} on 9");
        }
        assert!(b.iter().any(|(k, _)| *k == BetKind::Come));
        assert!(!b.iter().any(|(k, _)| *k == BetKind::Pass));
        // Odds at the limit: no more odds.
        let maxed = seat(
            Phase::Point(4),
            vec![(BetKind::Pass, 10), (BetKind::PassOdds, 30)],
        );
        assert!(!bets(&moves(&maxed, Style::Right, 500))
            .iter()
            .any(|(k, _)| *k == BetKind::PassOdds));
        // Lay odds behind don't pass: multiples of 6 on 8, at most 6x.
        let wrong = seat(Phase::Point(8), vec![(BetKind::DontPass, 10)]);
        let lay: Vec<u64> = bets(&moves(&wrong, Style::Wrong, 1_000))
            .iter()
            .filter(|(k, _)| *k == BetKind::DontPassOdds)
            .map(|(_, a)| *a)
            .collect();
        assert!(!lay.is_empty());
        assert!(lay.iter().all(|a| *a <= 60 && a % 6 == 0), "{lay:?}");
    }

    #[test]
    fn limits_and_spot_cap_are_respected() {
        // Max bet 20: no spot may go above it.
        let mut s = seat(Phase::ComeOut, vec![(BetKind::Field, 18)]);
        s.max_bet = 20;
        for (kind, amount) in bets(&moves(&s, Style::Right, 1_000)) {
            let total = s.stake(kind) + amount;
            assert!(total <= 20, "{kind:?} to {total}");
        }
        // At the spot cap only existing spots grow.
        let spots: Vec<(BetKind, u64)> = [4, 5, 6, 8, 9, 10]
            .iter()
            .flat_map(|&p| {
                [
                    (BetKind::ComePoint { point: p }, 10),
                    (BetKind::ComeOdds { point: p }, 10),
                ]
            })
            .collect();
        assert_eq!(spots.len(), MAX_SPOTS_PER_PLAYER);
        let full = seat(Phase::Point(5), spots.clone());
        for (kind, _) in bets(&moves(&full, Style::Right, 1_000)) {
            assert!(spots.iter().any(|(k, _)| *k == kind), "new spot {kind:?}");
        }
        // A closed table: nothing but the rail.
        let mut closed = seat(Phase::ComeOut, vec![]);
        closed.closed = true;
        closed.rail = 100;
        assert!(moves(&closed, Style::Right, 50)
            .iter()
            .all(|m| *m == Move::Withdraw));
    }

    #[test]
    fn withdraws_and_removals_happen_now_and_then() {
        let mut s = seat(
            Phase::Point(5),
            vec![(BetKind::Pass, 10), (BetKind::Place { number: 6 }, 12)],
        );
        s.rail = 500;
        let ms = moves(&s, Style::Right, 3_000);
        let withdraws = ms.iter().filter(|m| **m == Move::Withdraw).count();
        let removes = ms
            .iter()
            .filter(|m| matches!(m, Move::Remove { .. }))
            .count();
        assert!(withdraws > 30, "{withdraws}");
        assert!(removes > 0 && removes < withdraws, "{removes}");
    }
}
