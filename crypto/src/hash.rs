//! blake3 digests. One type, [`Hash32`], for every content address in the system.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero digest; used as "no block" (e.g. in nullify votes) and as the
    /// parent of the genesis block.
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        let v = hex::decode(s).map_err(|_| HexError::NotHex)?;
        let arr: [u8; 32] = v.try_into().map_err(|_| HexError::WrongLength(32))?;
        Ok(Hash32(arr))
    }

    /// First 8 hex characters, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

/// Errors parsing hex-encoded fixed-size values.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum HexError {
    #[error("not a hex string")]
    NotHex,
    #[error("wrong length: expected {0} bytes")]
    WrongLength(usize),
}

/// blake3 of `data`.
pub fn hash(data: &[u8]) -> Hash32 {
    Hash32(*blake3::hash(data).as_bytes())
}

/// blake3 over several parts with unambiguous framing (each part length-prefixed),
/// so `("ab","c")` and `("a","bc")` hash differently.
pub fn hash_parts(parts: &[&[u8]]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    Hash32(*h.finalize().as_bytes())
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.short())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Hash32::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            Ok(Hash32(<[u8; 32]>::deserialize(d)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_and_framing() {
        let h = hash(b"bitcraps");
        assert_eq!(Hash32::from_hex(&h.to_hex()).unwrap(), h);
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
        assert_eq!(Hash32::from_hex("zz"), Err(HexError::NotHex));
        assert_eq!(Hash32::from_hex("abcd"), Err(HexError::WrongLength(32)));
    }

    #[test]
    fn serde_binary_and_json() {
        let h = hash(b"x");
        let bin = postcard::to_stdvec(&h).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(postcard::from_bytes::<Hash32>(&bin).unwrap(), h);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", h.to_hex()));
        assert_eq!(serde_json::from_str::<Hash32>(&json).unwrap(), h);
    }
}
