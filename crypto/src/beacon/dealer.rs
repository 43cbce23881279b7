//! The trusted dealer (used by `testnet init` until a DKG replaces it).
//!
//! It draws a random polynomial `f` of degree `t - 1` over the scalar field, hands
//! share `i` the value `f(i)` for `i = 1..=n`, and publishes `g2 * f(0)` (the
//! group key) and `g2 * f(i)` (the share keys). The dealer sees `f(0)` and could
//! compute every future beacon output: see the module docs.

use super::points::G2Point;
use super::poly::{eval, scalar_of};
use super::{BeaconError, BeaconPublic, GroupPublicKey, SecretShare, MAX_BEACON_PARTICIPANTS};
use bls12_381::{G2Affine, Scalar};
use zeroize::Zeroizing;

/// blake3 `derive_key` context for [`deal_from_seed`].
const SEED_CONTEXT: &str = "BITCRAPS beacon dealer seed v1";

/// Redraws allowed when a drawn polynomial gives a zero secret or share; each
/// happens with probability about `(n + 1) / 2^255`, so one draw always suffices
/// in practice and the bound only turns an impossible loop into an error.
const MAX_DRAWS: usize = 8;

fn check_params(n: u32, threshold: u32) -> Result<(), BeaconError> {
    if n == 0 || n > MAX_BEACON_PARTICIPANTS || threshold == 0 || threshold > n {
        return Err(BeaconError::BadThreshold {
            threshold,
            participants: n,
        });
    }
    Ok(())
}

/// Draws coefficients with `next` (64 uniform bytes each, reduced with
/// `from_bytes_wide`) until the secret and every share are non-zero.
fn deal_with(
    n: u32,
    threshold: u32,
    mut next: impl FnMut(&mut [u8; 64]) -> Result<(), BeaconError>,
) -> Result<(BeaconPublic, Vec<SecretShare>), BeaconError> {
    check_params(n, threshold)?;
    for _ in 0..MAX_DRAWS {
        let mut coeffs = Zeroizing::new(Vec::with_capacity(threshold as usize));
        let mut wide = Zeroizing::new([0u8; 64]);
        for _ in 0..threshold {
            next(&mut wide)?;
            coeffs.push(Scalar::from_bytes_wide(&wide));
        }
        let secret = Zeroizing::new(coeffs[0]);
        let shares: Vec<SecretShare> = (1..=n)
            .map(|i| SecretShare::new(i, eval(&coeffs, &scalar_of(i))))
            .collect();
        let zero = Scalar::zero();
        if *secret == zero || shares.iter().any(|s| s.is_zero()) {
            continue;
        }
        let g2 = G2Affine::generator();
        let public = BeaconPublic {
            group_key: GroupPublicKey(G2Point(G2Affine::from(g2 * *secret))),
            threshold,
            share_keys: shares.iter().map(SecretShare::public_key).collect(),
        };
        return Ok((public, shares));
    }
    Err(BeaconError::Inconsistent(
        "dealer drew zero shares repeatedly (randomness source is broken)".into(),
    ))
}

/// Trusted dealer: a random polynomial of degree `threshold - 1` from the
/// operating system's CSPRNG, shares at `x = 1..=n`.
///
/// Needs `1 <= threshold <= n <= MAX_BEACON_PARTICIPANTS`; use
/// [`threshold_for`](super::threshold_for) for the BFT threshold.
pub fn deal(n: u32, threshold: u32) -> Result<(BeaconPublic, Vec<SecretShare>), BeaconError> {
    deal_with(n, threshold, |buf| {
        getrandom::fill(buf).map_err(|e| BeaconError::Randomness(e.to_string()))
    })
}

/// Like [`deal`], but deterministic from `seed` (tests, the simulator, reproducible
/// localnets). The coefficients are read from blake3's XOF in `derive_key` mode
/// (context `"BITCRAPS beacon dealer seed v1"`, key material `seed`), 64 bytes
/// per coefficient. Anyone who knows the seed knows every share: never use a
/// seeded deal for a real network.
pub fn deal_from_seed(
    n: u32,
    threshold: u32,
    seed: [u8; 32],
) -> Result<(BeaconPublic, Vec<SecretShare>), BeaconError> {
    let mut h = blake3::Hasher::new_derive_key(SEED_CONTEXT);
    h.update(&seed);
    let mut xof = h.finalize_xof();
    deal_with(n, threshold, |buf| {
        xof.fill(buf);
        Ok(())
    })
}
