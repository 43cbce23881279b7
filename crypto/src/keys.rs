//! ed25519 keys and signatures (RFC 8032 signing via ed25519-dalek).
//!
//! One acceptance rule everywhere, the cofactored rule of ZIP-215 (see
//! [`crate::verify`]): [`PublicKey::verify`] and batch verification accept exactly
//! the same signatures. Keys are stricter than ZIP-215: [`PublicKey::from_bytes`]
//! refuses small-order points and non-canonical encodings, so an account or a
//! validator has one byte form and no key verifies arbitrary messages.

use crate::hash::HexError;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// Length of an encoded public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an encoded signature.
pub const SIGNATURE_LEN: usize = 64;

/// An ed25519 verifying key. The decompressed point is cached so verification does
/// not pay for decompression each time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyError {
    #[error("public key is not a valid ed25519 point")]
    InvalidPublicKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("hex: {0}")]
    Hex(#[from] HexError),
}

impl PublicKey {
    /// Decodes and validates 32 bytes. Keys that decoded before come from a
    /// bounded cache ([`crate::keycache`]) instead of a new decompression.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, KeyError> {
        if let Some(vk) = crate::keycache::get(bytes) {
            return Ok(PublicKey(vk));
        }
        // One encoding per key: `y >= p` decodes to the same point as `y - p`.
        if !canonical_y(bytes) {
            return Err(KeyError::InvalidPublicKey);
        }
        let vk = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        // Weak (small-order) keys would let many messages verify; never accept them.
        // (This also refuses the two points with x = 0, whose sign bit could
        // otherwise give them a second encoding.)
        if vk.is_weak() {
            return Err(KeyError::InvalidPublicKey);
        }
        crate::keycache::put(*bytes, vk);
        Ok(PublicKey(vk))
    }

    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let v = hex::decode(s).map_err(|_| HexError::NotHex)?;
        let arr: [u8; 32] = v.try_into().map_err(|_| HexError::WrongLength(32))?;
        Self::from_bytes(&arr)
    }

    /// Verifies `sig` over `message` under the cofactored rule
    /// ([`crate::verify`]), the one every node and every batch applies.
    pub fn verify(&self, message: &[u8], sig: &Signature) -> Result<(), KeyError> {
        if crate::verify::verify_one(&self.point(), self.as_bytes(), message, sig) {
            Ok(())
        } else {
            Err(KeyError::BadSignature)
        }
    }

    /// The decompressed point (cached in the key, so this is a copy).
    pub(crate) fn point(&self) -> curve25519_dalek::EdwardsPoint {
        self.0.to_edwards()
    }
}

/// True when the `y` coordinate in `bytes` (sign bit cleared) is below
/// `p = 2^255 - 19`, i.e. the encoding is the canonical one.
fn canonical_y(bytes: &[u8; PUBLIC_KEY_LEN]) -> bool {
    // p in little-endian: ed ff ff .. ff 7f. y >= p only when every byte above
    // the lowest is at its maximum and the lowest is at least 0xed.
    let top_max = bytes[31] & 0x7f == 0x7f;
    let middle_max = bytes[1..31].iter().all(|b| *b == 0xff);
    !(top_max && middle_max && bytes[0] >= 0xed)
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..8])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.as_bytes().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            PublicKey::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            let b = <[u8; 32]>::deserialize(d)?;
            PublicKey::from_bytes(&b).map_err(serde::de::Error::custom)
        }
    }
}

/// A 64-byte ed25519 signature. Decoding never fails; validity is checked only by
/// verification, so a malformed signature is simply a signature that does not verify.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..4]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let arr: [u8; 64] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(arr))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Signature, E> {
                let b = hex::decode(v).map_err(E::custom)?;
                self.visit_bytes(&b)
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_bytes(V)
        }
    }
}

/// An ed25519 key pair held in process memory. Used by the in-memory signer,
/// the plaintext localnet keystore, transaction signing in clients and tests.
/// The secret is zeroized on drop (dalek's `zeroize` feature).
pub struct Keypair {
    secret: SigningKey,
    public: PublicKey,
}

impl Keypair {
    /// Deterministic key pair from a 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let secret = SigningKey::from_bytes(seed);
        let public = PublicKey(secret.verifying_key());
        Keypair { secret, public }
    }

    /// A fresh key pair from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom_error::Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom_error::fill(seed.as_mut())?;
        Ok(Self::from_seed(&seed))
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The 32-byte secret seed. Callers must keep it in zeroizing memory.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// Signs raw bytes. Consensus code never calls this directly: it goes through
    /// the signing guard. Callers are responsible for domain separation
    /// (see [`crate::domain`]).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.secret.sign(message).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Keypair(public={:?}, secret=<redacted>)", self.public)
    }
}

