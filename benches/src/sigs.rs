//! Signatures as the consensus core and the executor check them.

use bitcraps_crypto::batch::BatchItem;
use bitcraps_crypto::{hash, vote::VoteBody, Keypair, PublicKey, Signature};

/// A signed message: key, message bytes, signature.
pub type Signed = (PublicKey, Vec<u8>, Signature);

/// Distinct signing keys in [`signed`] (a certificate stream repeats keys).
pub const DISTINCT_KEYS: usize = 16;

/// `n` valid (key, message, signature) triples over [`DISTINCT_KEYS`] keys; each
/// message is a notarize vote's signing bytes (~80 B).
pub fn signed(n: usize) -> Vec<Signed> {
    signed_by(n, DISTINCT_KEYS)
}

/// Like [`signed`], over `distinct_keys` keys (`n` of them: every signer
/// different, as in a block of transactions from many players).
pub fn signed_by(n: usize, distinct_keys: usize) -> Vec<Signed> {
    let keys: Vec<Keypair> = (0..distinct_keys.max(1))
        .map(|i| {
            // The first 255 keys are the historical `[i + 1; 32]` seeds.
            let mut seed = [(i as u8).wrapping_add(1); 32];
            seed[31] ^= (i >> 8) as u8;
            Keypair::from_seed(&seed)
        })
        .collect();
    (0..n)
        .map(|i| {
            let k = &keys[i % keys.len()];
            let msg =
                VoteBody::notarize(i as u64 + 1, hash(&i.to_le_bytes())).signing_bytes("bench");
            let sig = k.sign(&msg);
            (k.public(), msg, sig)
        })
        .collect()
}

/// Borrowed batch items over `triples`.
pub fn items(triples: &[Signed]) -> Vec<BatchItem<'_>> {
    triples
        .iter()
        .map(|(k, m, s)| BatchItem::new(k, m, s))
        .collect()
}

/// Deterministic input bytes for hashing benchmarks.
pub fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Verifies every triple one by one with `PublicKey::verify`, the work split in
/// `threads` contiguous chunks on scoped threads (the calling thread takes the
/// first chunk). Returns how many verified.
pub fn verify_parallel(triples: &[Signed], threads: usize) -> usize {
    let verify_chunk = |chunk: &[Signed]| {
        chunk
            .iter()
            .filter(|(k, m, s)| k.verify(m, s).is_ok())
            .count()
    };
    let threads = threads.max(1);
    let chunk_len = triples.len().div_ceil(threads).max(1);
    let mut chunks = triples.chunks(chunk_len);
    let first = chunks.next().unwrap_or(&[]);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || verify_chunk(chunk)))
            .collect();
        let mine = verify_chunk(first);
        mine + handles
            .into_iter()
            .map(|h| h.join().expect("verifier thread panicked"))
            .sum::<usize>()
    })
}

/// The thread counts the scaling benchmark runs: `1..=max(2, available)`.
pub fn thread_counts() -> Vec<usize> {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    (1..=available.max(2)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_crypto::batch::verify_batch;

    #[test]
    fn fixtures_are_valid_and_parallel_verification_counts_all() {
        let t = signed(37);
        assert!(verify_batch(&items(&t)).iter().all(|ok| *ok));
        for threads in 1..=5 {
            assert_eq!(verify_parallel(&t, threads), 37, "threads={threads}");
        }
        let mut bad = t.clone();
        bad[20].1.push(0);
        assert_eq!(verify_parallel(&bad, 3), 36);
        assert!(thread_counts().len() >= 2);
    }
}
