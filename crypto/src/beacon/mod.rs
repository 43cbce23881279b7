//! Threshold BLS randomness beacon on BLS12-381: one unpredictable, unbiasable
//! random value per round.
//!
//! # How it works
//!
//! A dealer picks a random polynomial `f` of degree `t - 1` over the BLS12-381
//! scalar field and gives validator `i` (1-based) the secret share `s_i = f(i)`.
//! It publishes, in genesis, a [`BeaconPublic`]: the group key `g2 * f(0)`, the
//! threshold `t`, and each share's public key `g2 * s_i`.
//!
//! For round `r` every validator signs [`round_message`]`(chain_id, r)` with its
//! share, giving a [`PartialSignature`] `H(m) * s_i` in G1 ("min-sig" layout:
//! signatures in G1, 48 bytes; keys in G2, 96 bytes; `H` is RFC 9380
//! hash-to-curve with the DST [`HASH_TO_G1_DST`]). Any `t` partials with distinct
//! indices combine by Lagrange interpolation at 0 into `H(m) * f(0)`: the
//! ordinary BLS signature under the group key ([`BeaconPublic::recover`]). Its
//! hash, [`BeaconSignature::randomness`], is the round's random value.
//!
//! `n` validators tolerate `f = (n - 1) / 3` byzantine ones; the threshold is
//! `t = n - f` ([`threshold_for`]), so `t >= 2f + 1`.
//!
//! # Why the dice are fair
//!
//! **Nobody can choose the outcome.** A BLS signature is deterministic and unique:
//! for a given group key and message there is exactly one point that verifies,
//! however it was computed. Whichever `t` validators contribute, in whatever
//! order, the recovered signature is the same (the tests check this across many
//! subsets). So the value of round `r` is fixed the moment the group key is dealt.
//! Participants can at most *delay* it, never pick between two outcomes; there is
//! no last-revealer advantage of the kind commit-reveal schemes suffer from.
//!
//! **Nobody can learn it early.** Computing the round-`r` signature needs `t`
//! shares. A coalition of up to `f` byzantine validators holds at most `f < t`
//! shares (and any `t - 1` shares reveal nothing about a degree `t - 1`
//! polynomial's value at 0), so it needs at least `t - f >= f + 1` honest
//! partials for round `r`. Honest validators release their partial for round `r`
//! only after block `r` is committed; the node enforces this, and it accepts bets
//! on the roll of round `r` only in blocks at height `<= r`. Every bet on that
//! roll is therefore final before anyone, byzantine or not, can compute it.
//! Players hold no shares at all.
//!
//! **Nobody can stop it.** If the byzantine validators withhold their partials,
//! the `n - f >= t` honest ones are still enough.
//!
//! **The leader has no lever.** A leader that withholds, reorders or re-proposes
//! blocks changes *when* round `r` is committed, not the message `round_message(
//! chain_id, r)` or the key, hence not the value.
//!
//! **Bad shares are caught.** A partial that is not `H(m) * s_i` fails
//! [`BeaconPublic::verify_partial`]; [`BeaconPublic::recover`] detects it (the
//! combined result does not verify against the group key), identifies it by
//! per-partial verification, reports its index and recovers from honest partials.
//!
//! # Assumptions and limitations
//!
//! * `n >= 3f + 1`, and at most `f` validators are byzantine.
//! * **Trusted dealer.** For now `testnet init` runs [`deal`]. The dealer knows
//!   `f(0)`, so it could compute every future output, and must be trusted to
//!   forget the polynomial. This is a documented limitation: a distributed key
//!   generation (DKG), where no single party ever knows `f(0)`, will replace it
//!   without changing anything else here (the outputs of this module are the
//!   same for dealt and DKG-generated keys).
//! * [`BeaconPublic::validate`] must be run on the published keys (genesis load):
//!   it proves the share keys lie on one polynomial whose value at 0 is the group
//!   key, so any `t` valid partials give the same valid signature.
//! * Standard BLS security: co-CDH on BLS12-381 and hash-to-curve modelled as a
//!   random oracle.
//!
//! # Costs (see `benches/benches/beacon.rs`)
//!
//! Signing is one hash-to-curve and one G1 scalar multiplication; verifying is
//! one two-term Miller loop plus a final exponentiation. Recovery on the fast
//! path is `t` G1 scalar multiplications plus one verification.