/// OS randomness for key generation, behind a tiny wrapper so the rest of the
/// crate does not depend on the getrandom API.
pub mod getrandom_error {
    /// Failure to read OS randomness.
    #[derive(Debug, thiserror::Error)]
    #[error("operating system randomness unavailable: {0}")]
    pub struct Error(String);

    pub(crate) fn fill(buf: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(buf).map_err(|e| Error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let kp = Keypair::from_seed(&[7u8; 32]);
        let sig = kp.sign(b"hello");
        assert!(kp.public().verify(b"hello", &sig).is_ok());
        assert_eq!(
            kp.public().verify(b"hellO", &sig),
            Err(KeyError::BadSignature)
        );
        let mut bad = sig;
        bad.0[10] ^= 1;
        assert!(kp.public().verify(b"hello", &bad).is_err());
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1 (empty message).
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let kp = Keypair::from_seed(&seed);
        assert_eq!(
            kp.public().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = kp.sign(b"");
        assert_eq!(sig.to_hex(), "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    }

    #[test]
    fn weak_and_invalid_keys_refused() {
        // The identity point (all zeros but the sign byte layout) is small-order.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert_eq!(
            PublicKey::from_bytes(&ident),
            Err(KeyError::InvalidPublicKey)
        );
        // Every other small-order point too.
        for t in curve25519_dalek::constants::EIGHT_TORSION.iter() {
            assert_eq!(
                PublicKey::from_bytes(&t.compress().0),
                Err(KeyError::InvalidPublicKey)
            );
        }
    }

    #[test]
    fn non_canonical_key_encoding_refused() {
        // y = p + 2 encodes the same point as y = 2 if that is on the curve; find
        // a small y whose canonical encoding decodes, then add p.
        let p_plus = |y: u8| {
            let mut b = [0xffu8; 32];
            b[0] = 0xed_u8.wrapping_add(y);
            b[31] = 0x7f;
            b
        };
        let y = (0u8..18)
            .find(|&y| {
                let mut b = [0u8; 32];
                b[0] = y;
                PublicKey::from_bytes(&b).is_ok()
            })
            .expect("some small y is a valid key");
        let mut canonical = [0u8; 32];
        canonical[0] = y;
        let key = PublicKey::from_bytes(&canonical).unwrap();
        let alias = p_plus(y);
        // dalek decodes the alias to the same point; we refuse the second form.
        let decoded = VerifyingKey::from_bytes(&alias).unwrap();
        assert_eq!(decoded.to_edwards(), key.point());
        assert_eq!(
            PublicKey::from_bytes(&alias),
            Err(KeyError::InvalidPublicKey)
        );
    }

    proptest::proptest! {
        #[test]
        fn byte_canonical_check_matches_re_encoding(bytes: [u8; 32], low in 0u8..19) {
            // Random bytes, and the top of the range where y >= p.
            let mut near_p = [0xffu8; 32];
            near_p[0] = 0xed_u8.wrapping_add(low);
            near_p[31] = 0x7f | (bytes[31] & 0x80);
            for b in [bytes, near_p] {
                // Small-order points are refused anyway, whatever their encoding.
                let decoded = curve25519_dalek::edwards::CompressedEdwardsY(b).decompress();
                if let Some(p) = decoded.filter(|p| !p.is_small_order()) {
                    proptest::prop_assert_eq!(canonical_y(&b), p.compress().0 == b);
                }
            }
        }
    }

    #[test]
    fn serde_roundtrip() {
        let kp = Keypair::from_seed(&[1u8; 32]);
        let sig = kp.sign(b"m");
        let pk_bin = postcard::to_stdvec(&kp.public()).unwrap();
        assert_eq!(
            postcard::from_bytes::<PublicKey>(&pk_bin).unwrap(),
            kp.public()
        );
        let sig_bin = postcard::to_stdvec(&sig).unwrap();
        assert_eq!(postcard::from_bytes::<Signature>(&sig_bin).unwrap(), sig);
        let j = serde_json::to_string(&sig).unwrap();
        assert_eq!(serde_json::from_str::<Signature>(&j).unwrap(), sig);
        let j = serde_json::to_string(&kp.public()).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&j).unwrap(), kp.public());
        assert!(!format!("{kp:?}").contains(&hex::encode(kp.seed().as_ref())));
    }
}
