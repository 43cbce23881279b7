//! The public side of the beacon: the group key, recovered signatures, the
//! published [`BeaconPublic`] and its checks (validation, verification, recovery).

use super::points::{hash_to_g1, pairing_check, G1Point, G2Point};
use super::poly::{scalar_of, Interpolator};
use super::{
    BeaconError, PartialSignature, GROUP_KEY_BYTES, MAX_BEACON_PARTICIPANTS, PARTIAL_SIG_BYTES,
};
use crate::Hash32;
use bls12_381::{G1Affine, G1Projective, G2Projective, Scalar};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};

/// blake3 `derive_key` context for the beacon output.
const RANDOMNESS_CONTEXT: &str = "BITCRAPS beacon randomness v1";
/// blake3 `derive_key` context for the Fiat-Shamir weights of [`BeaconPublic::validate`].
const VALIDATE_CONTEXT: &str = "BITCRAPS beacon share-key validation weights v1";

/// The group public key (a G2 point), or one share's public key.
///
/// JSON: 192 lowercase hex characters; binary formats: the 96 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupPublicKey(pub(crate) G2Point);

impl GroupPublicKey {
    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; GROUP_KEY_BYTES] {
        self.0.to_bytes()
    }

    /// Decodes 96 bytes; rejects malformed encodings, points outside the
    /// prime-order subgroup and the identity.
    pub fn from_bytes(b: &[u8]) -> Result<Self, BeaconError> {
        G2Point::from_bytes(b).map(GroupPublicKey)
    }

    /// Lowercase hex of [`to_bytes`](Self::to_bytes).
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
}

/// A recovered group signature on one round: the beacon output (a G1 point).
///
/// JSON: 96 lowercase hex characters; binary formats: the 48 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BeaconSignature(pub(crate) G1Point);

impl BeaconSignature {
    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PARTIAL_SIG_BYTES] {
        self.0.to_bytes()
    }

    /// Decodes 48 bytes; rejects malformed encodings, points outside the
    /// prime-order subgroup and the identity. Does not verify: see
    /// [`BeaconPublic::verify`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, BeaconError> {
        G1Point::from_bytes(b).map(BeaconSignature)
    }

    /// Lowercase hex of [`to_bytes`](Self::to_bytes).
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// The round's random value: blake3 in `derive_key` mode with the context
    /// `"BITCRAPS beacon randomness v1"` over the 48 signature bytes. The context
    /// separates it from every other blake3 use in the system (block ids,
    /// transaction ids), so the output is never an existing content address.
    ///
    /// Only meaningful for a signature that [`BeaconPublic::verify`] accepted.
    pub fn randomness(&self) -> Hash32 {
        Hash32(blake3::derive_key(RANDOMNESS_CONTEXT, &self.to_bytes()))
    }
}

/// What genesis publishes about the beacon: the group key, the threshold and
/// every share's public key (`share_keys[i]` belongs to share index `i + 1`).
///
/// JSON: `{"group_key": "<hex>", "threshold": 3, "share_keys": ["<hex>", ...]}`.
/// Deserializing checks each point; [`validate`](Self::validate) checks that they
/// fit together and must be called on anything read from a file or the network.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconPublic {
    pub group_key: GroupPublicKey,
    pub threshold: u32,
    pub share_keys: Vec<GroupPublicKey>,
}

/// The result of [`BeaconPublic::recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The group signature (it verified against the group key).
    pub signature: BeaconSignature,
    /// Share indices that supplied something invalid, ascending and without
    /// repeats: out-of-range indices, and partials that failed verification on
    /// the slow path. Empty on the fast path when every index is in range.
    pub invalid: Vec<u32>,
}

/// Sum of `scalars[i] * points[i]`. Plain double-and-add per term: n is at most
/// a few hundred and this runs on public data once per call.
fn lincomb_g2(points: &[G2Projective], scalars: &[Scalar]) -> G2Projective {
    points
        .iter()
        .zip(scalars)
        .fold(G2Projective::identity(), |acc, (p, s)| acc + p * s)
}

impl BeaconPublic {
    /// Number of participants (share keys).
    pub fn participants(&self) -> u32 {
        u32::try_from(self.share_keys.len()).unwrap_or(u32::MAX)
    }

    fn check_threshold(&self) -> Result<(), BeaconError> {
        let n = self.participants();
        if self.threshold == 0 || self.threshold > n || n > MAX_BEACON_PARTICIPANTS {
            return Err(BeaconError::BadThreshold {
                threshold: self.threshold,
                participants: n,
            });
        }
        Ok(())
    }

