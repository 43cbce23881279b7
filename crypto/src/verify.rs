//! The signature acceptance rule: cofactored ed25519 verification (ZIP-215).
//!
//! # Why this rule
//!
//! Every node must reach the same verdict on every signature however it grouped
//! them: a transaction that one validator batch-verified and another verified
//! alone must be valid for both or for neither, or their state roots diverge.
//! RFC 8032 leaves the choice of equation open, and implementations differ:
//!
//! * *cofactorless* (dalek's `verify_strict`): `[s]B - [k]A == R`. No fast batch
//!   equation gives the same verdicts: a batch checks a random linear combination,
//!   and a torsion component in `R` or `A` (a point of order 2, 4 or 8 added to
//!   it) survives or vanishes depending on the random weights. Exact batches then
//!   need a subgroup check per `R` (a full scalar multiplication), which made
//!   batching slower than verifying one by one (41 vs 36 µs per signature).
//! * *cofactored* (ZIP-215, used by Zcash and several BFT chains):
//!   `[8]([s]B - [k]A - R) == 0`. Multiplying by the cofactor kills every torsion
//!   component, so the batch equation
//!   `[8]( [-sum z_i s_i]B + sum [z_i]R_i + sum [z_i k_i]A_i ) == 0`
//!   accepts a set of signatures exactly when each one passes alone, except with
//!   probability about 2^-128 per batch (each `[8]D_i` lies in the prime-order
//!   group, and the 128-bit weights `z_i` come from a hash of the whole batch).
//!
//! So this crate uses the cofactored rule for single and batch verification alike
//! (see [`crate::batch`]). Honest RFC 8032 signatures verify under both rules; the
//! cofactored one also accepts signatures whose `R` carries a torsion component,
//! which only the key's owner can produce, and which every node accepts alike.
//!
//! # The rule, precisely
//!
//! * `s` (the second half) must be a canonical scalar (`s < l`), as RFC 8032 says;
//!   otherwise a third party could re-encode `s` and change the transaction id.
//! * `R` (the first half) must decode to a curve point; as in ZIP-215 a
//!   non-canonical encoding is decoded, not refused. It changes nothing for
//!   malleability: `k` hashes the bytes of `R` as sent.
//! * `A` is a [`crate::PublicKey`]: canonical and not of small order (checked once,
//!   when the key is decoded; stricter than ZIP-215, see `keys.rs`).
//! * `k = SHA-512(R bytes || A bytes || message) mod l`, and the signature is valid
//!   when `[8]([s]B - [k]A - R)` is the identity.

use crate::keys::Signature;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use sha2::{Digest, Sha512};

/// A signature split into its parts, with the per-message scalar `k` computed.
/// `None` from [`Parsed::new`] means the signature cannot be valid for any message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    pub r: EdwardsPoint,
    pub s: Scalar,
    pub k: Scalar,
}

impl Parsed {
    /// Decodes `sig` and computes `k` for `key_bytes` and `message`; `None` when
    /// `s` is not canonical or `R` is not a curve point.
    pub fn new(key_bytes: &[u8; 32], message: &[u8], sig: &Signature) -> Option<Parsed> {
        let (r_half, s_half) = sig.0.split_at(32);
        let r_bytes: [u8; 32] = r_half.try_into().ok()?;
        let s_bytes: [u8; 32] = s_half.try_into().ok()?;
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        Some(Parsed {
            r,
            s,
            k: challenge(&r_bytes, key_bytes, message),
        })
    }

