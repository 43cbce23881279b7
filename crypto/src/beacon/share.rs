//! A validator's secret share and the partial signatures it produces.

use super::points::{hash_to_g1, G1Point, G2Point};
use super::{BeaconError, GroupPublicKey, MAX_BEACON_PARTICIPANTS, PARTIAL_SIG_BYTES};
use bls12_381::{G1Affine, G2Affine, Scalar};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Length of [`SecretShare::to_bytes`].
pub const SECRET_SHARE_BYTES: usize = 36;

/// Checks a 1-based share index against the global participant cap.
fn check_index(index: u32) -> Result<(), BeaconError> {
    if index == 0 || index > MAX_BEACON_PARTICIPANTS {
        return Err(BeaconError::BadIndex { index });
    }
    Ok(())
}

/// One validator's partial signature on a round message: `H(m)^{s_i}` in G1.
///
/// Decoding guarantees a subgroup, non-identity point and an index in
/// `1..=MAX_BEACON_PARTICIPANTS`; whether it is *the right* point is only known
/// after [`BeaconPublic::verify_partial`](super::BeaconPublic::verify_partial).
///
/// JSON: `{"index": 3, "sig": "<96 hex chars>"}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "PartialRepr", into = "PartialRepr")]
pub struct PartialSignature {
    /// 1-based share index of the signer.
    pub index: u32,
    pub(crate) sig: G1Point,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialRepr {
    index: u32,
    sig: G1Point,
}

impl TryFrom<PartialRepr> for PartialSignature {
    type Error = BeaconError;
    fn try_from(r: PartialRepr) -> Result<Self, BeaconError> {
        check_index(r.index)?;
        Ok(PartialSignature {
            index: r.index,
            sig: r.sig,
        })
    }
}

impl From<PartialSignature> for PartialRepr {
    fn from(p: PartialSignature) -> Self {
        PartialRepr {
            index: p.index,
            sig: p.sig,
        }
    }
}

impl PartialSignature {
    /// The 48-byte compressed G1 point.
    pub fn sig_bytes(&self) -> [u8; PARTIAL_SIG_BYTES] {
        self.sig.to_bytes()
    }

    /// Decodes a partial received from a peer. Rejects index 0, indices above
    /// [`MAX_BEACON_PARTICIPANTS`], malformed points, points outside the
    /// subgroup and the identity.
    pub fn from_parts(index: u32, sig: &[u8]) -> Result<Self, BeaconError> {
        check_index(index)?;
        Ok(PartialSignature {
            index,
            sig: G1Point::from_bytes(sig)?,
        })
    }
}

/// A validator's secret share: the dealer's polynomial evaluated at `index`.
///
/// * `Debug` prints only the index.
/// * The scalar is wiped on drop with `zeroize` (bls12_381's `zeroize` feature
///   makes `Scalar` zeroizable; it is overwritten with zero through a volatile
///   write). Like every `Copy` value, temporary copies made during arithmetic on
///   the stack are not tracked: this is best effort, as everywhere in Rust.
/// * No serde and no `Clone`: the only way out is [`SecretShare::to_bytes`],
///   which returns zeroizing memory for the caller's keystore.
pub struct SecretShare {
    index: u32,
    scalar: Scalar,
}

impl SecretShare {
    /// Internal constructor; `scalar` must be non-zero and `index` in range.
    pub(crate) fn new(index: u32, scalar: Scalar) -> Self {
        SecretShare { index, scalar }
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.scalar == Scalar::zero()
    }

    /// The 1-based share index (the x coordinate on the dealer's polynomial).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Signs `msg` (normally a [`round_message`](super::round_message)):
    /// `H(msg) * s_i`. The scalar multiplication is constant time.
    pub fn sign(&self, msg: &[u8]) -> PartialSignature {
        let sig = G1Affine::from(hash_to_g1(msg) * self.scalar);
        PartialSignature {
            index: self.index,
            sig: G1Point(sig),
        }
    }

    /// This share's public key `g2 * s_i`; equals `share_keys[index - 1]` of the
    /// [`BeaconPublic`](super::BeaconPublic) it was dealt with.
    pub fn public_key(&self) -> GroupPublicKey {
        GroupPublicKey(G2Point(G2Affine::from(G2Affine::generator() * self.scalar)))
    }

    /// 36 bytes: big-endian `u32` index, then the 32-byte canonical little-endian
    /// scalar.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SECRET_SHARE_BYTES]> {
        let mut out = Zeroizing::new([0u8; SECRET_SHARE_BYTES]);
        out[..4].copy_from_slice(&self.index.to_be_bytes());
        let scalar = Zeroizing::new(self.scalar.to_bytes());
        out[4..].copy_from_slice(scalar.as_ref());
        out
    }

    /// Inverse of [`to_bytes`](Self::to_bytes). Rejects a wrong length, index 0
    /// or above [`MAX_BEACON_PARTICIPANTS`], a non-canonical scalar (>= the group
    /// order) and the zero scalar.
    pub fn from_bytes(b: &[u8]) -> Result<Self, BeaconError> {
        if b.len() != SECRET_SHARE_BYTES {
            return Err(BeaconError::BadLength {
                expected: SECRET_SHARE_BYTES,
                got: b.len(),
            });
        }
        let mut index_be = [0u8; 4];
        index_be.copy_from_slice(&b[..4]);
        let index = u32::from_be_bytes(index_be);
        check_index(index)?;
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&b[4..]);
        let scalar =
            Option::<Scalar>::from(Scalar::from_bytes(&raw)).ok_or(BeaconError::InvalidScalar)?;
        let share = SecretShare { index, scalar };
        if share.is_zero() {
            return Err(BeaconError::InvalidScalar);
        }
        Ok(share)
    }
}

impl Drop for SecretShare {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

impl fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the scalar.
        write!(f, "SecretShare(index={}, scalar=<redacted>)", self.index)
    }
}
