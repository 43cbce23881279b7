//! Encoded curve points (validated on decode), their serde form, hashing to G1
//! and the pairing check.
//!
//! Layout ("min-sig"): signatures in G1 (48-byte compressed), public keys in G2
//! (96-byte compressed), both in the ZCash/IETF compressed encoding that
//! `bls12_381` implements. Every decoded point is checked to be on the curve, in
//! the prime-order subgroup and not the identity, so no later code has to think
//! about small-subgroup or degenerate points.

use super::{BeaconError, GROUP_KEY_BYTES, PARTIAL_SIG_BYTES};
use bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve};
use bls12_381::{multi_miller_loop, G1Affine, G1Projective, G2Affine, G2Prepared, Gt};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::OnceLock;

/// Domain separation tag for hashing round messages to G1 (RFC 9380 section 3.1
/// naming: application, version, ciphersuite).
pub const HASH_TO_G1_DST: &[u8] = b"BITCRAPS-BEACON-V01-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";

/// A G1 point that is in the prime-order subgroup and not the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct G1Point(pub(crate) G1Affine);

/// A G2 point that is in the prime-order subgroup and not the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct G2Point(pub(crate) G2Affine);

fn exact<const N: usize>(b: &[u8]) -> Result<&[u8; N], BeaconError> {
    b.try_into().map_err(|_| BeaconError::BadLength {
        expected: N,
        got: b.len(),
    })
}

impl G1Point {
    pub(crate) fn from_bytes(b: &[u8]) -> Result<Self, BeaconError> {
        // from_compressed checks the encoding flags, that x is canonical, that the
        // point is on the curve and that it is torsion free (in the subgroup).
        let p = Option::<G1Affine>::from(G1Affine::from_compressed(exact(b)?))
            .ok_or(BeaconError::InvalidPoint)?;
        if bool::from(p.is_identity()) {
            return Err(BeaconError::InvalidPoint);
        }
        Ok(G1Point(p))
    }

    pub(crate) fn to_bytes(self) -> [u8; PARTIAL_SIG_BYTES] {
        self.0.to_compressed()
    }
}

impl G2Point {
    pub(crate) fn from_bytes(b: &[u8]) -> Result<Self, BeaconError> {
        let p = Option::<G2Affine>::from(G2Affine::from_compressed(exact(b)?))
            .ok_or(BeaconError::InvalidPoint)?;
        if bool::from(p.is_identity()) {
            return Err(BeaconError::InvalidPoint);
        }
        Ok(G2Point(p))
    }

    pub(crate) fn to_bytes(self) -> [u8; GROUP_KEY_BYTES] {
        self.0.to_compressed()
    }
}

impl fmt::Debug for G1Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G1({}..)", hex::encode(&self.to_bytes()[..6]))
    }
}

impl fmt::Debug for G2Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G2({}..)", hex::encode(&self.to_bytes()[..6]))
    }
}

impl std::hash::Hash for G1Point {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state)
    }
}

impl std::hash::Hash for G2Point {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state)
    }
}

/// serde for fixed-size encodings: a lowercase hex string for human-readable
/// formats (JSON, TOML), raw bytes otherwise (postcard), as in `crate::keys`.
fn ser_bytes<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(b))
    } else {
        s.serialize_bytes(b)
    }
}

fn de_bytes<'de, D: Deserializer<'de>, T>(
    d: D,
    what: &'static str,
    parse: fn(&[u8]) -> Result<T, BeaconError>,
) -> Result<T, D::Error> {
    struct V<T> {
        what: &'static str,
        parse: fn(&[u8]) -> Result<T, BeaconError>,
    }
    impl<T> serde::de::Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.what)
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            let b = hex::decode(v).map_err(|_| E::custom("not a hex string"))?;
            self.visit_bytes(&b)
        }
    }
    let v = V { what, parse };
    if d.is_human_readable() {
        d.deserialize_str(v)
    } else {
        d.deserialize_bytes(v)
    }
}

impl Serialize for G1Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_bytes(&self.to_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for G1Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_bytes(
            d,
            "a 48-byte compressed BLS12-381 G1 point",
            G1Point::from_bytes,
        )
    }
}

impl Serialize for G2Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_bytes(&self.to_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for G2Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_bytes(
            d,
            "a 96-byte compressed BLS12-381 G2 point",
            G2Point::from_bytes,
        )
    }
}

/// Hashes a message to G1 (RFC 9380 `hash_to_curve`, expand_message_xmd with
/// SHA-256, simplified SWU, random-oracle variant). Never the identity in practice
/// (probability ~2^-255) and always in the subgroup (the cofactor is cleared).
pub(crate) fn hash_to_g1(msg: &[u8]) -> G1Projective {
    <G1Projective as HashToCurve<ExpandMsgXmd<sha2_bls::Sha256>>>::hash_to_curve(
        [msg],
        HASH_TO_G1_DST,
    )
}

/// `-g2`, prepared once for the Miller loop (it is the same in every check).
fn neg_g2_generator() -> &'static G2Prepared {
    static NEG_G2: OnceLock<G2Prepared> = OnceLock::new();
    NEG_G2.get_or_init(|| G2Prepared::from(-G2Affine::generator()))
}

/// The BLS check `e(sig, g2) == e(H(m), pk)`, done as one product of two Miller
/// loops and one final exponentiation: `e(sig, -g2) * e(H(m), pk) == 1`.
pub(crate) fn pairing_check(sig: &G1Affine, hm: &G1Affine, pk: &G2Affine) -> bool {
    let pk = G2Prepared::from(*pk);
    let gt = multi_miller_loop(&[(sig, neg_g2_generator()), (hm, &pk)]).final_exponentiation();
    gt == Gt::identity()
}
