//! Integration tests of the craps rules engine through its public API: the
//! house edge of every bet measured over millions of rolls, the dice, the
//! worst-case figures and a whole game's chip accounting.
//!
//! # House-edge convention
//!
//! Edge = net chips lost by the bettor / chips staked, summed over bet
//! *resolutions*. A resolution is a settlement that ends a wager: `Won`
//! (counted as +winnings) or `Lost` (-stake). A bar-12 `Push` on Don't Pass /
//! Don't Come is counted as a resolution with result 0 ("per bet made"), which
//! matches the published 1.364 % (excluding pushes would give 1.403 %).
//! `Moved` (a come bet travelling) is not a resolution: the bet resolves later
//! from its come point. A place/hardway win that stays up is a resolution, and
//! the bet standing again counts as a new wager.

use bitcraps_crypto::{hash, Keypair, PublicKey};
use bitcraps_node::app::craps::{
    worst_case_payout, BetKind, BetResult, GameError, Phase, Roll, Table, TableParams,
};
use BetKind::*;

// ---------------------------------------------------------------- house edge

/// splitmix64: a small, well-mixed deterministic generator owned by the test,
/// so the dice do not depend on the code under test.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One fair die by rejection sampling over bytes.
    fn die(&mut self) -> u8 {
        loop {
            for b in self.next().to_le_bytes() {
                if b < 252 {
                    return b % 6 + 1;
                }
            }
        }
    }

    fn roll(&mut self) -> Roll {
        Roll::new(self.die(), self.die()).expect("fair dice are valid")
    }
}

/// Sums over resolutions of one bet type: `x` is the bettor's net result in
/// chips, `s` the stake.
#[derive(Default, Clone, Copy)]
struct Acc {
    n: u64,
    sx: i128,
    ss: i128,
    sxx: i128,
    sss: i128,
    sxs: i128,
}

impl Acc {
    fn add(&mut self, x: i128, s: i128) {
        self.n += 1;
        self.sx += x;
        self.ss += s;
        self.sxx += x * x;
        self.sss += s * s;
        self.sxs += x * s;
    }

    fn merge(&mut self, o: &Acc) {
        self.n += o.n;
        self.sx += o.sx;
        self.ss += o.ss;
        self.sxx += o.sxx;
        self.sss += o.sss;
        self.sxs += o.sxs;
    }

    /// Measured edge (fraction of the stake the house keeps).
    fn edge(&self) -> f64 {
        -(self.sx as f64) / (self.ss as f64)
    }

    /// 5 standard errors of the edge estimate `sum x / sum s` (a ratio
    /// estimator: its variance is the variance of the residual
    /// `x - m s` over n, divided by the mean stake squared), from the sample.
    fn tolerance(&self) -> f64 {
        let n = self.n as f64;
        let m = self.sx as f64 / self.ss as f64;
        let var = (self.sxx as f64 - 2.0 * m * self.sxs as f64 + m * m * self.sss as f64) / n;
        let mean_s = self.ss as f64 / n;
        5.0 * var.max(0.0).sqrt() / (mean_s * n.sqrt())
    }
}

/// The bet types measured, their known edge and the largest tolerance that
/// still makes the comparison meaningful.
const MEASURED: &[(&str, f64, f64)] = &[
    ("pass", 7.0 / 495.0, 0.005),
    ("dont_pass", 3.0 / 220.0, 0.005),
    ("come", 7.0 / 495.0, 0.005),
    ("dont_come", 3.0 / 220.0, 0.005),
    ("field", 1.0 / 36.0, 0.005),
    ("place_4", 1.0 / 15.0, 0.008),
    ("place_5", 1.0 / 25.0, 0.008),
    ("place_6", 1.0 / 66.0, 0.008),
    ("hard_4", 1.0 / 9.0, 0.015),
    ("hard_6", 1.0 / 11.0, 0.015),
    ("any_seven", 1.0 / 6.0, 0.005),
    ("any_craps", 1.0 / 9.0, 0.01),
    ("yo", 1.0 / 9.0, 0.012),
    ("pass_odds", 0.0, 0.008),
    ("lay_odds", 0.0, 0.008),
];