mod dealer;
mod points;
mod poly;
mod public;
mod share;

pub use dealer::{deal, deal_from_seed};
pub use points::HASH_TO_G1_DST;
pub use public::{BeaconPublic, BeaconSignature, GroupPublicKey, Recovered};
pub use share::{PartialSignature, SecretShare, SECRET_SHARE_BYTES};

use crate::domain::{signing_bytes, Namespace};

/// Length of a compressed G1 point: partial and group signatures.
pub const PARTIAL_SIG_BYTES: usize = 48;
/// Length of a compressed G2 point: the group key and share keys.
pub const GROUP_KEY_BYTES: usize = 96;
/// Upper bound on validators holding beacon shares (limits the cost of
/// [`BeaconPublic::validate`] and of recovery).
pub const MAX_BEACON_PARTICIPANTS: u32 = 256;

/// Why a beacon operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BeaconError {
    #[error("not a valid BLS12-381 point (malformed, outside the prime-order subgroup, or the identity)")]
    InvalidPoint,
    #[error("not a canonical non-zero BLS12-381 scalar")]
    InvalidScalar,
    #[error("wrong length: expected {expected} bytes, got {got}")]
    BadLength { expected: usize, got: usize },
    #[error("share index {index} is out of range")]
    BadIndex { index: u32 },
    #[error(
        "threshold {threshold} is not valid for {participants} participants \
         (need 1 <= threshold <= participants <= 256)"
    )]
    BadThreshold { threshold: u32, participants: u32 },
    #[error("share index {index} appears twice")]
    DuplicateIndex { index: u32 },
    #[error("not enough valid partial signatures: have {have}, need {need}")]
    NotEnoughShares { have: usize, need: usize },
    #[error("partial signature from share {index} does not verify")]
    InvalidPartial { index: u32 },
    #[error("beacon signature does not verify against the group key")]
    InvalidSignature,
    #[error("inconsistent beacon keys: {0}")]
    Inconsistent(String),
    #[error("operating system randomness unavailable: {0}")]
    Randomness(String),
}

/// The message signed for `round` on `chain_id`:
/// `signing_bytes(chain_id, Namespace::Beacon, round as 8 big-endian bytes)`.
pub fn round_message(chain_id: &str, round: u64) -> Vec<u8> {
    signing_bytes(chain_id, Namespace::Beacon, &round.to_be_bytes())
}