    /// The cofactored equation for this signature under the key point `a`.
    pub fn check(&self, a: &EdwardsPoint) -> bool {
        // [k](-A) + [s]B - R, then times the cofactor.
        let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-a, &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// `SHA-512(R || A || M) mod l`, over the encodings as given.
fn challenge(r_bytes: &[u8; 32], key_bytes: &[u8; 32], message: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key_bytes);
    h.update(message);
    let digest: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

/// The cofactored check for one signature under the key point `a` whose
/// encoding is `key_bytes`.
pub(crate) fn verify_one(
    a: &EdwardsPoint,
    key_bytes: &[u8; 32],
    message: &[u8],
    sig: &Signature,
) -> bool {
    Parsed::new(key_bytes, message, sig).is_some_and(|p| p.check(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Keypair, PublicKey};
    use curve25519_dalek::constants::EIGHT_TORSION;

    /// A signer that knows its secret scalar and can put torsion into `R`.
    fn raw_sign(
        a: Scalar,
        public: &PublicKey,
        r: u64,
        r_torsion: EdwardsPoint,
        msg: &[u8],
    ) -> Signature {
        let r = Scalar::from(r);
        let big_r = (EdwardsPoint::mul_base(&r) + r_torsion).compress();
        let k = challenge(big_r.as_bytes(), public.as_bytes(), msg);
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        Signature(sig)
    }

    #[test]
    fn rfc8032_signatures_verify() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        for msg in [&b""[..], b"a", &[0u8; 1000]] {
            let sig = kp.sign(msg);
            assert!(kp.public().verify(msg, &sig).is_ok());
            // And dalek's strict rule agrees on honest signatures.
            let dalek = ed25519_dalek::VerifyingKey::from_bytes(kp.public().as_bytes()).unwrap();
            assert!(dalek
                .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
                .is_ok());
        }
    }

    #[test]
    fn torsion_in_r_is_accepted_and_still_binds_the_message() {
        let a = Scalar::from(4242u64);
        let public = PublicKey::from_bytes(&EdwardsPoint::mul_base(&a).compress().0).unwrap();
        for t in EIGHT_TORSION.iter().skip(1) {
            let sig = raw_sign(a, &public, 99, *t, b"bet");
            assert!(
                public.verify(b"bet", &sig).is_ok(),
                "cofactored rule ignores torsion"
            );
            assert!(public.verify(b"bez", &sig).is_err());
        }
    }

    #[test]
    fn non_canonical_s_is_refused() {
        let kp = Keypair::from_seed(&[3u8; 32]);
        let mut sig = kp.sign(b"m");
        // s + l encodes the same scalar mod l; the rule refuses it.
        let s = Scalar::from_canonical_bytes(sig.0[32..].try_into().unwrap()).unwrap();
        let l_bytes: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s.as_bytes()[i]) + u16::from(l_bytes[i]) + carry;
            sum[i] = v as u8;
            carry = v >> 8;
        }
        if carry == 0 {
            sig.0[32..].copy_from_slice(&sum);
            assert!(kp.public().verify(b"m", &sig).is_err());
        }
        // All-ones is never canonical.
        sig.0[32..].copy_from_slice(&[0xff; 32]);
        assert!(kp.public().verify(b"m", &sig).is_err());
    }

    #[test]
    fn undecodable_r_is_refused() {
        let kp = Keypair::from_seed(&[4u8; 32]);
        let mut sig = kp.sign(b"m");
        // Find an R encoding that is not a curve point.
        let bad = (2u8..=255)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| CompressedEdwardsY(*b).decompress().is_none())
            .unwrap();
        sig.0[..32].copy_from_slice(&bad);
        assert!(kp.public().verify(b"m", &sig).is_err());
    }

    #[test]
    fn identity_r_needs_the_secret() {
        // R = identity: valid only if s = k*a, which needs the secret scalar.
        let a = Scalar::from(777u64);
        let public = PublicKey::from_bytes(&EdwardsPoint::mul_base(&a).compress().0).unwrap();
        let owner = raw_sign(a, &public, 0, EdwardsPoint::default(), b"m");
        assert!(public.verify(b"m", &owner).is_ok());
        let forged = raw_sign(
            Scalar::from(778u64),
            &public,
            0,
            EdwardsPoint::default(),
            b"m",
        );
        assert!(public.verify(b"m", &forged).is_err());
    }
}