fn category(kind: BetKind) -> Option<usize> {
    let name = match kind {
        Pass => "pass",
        DontPass => "dont_pass",
        Come | ComePoint { .. } => "come",
        DontCome | DontComePoint { .. } => "dont_come",
        Field => "field",
        Place { number: 4 } => "place_4",
        Place { number: 5 } => "place_5",
        Place { number: 6 } => "place_6",
        Hard { number: 4 } => "hard_4",
        Hard { number: 6 } => "hard_6",
        AnySeven => "any_seven",
        AnyCraps => "any_craps",
        Yo => "yo",
        PassOdds => "pass_odds",
        DontPassOdds => "lay_odds",
        _ => return None,
    };
    MEASURED.iter().position(|(n, _, _)| *n == name)
}

/// Bets that are put back up whenever they are down. Stakes are multiples of
/// 30, so every ratio (x/5, x/6, 3/2, 2/3, ...) pays exactly, with no breakage
/// to bias the measurement.
const ALWAYS: [BetKind; 9] = [
    Field,
    AnySeven,
    AnyCraps,
    Yo,
    Place { number: 4 },
    Place { number: 5 },
    Place { number: 6 },
    Hard { number: 4 },
    Hard { number: 6 },
];
const FLAT: u64 = 30;

/// Plays `rolls` rolls on one table with one bettor keeping every measured
/// bet up, and returns the per-type sums.
fn play(seed: u64, rolls: u64) -> Vec<Acc> {
    let bettor = Keypair::from_seed(&[1; 32]).public();
    let house = Keypair::from_seed(&[2; 32]).public();
    let params = TableParams {
        min_bet: 1,
        max_bet: 1_000_000,
    };
    let mut t = Table::open(1, house, params, u64::MAX / 4).expect("open");
    let mut dice = SplitMix(seed);
    let mut acc = vec![Acc::default(); MEASURED.len()];
    let put = |t: &mut Table, kind: BetKind, amount: u64| {
        if t.stake(&bettor, kind) == 0 {
            t.place(bettor, kind, amount)
                .expect("the bettor's bets are legal");
        }
    };
    for _ in 0..rolls {
        match t.phase {
            Phase::ComeOut => {
                put(&mut t, Pass, FLAT);
                put(&mut t, DontPass, FLAT);
            }
            Phase::Point(p) => {
                // Full 3-4-5x take odds, 6x lay odds.
                let take = match p {
                    4 | 10 => 3,
                    5 | 9 => 4,
                    _ => 5,
                };
                put(&mut t, PassOdds, FLAT * take);
                put(&mut t, DontPassOdds, FLAT * 6);
                put(&mut t, Come, FLAT);
                put(&mut t, DontCome, FLAT);
            }
        }
        for kind in ALWAYS {
            put(&mut t, kind, FLAT);
        }
        let out = t.roll(dice.roll());
        for s in &out.settlements {
            let stake = i128::from(s.stake);
            let x = match s.result {
                BetResult::Won { winnings } => i128::from(winnings),
                BetResult::Lost => -stake,
                BetResult::Push => 0,
                BetResult::Moved { .. } => continue,
                BetResult::Returned => panic!("nothing is returned here: {s:?}"),
            };
            if let Some(i) = category(s.kind) {
                acc[i].add(x, stake);
            }
        }
    }
    // The bettor's rail only grows (a u64 holds it); the table must still be
    // consistent after millions of rolls.
    assert!(t.bankroll >= t.reserved());
    assert_eq!(Table::decode(&t.encode()).as_ref(), Ok(&t));
    acc
}