/// The beacon threshold for `n` participants: `n - (n - 1) / 3`, i.e. `n - f` with
/// `f` the number of byzantine validators tolerated. `threshold_for(0) == 0`.
pub fn threshold_for(n: u32) -> u32 {
    n - n.saturating_sub(1) / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(n: u32, seed: u8) -> (BeaconPublic, Vec<SecretShare>) {
        deal_from_seed(n, threshold_for(n), [seed; 32]).unwrap()
    }

    #[test]
    fn thresholds() {
        let expected = [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 3),
            (5, 4),
            (7, 5),
            (10, 7),
        ];
        for (n, t) in expected {
            assert_eq!(threshold_for(n), t, "n = {n}");
        }
        for n in 1..=MAX_BEACON_PARTICIPANTS {
            let f = (n - 1) / 3;
            assert!(threshold_for(n) > 2 * f, "n = {n}");
            assert!(threshold_for(n) + f <= n, "n = {n}");
        }
    }

    #[test]
    fn round_message_is_domain_separated() {
        let m = round_message("main", 7);
        assert!(m.ends_with(&7u64.to_be_bytes()));
        assert_ne!(m, round_message("main", 8));
        assert_ne!(m, round_message("test", 7));
        assert_ne!(
            m,
            signing_bytes("main", Namespace::Transaction, &7u64.to_be_bytes())
        );
    }

    #[test]
    fn sign_recover_verify() {
        let (public, shares) = setup(4, 1);
        public.validate().unwrap();
        let msg = round_message("unit", 1);
        let partials: Vec<_> = shares.iter().map(|s| s.sign(&msg)).collect();
        for p in &partials {
            public.verify_partial(&msg, p).unwrap();
        }
        let r = public.recover(&msg, &partials).unwrap();
        assert!(r.invalid.is_empty());
        public.verify(&msg, &r.signature).unwrap();
        assert_eq!(
            public.verify(&round_message("unit", 2), &r.signature),
            Err(BeaconError::InvalidSignature)
        );
        // Share keys match the shares.
        for s in &shares {
            assert_eq!(s.public_key(), public.share_keys[s.index() as usize - 1]);
        }
    }

    #[test]
    fn t_minus_one_is_not_enough() {
        let (public, shares) = setup(4, 2);
        let msg = round_message("unit", 3);
        let partials: Vec<_> = shares[..2].iter().map(|s| s.sign(&msg)).collect();
        assert_eq!(
            public.recover(&msg, &partials),
            Err(BeaconError::NotEnoughShares { have: 2, need: 3 })
        );
    }

    #[test]
    fn bad_partial_is_reported_and_skipped() {
        let (public, shares) = setup(4, 3);
        let msg = round_message("unit", 4);
        let mut partials: Vec<_> = shares.iter().map(|s| s.sign(&msg)).collect();
        // Share 2 signs another round: in the fast-path subset, so the slow path runs.
        partials[1] = shares[1].sign(&round_message("unit", 5));
        let r = public.recover(&msg, &partials).unwrap();
        assert_eq!(r.invalid, vec![2]);
        public.verify(&msg, &r.signature).unwrap();
        assert_eq!(
            public.verify_partial(&msg, &partials[1]),
            Err(BeaconError::InvalidPartial { index: 2 })
        );
    }

    #[test]
    fn out_of_range_index() {
        let (public, shares) = setup(4, 4);
        let msg = round_message("unit", 6);
        let mut p = shares[0].sign(&msg);
        p.index = 5;
        assert_eq!(
            public.verify_partial(&msg, &p),
            Err(BeaconError::BadIndex { index: 5 })
        );
        p.index = 0;
        assert_eq!(
            public.verify_partial(&msg, &p),
            Err(BeaconError::BadIndex { index: 0 })
        );
        let mut partials: Vec<_> = shares.iter().map(|s| s.sign(&msg)).collect();
        partials.insert(0, p);
        let r = public.recover(&msg, &partials).unwrap();
        assert_eq!(r.invalid, vec![0]);
    }

    #[test]
    fn secret_share_bytes() {
        let (_, shares) = setup(4, 5);
        let b = shares[2].to_bytes();
        assert_eq!(&b[..4], &3u32.to_be_bytes());
        let back = SecretShare::from_bytes(b.as_ref()).unwrap();
        assert_eq!(back.index(), 3);
        assert_eq!(back.public_key(), shares[2].public_key());
        let dbg = format!("{:?}", shares[2]);
        assert!(!dbg.contains(&hex::encode(&b[4..])));
        assert!(!dbg.contains(&hex::encode(&b[4..8])));
        assert!(dbg.contains("index=3"));
    }

    #[test]
    fn validate_parameters() {
        let (mut public, _) = setup(4, 6);
        public.threshold = 0;
        assert!(matches!(
            public.validate(),
            Err(BeaconError::BadThreshold { .. })
        ));
        public.threshold = 5;
        assert!(matches!(
            public.validate(),
            Err(BeaconError::BadThreshold { .. })
        ));
        assert!(matches!(
            deal_from_seed(4, 5, [0; 32]),
            Err(BeaconError::BadThreshold { .. })
        ));
        assert!(matches!(
            deal_from_seed(0, 0, [0; 32]),
            Err(BeaconError::BadThreshold { .. })
        ));
        assert!(matches!(
            deal_from_seed(MAX_BEACON_PARTICIPANTS + 1, 1, [0; 32]),
            Err(BeaconError::BadThreshold { .. })
        ));
    }

    #[test]
    fn degenerate_thresholds() {
        // t = 1: every share key equals the group key; t = n: no redundancy.
        for (n, t) in [(1, 1), (3, 1), (3, 3)] {
            let (public, shares) = deal_from_seed(n, t, [9; 32]).unwrap();
            public.validate().unwrap();
            let msg = round_message("unit", 10);
            let partials: Vec<_> = shares.iter().map(|s| s.sign(&msg)).collect();
            let r = public.recover(&msg, &partials).unwrap();
            public.verify(&msg, &r.signature).unwrap();
            if t == 1 {
                assert_eq!(BeaconSignature(partials[0].sig), r.signature);
            }
        }
    }
}
