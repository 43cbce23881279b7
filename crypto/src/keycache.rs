//! A bounded, process-wide cache of decoded public keys.
//!
//! Decoding a key is a point decompression (a field square root, ~8 µs), and a
//! node decodes the same few keys over and over: every transaction carries its
//! sender (and a transfer its recipient), and each one is decoded at admission,
//! on gossip and again when tracing or execution looks at it. Players and
//! validators repeat, so remembering the keys that decoded turns most of those
//! square roots into a hash lookup.
//!
//! Only valid keys are cached, and the cached value is exactly what decoding
//! would produce, so the cache can change timing, never a result. Two
//! generations bound it: lookups check the current map, then the previous one
//! (promoting a hit); when the current map reaches half of [`CAPACITY`] it
//! becomes the previous one and the oldest generation is dropped. A key that is
//! still in use therefore survives, and at most [`CAPACITY`] keys (~250 bytes
//! each) are held.

use crate::fastmap::FastMap;
use ed25519_dalek::VerifyingKey;
use std::sync::{Mutex, OnceLock};

/// Most keys held (both generations together).
pub const CAPACITY: usize = 16_384;

#[derive(Default)]
struct Generations {
    current: FastMap<[u8; 32], VerifyingKey>,
    previous: FastMap<[u8; 32], VerifyingKey>,
}

fn cache() -> &'static Mutex<Generations> {
    static CACHE: OnceLock<Mutex<Generations>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The cached decoding of `bytes`, if it was stored.
pub(crate) fn get(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    // A poisoned lock only means another thread panicked mid-insert; the maps
    // are still maps of valid keys.
    let mut g = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(vk) = g.current.get(bytes) {
        return Some(*vk);
    }
    let vk = g.previous.remove(bytes)?;
    insert_locked(&mut g, *bytes, vk);
    Some(vk)
}

/// Remembers that `bytes` decoded to the valid key `vk`.
pub(crate) fn put(bytes: [u8; 32], vk: VerifyingKey) {
    let mut g = cache().lock().unwrap_or_else(|p| p.into_inner());
    insert_locked(&mut g, bytes, vk);
}

fn insert_locked(g: &mut Generations, bytes: [u8; 32], vk: VerifyingKey) {
    if g.current.len() >= CAPACITY / 2 {
        g.previous = std::mem::take(&mut g.current);
    }
    g.current.insert(bytes, vk);
}

/// Keys held now (both generations).
pub fn len() -> usize {
    let g = cache().lock().unwrap_or_else(|p| p.into_inner());
    g.current.len() + g.previous.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Keypair, PublicKey};

    #[test]
    fn cache_stays_bounded_and_keeps_recent_keys() {
        // Far more distinct keys than the capacity: the cache never exceeds it,
        // and the key decoded last is still there.
        let keys: Vec<[u8; 32]> = (0..CAPACITY as u64 + 500)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&i.to_le_bytes());
                seed[8] = 0xcc;
                Keypair::from_seed(&seed).public().to_bytes()
            })
            .collect();
        for k in &keys {
            PublicKey::from_bytes(k).unwrap();
            assert!(len() <= CAPACITY);
        }
        assert!(get(keys.last().unwrap()).is_some());
    }

    #[test]
    fn cached_and_fresh_decodings_agree() {
        let k = Keypair::from_seed(&[0x5a; 32]).public().to_bytes();
        let first = PublicKey::from_bytes(&k).unwrap();
        let second = PublicKey::from_bytes(&k).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            get(&k).unwrap(),
            VerifyingKey::from_bytes(&k).unwrap(),
            "the cache holds exactly what decoding gives"
        );
        // Invalid keys are never cached and stay invalid.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(PublicKey::from_bytes(&ident).is_err());
        assert!(get(&ident).is_none());
        assert!(PublicKey::from_bytes(&ident).is_err());
    }
}