    /// Checks `1 <= threshold <= n <= MAX_BEACON_PARTICIPANTS` and that the share
    /// keys and the group key are the values at `1..=n` and `0` of ONE polynomial
    /// (in the exponent) of degree `threshold - 1`.
    ///
    /// The polynomial is fixed by share keys `1..=threshold`; by Lagrange
    /// interpolation in the exponent it must give the group key at `x = 0` and
    /// share key `j` at every `x = j > threshold`. Those `n - threshold + 1`
    /// equations are checked together as one random linear combination (weights
    /// from a blake3 hash of the whole `BeaconPublic`, Fiat-Shamir), which costs
    /// `n + 1` G2 scalar multiplications instead of `(n - t + 1) * t`; a wrong key
    /// passes with probability about 2^-255. Only when the combined check fails
    /// are the equations checked one by one, to name the offending key.
    pub fn validate(&self) -> Result<(), BeaconError> {
        self.check_threshold()?;
        let n = self.participants();
        let t = self.threshold;
        let base: Vec<u32> = (1..=t).collect();
        let interp = Interpolator::new(&base)?;
        // Targets: (x, expected key at x).
        let targets: Vec<(u32, GroupPublicKey)> = std::iter::once((0, self.group_key))
            .chain((t + 1..=n).map(|x| (x, self.share_keys[(x - 1) as usize])))
            .collect();
        let coeffs: Vec<Vec<Scalar>> = targets
            .iter()
            .map(|(x, _)| interp.coeffs_at(&scalar_of(*x)))
            .collect();
        let base_points: Vec<G2Projective> = self.share_keys[..t as usize]
            .iter()
            .map(|k| G2Projective::from(k.0 .0))
            .collect();

        // Fiat-Shamir weights over everything that defines the statement.
        let mut h = blake3::Hasher::new_derive_key(VALIDATE_CONTEXT);
        h.update(&t.to_be_bytes());
        h.update(&n.to_be_bytes());
        h.update(&self.group_key.to_bytes());
        for k in &self.share_keys {
            h.update(&k.to_bytes());
        }
        let mut xof = h.finalize_xof();
        let weights: Vec<Scalar> = targets
            .iter()
            .map(|_| {
                let mut wide = [0u8; 64];
                xof.fill(&mut wide);
                Scalar::from_bytes_wide(&wide)
            })
            .collect();

        // sum_k w_k * (expected_k - sum_i L_i(x_k) * base_i) == 0
        let mut points: Vec<G2Projective> = targets
            .iter()
            .map(|(_, k)| G2Projective::from(k.0 .0))
            .collect();
        let mut scalars = weights.clone();
        let mut agg = vec![Scalar::zero(); t as usize];
        for (w, c) in weights.iter().zip(&coeffs) {
            for (a, ci) in agg.iter_mut().zip(c) {
                *a += w * ci;
            }
        }
        points.extend_from_slice(&base_points);
        scalars.extend(agg.iter().map(|a| -a));
        if bool::from(lincomb_g2(&points, &scalars).is_identity()) {
            return Ok(());
        }

        // Slow path: find the first equation that fails, for a readable error.
        for ((x, expected), c) in targets.iter().zip(&coeffs) {
            let got = lincomb_g2(&base_points, c);
            if got != G2Projective::from(expected.0 .0) {
                return Err(BeaconError::Inconsistent(if *x == 0 {
                    format!(
                        "group key is not the value at 0 of the degree-{} polynomial \
                         through share keys 1..={t} (wrong group key, or one of those \
                         share keys is tampered)",
                        t - 1
                    )
                } else {
                    format!(
                        "share key {x} does not lie on the degree-{} polynomial through \
                         share keys 1..={t} (wrong key {x}, or one of keys 1..={t} is \
                         tampered)",
                        t - 1
                    )
                }));
            }
        }
        // The combined check failed but no single equation did: impossible for
        // a prime-order group; reported rather than ignored.
        Err(BeaconError::Inconsistent(
            "share keys failed the combined consistency check".into(),
        ))
    }

    fn share_key(&self, index: u32) -> Result<&GroupPublicKey, BeaconError> {
        if index == 0 {
            return Err(BeaconError::BadIndex { index });
        }
        self.share_keys
            .get((index - 1) as usize)
            .ok_or(BeaconError::BadIndex { index })
    }

    /// Verifies one partial against `share_keys[index - 1]`.
    pub fn verify_partial(&self, msg: &[u8], p: &PartialSignature) -> Result<(), BeaconError> {
        let hm = G1Affine::from(hash_to_g1(msg));
        self.verify_partial_hashed(&hm, p)
    }

    fn verify_partial_hashed(
        &self,
        hm: &G1Affine,
        p: &PartialSignature,
    ) -> Result<(), BeaconError> {
        let key = self.share_key(p.index)?;
        if pairing_check(&p.sig.0, hm, &key.0 .0) {
            Ok(())
        } else {
            Err(BeaconError::InvalidPartial { index: p.index })
        }
    }

