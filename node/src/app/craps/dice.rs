//! Dice and the table phase.
//!
//! [`Roll::from_seed`] turns the agreed randomness of a block (32 bytes that no
//! single validator or player can predict or bias) into two fair dice. It uses
//! rejection sampling rather than `byte % 6`, because 256 is not a multiple of
//! 6 and a plain modulo would favour 1..=4 by about 0.4 %.

use super::Roll;
use serde::{Deserialize, Serialize};

/// The point numbers: a come-out roll of one of these sets the point, and Come
/// bets travel to them.
pub const POINT_NUMBERS: [u8; 6] = [4, 5, 6, 8, 9, 10];

/// Bytes at or above this are rejected by [`Roll::from_seed`]: 252 is the
/// largest multiple of 6 that fits in a byte, so `b % 6` over `0..252` is
/// exactly uniform.
const REJECT_FROM: u8 = 252;

/// How many times [`Roll::from_seed`] rehashes before it gives up on rejection
/// sampling. Each 32-byte block yields two dice unless at least 31 of its bytes
/// are rejected (probability below 2^-180), so this bound is never reached in
/// practice; it exists so the loop provably terminates.
const MAX_REHASHES: usize = 16;

/// True for 4, 5, 6, 8, 9 and 10.
pub fn is_point_number(n: u8) -> bool {
    POINT_NUMBERS.contains(&n)
}

impl Roll {
    /// A roll with both dice in `1..=6`, or `None`.
    pub fn new(d1: u8, d2: u8) -> Option<Roll> {
        let roll = Roll { d1, d2 };
        roll.is_valid().then_some(roll)
    }

    /// Whether both dice are in `1..=6` (the fields are public, so a `Roll`
    /// built by hand or decoded from JSON may not be).
    pub fn is_valid(&self) -> bool {
        (1..=6).contains(&self.d1) && (1..=6).contains(&self.d2)
    }

    /// The sum of the dice, 2..=12 for a valid roll.
    pub fn total(&self) -> u8 {
        self.d1.saturating_add(self.d2)
    }

    /// Both dice show the same face ("the hard way").
    pub fn is_hard(&self) -> bool {
        self.d1 == self.d2
    }

    /// All 36 equally likely outcomes, `d1` major.
    pub fn all() -> impl Iterator<Item = Roll> {
        (1..=6u8).flat_map(|d1| (1..=6u8).map(move |d2| Roll { d1, d2 }))
    }

    /// Unbiased dice from a 32-byte seed, deterministically.
    ///
    /// Scans the seed's bytes in order; a byte below 252 gives a die
    /// `b % 6 + 1`, a byte at or above 252 is skipped. The first two accepted
    /// bytes are `d1` and `d2`. If the seed runs out, it is replaced by its
    /// blake3 hash and the scan continues. (After 16 rehashes,
    /// which has probability below 2^-2000, the remaining dice are taken with
    /// a plain modulo so the function is total.)
    pub fn from_seed(seed: &[u8; 32]) -> Roll {
        let mut block = *seed;
        let mut dice: [u8; 2] = [0; 2];
        let mut got = 0usize;
        for _ in 0..=MAX_REHASHES {
            for &b in block.iter() {
                if b < REJECT_FROM {
                    if let Some(slot) = dice.get_mut(got) {
                        *slot = b % 6 + 1;
                        got += 1;
                    }
                    if got == 2 {
                        return Roll {
                            d1: dice[0],
                            d2: dice[1],
                        };
                    }
                }
            }
            block = bitcraps_crypto::hash(&block).0;
        }
        // Unreachable in practice (see above); keep it total and deterministic.
        let d1 = if got == 1 { dice[0] } else { block[0] % 6 + 1 };
        Roll {
            d1,
            d2: block[1] % 6 + 1,
        }
    }
}

/// Where the table is in the pass-line cycle.
///
/// JSON: `"come_out"` or `{"point": 6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The next roll is a come-out roll: no point is set.
    ComeOut,
    /// The point is set to this number (one of [`POINT_NUMBERS`]).
    Point(u8),
}

impl Phase {
    /// The point, if one is set.
    pub fn point(&self) -> Option<u8> {
        match *self {
            Phase::ComeOut => None,
            Phase::Point(p) => Some(p),
        }
    }

    /// The phase after a roll of `total`: a come-out point number sets the
    /// point; with a point set, the point or a 7 ends the cycle. Every other
    /// roll leaves the phase alone.
    pub fn after(self, total: u8) -> Phase {
        match self {
            Phase::ComeOut if is_point_number(total) => Phase::Point(total),
            Phase::ComeOut => Phase::ComeOut,
            Phase::Point(p) if total == p || total == 7 => Phase::ComeOut,
            Phase::Point(p) => Phase::Point(p),
        }
    }

    /// A phase the table can be in (`Point(n)` only for point numbers).
    pub fn is_valid(&self) -> bool {
        match *self {
            Phase::ComeOut => true,
            Phase::Point(p) => is_point_number(p),
        }
    }
}