/// 2 x 3 M rolls on two threads (two tables with independent dice); about
/// 6 s on two idle cores in the default (opt-level 1) test profile.
#[test]
fn house_edge_matches_the_known_values() {
    const ROLLS_PER_THREAD: u64 = 3_000_000;
    let parts: Vec<Vec<Acc>> = std::thread::scope(|s| {
        let handles: Vec<_> = [0x1234_0001u64, 0x9876_0002]
            .into_iter()
            .map(|seed| s.spawn(move || play(seed, ROLLS_PER_THREAD)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulation thread"))
            .collect()
    });
    let mut total = vec![Acc::default(); MEASURED.len()];
    for part in &parts {
        for (t, a) in total.iter_mut().zip(part) {
            t.merge(a);
        }
    }
    let mut report = String::new();
    let mut failures = Vec::new();
    for ((name, known, max_tol), a) in MEASURED.iter().zip(&total) {
        let (edge, tol) = (a.edge(), a.tolerance());
        report.push_str(&format!(
            "{name:>10}: {:>8.4} % (known {:>7.4} %, tol {:.4} pp, {} resolutions)\n",
            edge * 100.0,
            known * 100.0,
            tol * 100.0,
            a.n
        ));
        if (edge - known).abs() >= tol {
            failures.push(format!(
                "{name}: measured {edge} vs known {known} (tol {tol})"
            ));
        }
        if tol >= *max_tol {
            failures.push(format!(
                "{name}: tolerance {tol} too loose (limit {max_tol})"
            ));
        }
    }
    println!("{report}");
    assert!(failures.is_empty(), "{failures:#?}\n{report}");
}

// ---------------------------------------------------------------------- dice

#[test]
fn dice_from_seed_follow_the_documented_algorithm() {
    assert_eq!(Roll::from_seed(&[0; 32]), Roll { d1: 1, d2: 1 });
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&[252, 255, 10, 17]);
    assert_eq!(
        Roll::from_seed(&seed),
        Roll { d1: 5, d2: 6 },
        "skips 252, 255"
    );
    seed[..4].copy_from_slice(&[251, 253, 254, 6]);
    assert_eq!(Roll::from_seed(&seed), Roll { d1: 6, d2: 1 });
    // Exhausted seed: continue on its blake3 hash.
    let all_high = [255u8; 32];
    let next = hash(&all_high).0;
    let accepted: Vec<u8> = next
        .iter()
        .filter(|b| **b < 252)
        .map(|b| b % 6 + 1)
        .collect();
    assert_eq!(
        Roll::from_seed(&all_high),
        Roll {
            d1: accepted[0],
            d2: accepted[1]
        }
    );
    // One die left over when the seed runs out.
    let mut one = [253u8; 32];
    one[31] = 3;
    let next = hash(&one).0;
    let d2 = next
        .iter()
        .find(|b| **b < 252)
        .map(|b| b % 6 + 1)
        .expect("a low byte");
    assert_eq!(Roll::from_seed(&one), Roll { d1: 4, d2 });
}

#[test]
fn dice_from_seed_are_deterministic_and_uniform() {
    const SEEDS: u32 = 60_000;
    let mut pairs = [0u32; 36];
    let mut faces = [[0u32; 6]; 2];
    for i in 0..SEEDS {
        let seed = hash(&i.to_le_bytes()).0;
        let roll = Roll::from_seed(&seed);
        assert_eq!(Roll::from_seed(&seed), roll, "deterministic");
        let (a, b) = (usize::from(roll.d1) - 1, usize::from(roll.d2) - 1);
        pairs[a * 6 + b] += 1;
        faces[0][a] += 1;
        faces[1][b] += 1;
    }
    let chi2 = |counts: &[u32], expected: f64| -> f64 {
        counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum()
    };
    // 35 degrees of freedom: mean 35, sd 8.4; 90 is beyond p = 1e-6.
    let pair_chi2 = chi2(&pairs, f64::from(SEEDS) / 36.0);
    assert!(pair_chi2 < 90.0, "pairs chi-square {pair_chi2}: {pairs:?}");
    // 5 degrees of freedom: 35 is beyond p = 1e-5.
    for f in &faces {
        let c = chi2(f, f64::from(SEEDS) / 6.0);
        assert!(c < 35.0, "faces chi-square {c}: {f:?}");
    }
    // And the pairs are independent: doubles ~ 1/6.
    let doubles: u32 = (0..6).map(|i| pairs[i * 7]).sum();
    assert!((9_000..11_000).contains(&doubles), "{doubles} doubles");
}

// ------------------------------------------------------------- worst cases

#[test]
fn worst_case_payouts() {
    let cases: &[(BetKind, Option<u8>, u64)] = &[
        (Pass, None, 30),
        (DontPass, Some(4), 30),
        (Come, Some(4), 30),
        (ComePoint { point: 5 }, None, 30),
        (DontComePoint { point: 5 }, None, 30),
        (Field, None, 90),
        (Place { number: 4 }, None, 54),
        (Place { number: 9 }, None, 42),
        (Place { number: 8 }, None, 35),
        (Hard { number: 4 }, None, 210),
        (Hard { number: 8 }, None, 270),
        (AnySeven, None, 120),
        (AnyCraps, None, 210),
        (Yo, None, 450),
        (PassOdds, Some(4), 60),
        (PassOdds, Some(9), 45),
        (PassOdds, Some(6), 36),
        (PassOdds, None, 60), // unknown point: the largest (2:1)
        (DontPassOdds, Some(10), 15),
        (DontPassOdds, Some(5), 20),
        (DontPassOdds, Some(8), 25),
        (ComeOdds { point: 10 }, None, 60),
        (DontComeOdds { point: 6 }, None, 25),
    ];
    for &(kind, point, expected) in cases {
        assert_eq!(
            worst_case_payout(kind, 30, point),
            expected,
            "{kind:?} at {point:?}"
        );
    }
    assert_eq!(worst_case_payout(Yo, u64::MAX, None), u64::MAX, "saturates");
}

// -------------------------------------------------------------- a whole game

fn key(i: u8) -> PublicKey {
    Keypair::from_seed(&[i; 32]).public()
}

/// Several players play 2,000 rolls from block-like seeds; every chip is
/// accounted for, and at the end the house and players take everything out.
#[test]
fn a_whole_game_conserves_chips() {
    let house = key(100);
    let players: Vec<PublicKey> = (1..=5).map(key).collect();
    let params = TableParams {
        min_bet: 5,
        max_bet: 500,
    };
    let bankroll = 20_000;
    let mut t = Table::open(9, house, params, bankroll).expect("open");
    // Chips outside the table, per participant (the caller's balances).
    let mut outside: i128 = 0;
    let mut refusals = 0u32;
    for i in 0u32..2_000 {
        for (j, p) in players.iter().enumerate() {
            let kind = match (i as usize + j) % 7 {
                0 => Pass,
                1 => DontPass,
                2 => Come,
                3 => Field,
                4 => Place { number: 6 },
                5 => Hard { number: 8 },
                _ => PassOdds,
            };
            match t.place(*p, kind, 12) {
                Ok(()) => outside -= 12,
                Err(GameError::InsufficientBankroll { .. }) => refusals += 1,
                Err(_) => {}
            }
        }
        let before = t.escrow();
        let out = t.roll(Roll::from_seed(&hash(&i.to_le_bytes()).0));
        assert_eq!(t.escrow(), before);
        assert_eq!(out.phase_after, t.phase);
        assert!(t.bankroll >= t.reserved());
        if i % 50 == 0 {
            for p in &players {
                if let Ok(v) = t.withdraw(*p) {
                    outside += i128::from(v);
                }
            }
        }
    }
    assert_eq!(t.close(key(1)), Err(GameError::NotHouse));
    outside += i128::from(t.close(house).expect("house closes"));
    // Take down everything removable, let contract bets resolve.
    for _ in 0..10_000 {
        for b in t.bets() {
            if let Ok(v) = t.remove(b.player, b.kind) {
                outside += i128::from(v);
            }
        }
        if !t.has_bets() {
            break;
        }
        t.roll(Roll::new(3, 4).expect("seven"));
    }
    assert!(!t.has_bets());
    outside += i128::from(t.close(house).expect("again"));
    for p in &players {
        if let Ok(v) = t.withdraw(*p) {
            outside += i128::from(v);
        }
    }
    assert!(t.is_finished(), "{t:?}");
    assert_eq!(t.escrow(), 0);
    assert_eq!(outside, i128::from(bankroll), "chips out == chips in");
    assert!(
        refusals < 2_000,
        "the bankroll covered most bets ({refusals} refusals)"
    );
}