    /// Verifies a group signature against the group key.
    pub fn verify(&self, msg: &[u8], sig: &BeaconSignature) -> Result<(), BeaconError> {
        let hm = G1Affine::from(hash_to_g1(msg));
        if pairing_check(&sig.0 .0, &hm, &self.group_key.0 .0) {
            Ok(())
        } else {
            Err(BeaconError::InvalidSignature)
        }
    }

    /// Lagrange interpolation at 0, in the exponent, from exactly `threshold`
    /// partials with distinct indices.
    fn interpolate(partials: &[PartialSignature]) -> Result<BeaconSignature, BeaconError> {
        let idx: Vec<u32> = partials.iter().map(|p| p.index).collect();
        let coeffs = Interpolator::new(&idx)?.coeffs_at(&Scalar::zero());
        let sum = partials
            .iter()
            .zip(&coeffs)
            .fold(G1Projective::identity(), |acc, (p, c)| acc + p.sig.0 * c);
        // A combination of subgroup points stays in the subgroup; only the identity
        // (possible with adversarial partials) is excluded.
        if bool::from(sum.is_identity()) {
            return Err(BeaconError::InvalidSignature);
        }
        Ok(BeaconSignature(G1Point(G1Affine::from(sum))))
    }

    /// Recovers the group signature on `msg` from partials given in any order,
    /// possibly with duplicates, invalid partials and more than needed.
    ///
    /// * Out-of-range indices are dropped and reported in `invalid`.
    /// * Fast path: interpolate from the first `threshold` distinct indices (first
    ///   occurrence of each) and verify the result against the group key: one
    ///   pairing check, no per-partial verification. By uniqueness, a correct
    ///   result from any subset is THE signature.
    /// * Slow path, only if that fails: verify partials one by one in the given
    ///   order (skipping indices already accepted), drop and report the invalid
    ///   ones, stop as soon as `threshold` are valid, interpolate and check the
    ///   result again. Every partial among the fast path's subset is verified
    ///   before the slow path can stop, so the culprits that broke the fast path
    ///   are always reported; partials after the stopping point are not looked at.
    ///
    /// Errors: `NotEnoughShares` when fewer than `threshold` distinct (fast path)
    /// or valid (slow path) partials are available; `BadThreshold` for an
    /// unusable `BeaconPublic`; `Inconsistent` if valid partials still do not
    /// give a valid signature (the share keys do not match the group key, which
    /// [`validate`](Self::validate) rejects).
    pub fn recover(
        &self,
        msg: &[u8],
        partials: &[PartialSignature],
    ) -> Result<Recovered, BeaconError> {
        self.check_threshold()?;
        let n = self.participants();
        let need = self.threshold as usize;
        let mut invalid = BTreeSet::new();
        let in_range: Vec<PartialSignature> = partials
            .iter()
            .filter(|p| {
                let ok = p.index >= 1 && p.index <= n;
                if !ok {
                    invalid.insert(p.index);
                }
                ok
            })
            .copied()
            .collect();

        let mut seen = BTreeSet::new();
        let first: Vec<PartialSignature> = in_range
            .iter()
            .filter(|p| seen.insert(p.index))
            .copied()
            .collect();
        if first.len() < need {
            return Err(BeaconError::NotEnoughShares {
                have: first.len(),
                need,
            });
        }

        let hm = G1Affine::from(hash_to_g1(msg));
        let candidate = Self::interpolate(&first[..need]);
        if let Ok(sig) = candidate {
            if pairing_check(&sig.0 .0, &hm, &self.group_key.0 .0) {
                return Ok(Recovered {
                    signature: sig,
                    invalid: invalid.into_iter().collect(),
                });
            }
        }

        // Slow path.
        let mut valid: Vec<PartialSignature> = Vec::with_capacity(need);
        let mut accepted = BTreeSet::new();
        let mut rejected = HashSet::new();
        for p in &in_range {
            if valid.len() == need {
                break;
            }
            if accepted.contains(&p.index) || rejected.contains(p) {
                continue;
            }
            if self.verify_partial_hashed(&hm, p).is_ok() {
                accepted.insert(p.index);
                valid.push(*p);
            } else {
                rejected.insert(*p);
                invalid.insert(p.index);
            }
        }
        if valid.len() < need {
            return Err(BeaconError::NotEnoughShares {
                have: valid.len(),
                need,
            });
        }
        let sig = Self::interpolate(&valid)?;
        if !pairing_check(&sig.0 .0, &hm, &self.group_key.0 .0) {
            return Err(BeaconError::Inconsistent(
                "valid partials interpolate to a signature that the group key rejects: \
                 share keys do not match the group key"
                    .into(),
            ));
        }
        Ok(Recovered {
            signature: sig,
            invalid: invalid.into_iter().collect(),
        })
    }
}
