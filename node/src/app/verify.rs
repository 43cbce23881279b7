//! Transaction signature verification: exact batches and a verdict cache.
//!
//! A node sees most transactions twice: when a client submits one (mempool
//! admission) and when a block carrying it executes. [`VerifiedCache`]
//! remembers the ids of transactions whose signature verified, so the second
//! time costs a hash-set lookup instead of ~40 us of curve arithmetic.
//!
//! Only *good* verdicts are cached. The id covers the whole encoding,
//! signature included, so a cached id can only ever stand for the exact bytes
//! that verified. The cache is per node and per chain: the caller must not
//! share one between chain ids.
//!
//! An entry can also keep the decoded transaction ([`VerifiedCache::insert_tx`]):
//! decoding costs ~9 us (two curve-point decompressions for the keys), which is
//! most of what executing a pre-verified transaction costs, and the same id
//! means the same bytes, so execution can reuse it. Such an entry takes about
//! 500 bytes, a hash-only one about 40.

use super::tx::SignedTx;
use crate::fifo::FifoMap;
use bitcraps_crypto::batch::{verify_batch, BatchItem};
use bitcraps_crypto::Hash32;

/// A bounded set of transaction ids whose signatures verified, optionally with
/// the decoded transaction. FIFO eviction, O(1) lookup and insert.
#[derive(Debug, Clone)]
pub struct VerifiedCache {
    map: FifoMap<Hash32, Option<Box<SignedTx>>>,
    /// False for a cache created with capacity 0: it remembers nothing.
    enabled: bool,
}

impl VerifiedCache {
    /// A cache holding at most `capacity` ids (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: FifoMap::new(capacity),
            enabled: capacity > 0,
        }
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.map.contains_key(hash)
    }

    /// The decoded transaction, if it was cached with [`Self::insert_tx`].
    pub fn get(&self, hash: &Hash32) -> Option<&SignedTx> {
        self.map.get(hash).and_then(|t| t.as_deref())
    }

    /// Remembers that `hash` verified, evicting the oldest entry when full.
    /// Re-inserting a present id does not refresh its age (FIFO, not LRU:
    /// cheaper, and an id is normally looked up once more, at execution).
    pub fn insert(&mut self, hash: Hash32) {
        self.put(hash, None);
    }

    /// Remembers that `tx`, whose id is `hash` (`== tx.hash()`; the caller
    /// computed it from the bytes it decoded `tx` from), verified.
    pub fn insert_tx(&mut self, hash: Hash32, tx: SignedTx) {
        self.put(hash, Some(Box::new(tx)));
    }

    fn put(&mut self, hash: Hash32, tx: Option<Box<SignedTx>>) {
        if !self.enabled {
            return;
        }
        let slot = self.map.get_or_insert_with(hash, || None);
        if slot.is_none() {
            *slot = tx;
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        if self.enabled {
            self.map.bound()
        } else {
            0
        }
    }
}

/// Verifies every transaction's signature for `chain_id`; `result[i]` is
/// exactly `txs[i].verify(chain_id).is_ok()`.
///
/// Uses crypto's exact batch verification, which works in chunks of
/// `batch::MAX_BATCH` and checks each distinct public key once per call, so
/// all transactions go into one call. The verdicts never depend on how the
/// transactions are grouped (see `bitcraps_crypto::batch`).
pub fn verify_txs(chain_id: &str, txs: &[&SignedTx]) -> Vec<bool> {
    let messages: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes(chain_id)).collect();
    let items: Vec<BatchItem<'_>> = txs
        .iter()
        .zip(&messages)
        .map(|(t, m)| BatchItem::new(&t.tx.from, m, &t.signature))
        .collect();
    verify_batch(&items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tx::{Action, Transaction};
    use bitcraps_crypto::{hash, Keypair};

    const CHAIN: &str = "bitcraps-test";

    #[test]
    fn batch_agrees_with_single_verification() {
        let keys: Vec<Keypair> = (1..=5u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let mut txs = Vec::new();
        for i in 0..300u64 {
            let k = &keys[(i % 5) as usize];
            let tx = Transaction {
                from: k.public(),
                nonce: i,
                action: Action::Transfer {
                    to: keys[0].public(),
                    amount: i,
                },
            };
            let signed = match i % 7 {
                // Wrong chain.
                1 => tx.sign("other", k),
                // Wrong key.
                2 => tx.sign(CHAIN, &keys[((i + 1) % 5) as usize]),
                // Corrupted signature.
                3 => {
                    let mut s = tx.sign(CHAIN, k);
                    s.signature.0[i as usize % 64] ^= 0x40;
                    s
                }
                _ => tx.sign(CHAIN, k),
            };
            txs.push(signed);
        }
        let refs: Vec<&SignedTx> = txs.iter().collect();
        let got = verify_txs(CHAIN, &refs);
        let want: Vec<bool> = txs.iter().map(|t| t.verify(CHAIN).is_ok()).collect();
        assert_eq!(got, want);
        let good = want.iter().filter(|v| **v).count();
        assert!(good > 100 && good < 250, "mix: {good} good");
        assert!(verify_txs(CHAIN, &[]).is_empty());
    }

    #[test]
    fn cache_is_bounded_fifo() {
        let mut c = VerifiedCache::new(3);
        let h: Vec<Hash32> = (0..5u8).map(|i| hash(&[i])).collect();
        for x in &h[..3] {
            c.insert(*x);
        }
        c.insert(h[0]); // no refresh
        assert_eq!(c.len(), 3);
        c.insert(h[3]);
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&h[0]), "oldest evicted");
        assert!(c.contains(&h[1]) && c.contains(&h[2]) && c.contains(&h[3]));
        for i in 0..100u8 {
            c.insert(hash(&[i, 1]));
            assert!(c.len() <= 3);
        }
        let mut off = VerifiedCache::new(0);
        off.insert(h[0]);
        assert!(off.is_empty() && !off.contains(&h[0]));

        // Decoded transactions ride along, and a hash-only entry can be upgraded.
        let k = Keypair::from_seed(&[1; 32]);
        let tx = Transaction {
            from: k.public(),
            nonce: 0,
            action: Action::Transfer {
                to: k.public(),
                amount: 1,
            },
        }
        .sign(CHAIN, &k);
        let mut c = VerifiedCache::new(2);
        c.insert(tx.hash());
        assert_eq!(c.get(&tx.hash()), None);
        c.insert_tx(tx.hash(), tx);
        assert_eq!(c.get(&tx.hash()), Some(&tx));
        assert_eq!(c.len(), 1);
        c.insert(h[0]);
        c.insert(h[1]);
        assert_eq!(c.get(&tx.hash()), None, "evicted");
    }
}
