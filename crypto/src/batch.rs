//! Batch signature verification under the one acceptance rule, with a fallback
//! that isolates every bad signature.
//!
//! A batch of `n` signatures is checked with one multi-scalar multiplication,
//! the cofactored batch equation of [`crate::verify`]:
//! `[8]( [-sum z_i s_i]B + sum [z_i]R_i + sum_A [sum_{i: A_i = A} z_i k_i]A ) == 0`.
//! Signatures under the same key share one term, which matters here: validators
//! and busy players sign many transactions each.
//!
//! The 128-bit weights `z_i` are derived from a blake3 hash of the whole batch
//! (every `R`, `s`, `k` and key), not drawn from an RNG: the verdict of a batch is
//! then a function of its contents, so a simulator seed replays identically, and a
//! signer cannot aim at weights it does not know before fixing its signature.
//! Because the equation is cofactored, a passing batch means every signature
//! passes [`PublicKey::verify`] except with probability about 2^-128, and a batch
//! of valid signatures always passes: the verdicts never depend on the grouping.
//!
//! When a batch fails it is bisected so each bad signature is found and every good
//! one still accepted; see `isolate` for the strategy and its worst case.
//!
//! Measured on the 2-core dev machine (one thread, `crypto::batch_verify` in
//! BENCHMARKS.md): a batch of 256 costs about a third of verifying its
//! signatures one by one.

use crate::fastmap::FastMap;
use crate::keys::{PublicKey, Signature};
use crate::verify::Parsed;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};

/// Largest number of signatures handed to one batch equation. Bounds the memory
/// and latency of a single multi-scalar multiplication; longer inputs are cut into
/// chunks.
pub const MAX_BATCH: usize = 256;

/// Failed batches at most this long are resolved one signature at a time: below
/// this size bisection costs more batch equations than it saves.
const VERIFY_ALONE_BELOW: usize = 4;

/// Domain of the hash that derives the batch weights.
const WEIGHTS_CONTEXT: &str = "bitcraps 2026-11 ed25519 batch weights";

/// One signature to verify. Borrows everything: building a batch copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub key: &'a PublicKey,
    pub message: &'a [u8],
    pub signature: &'a Signature,
}

impl<'a> BatchItem<'a> {
    pub fn new(key: &'a PublicKey, message: &'a [u8], signature: &'a Signature) -> Self {
        BatchItem {
            key,
            message,
            signature,
        }
    }
}

/// A parsed item: the signature parts, `k`, and the key.
struct Term<'a> {
    key: &'a PublicKey,
    sig: &'a Signature,
    parsed: Parsed,
}

/// Verifies every item; `result[i]` is true iff `items[i].key.verify(..)` accepts.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Vec<bool> {
    let mut valid = vec![false; items.len()];
    // A signature that does not parse (non-canonical s, R not a point) is invalid
    // alone and in any batch; it never enters an equation.
    let mut terms = Vec::with_capacity(items.len());
    let mut at = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(parsed) = Parsed::new(item.key.as_bytes(), item.message, item.signature) {
            terms.push(Term {
                key: item.key,
                sig: item.signature,
                parsed,
            });
            at.push(i);
        }
    }
    let mut term_valid = vec![false; terms.len()];
    let indices: Vec<usize> = (0..terms.len()).collect();
    for chunk in indices.chunks(MAX_BATCH) {
        isolate(&terms, chunk, false, &mut term_valid);
    }
    for (t, ok) in term_valid.into_iter().enumerate() {
        valid[at[t]] = ok;
    }
    valid
}

/// Resolves the terms at `indices`, writing each verdict into `valid`.
///
/// `known_to_fail` says the batch equation over exactly `indices` already failed,
/// which lets us skip recomputing it. Strategy (bounded worst case):
/// * a passing batch accepts all its items;
/// * a failing batch is split in halves; if one half passes, the other must hold
///   the bad signatures and is bisected further without re-checking it;
/// * if both halves fail there are several bad signatures, and bisecting further
///   could cost `n log n` batch terms, so both halves are verified one by one.
///   Worst case (every signature bad) is then about two batch equations over the
///   input plus one single verification each, instead of `n log n`.
///
/// Correctness never depends on these inferences: a verdict comes either from a
/// passing batch or from the single-signature equation.
fn isolate(terms: &[Term<'_>], indices: &[usize], known_to_fail: bool, valid: &mut [bool]) {
    if indices.is_empty() {
        return;
    }
    if indices.len() < VERIFY_ALONE_BELOW {
        verify_each(terms, indices, valid);
        return;
    }
    if !known_to_fail && batch_passes(terms, indices) {
        accept_all(indices, valid);
        return;
    }
    let (left, right) = indices.split_at(indices.len() / 2);
    if batch_passes(terms, left) {
        accept_all(left, valid);
        isolate(terms, right, true, valid);
    } else if batch_passes(terms, right) {
        accept_all(right, valid);
        isolate(terms, left, true, valid);
    } else {
        verify_each(terms, indices, valid);
    }
}

fn accept_all(indices: &[usize], valid: &mut [bool]) {
    for &i in indices {
        valid[i] = true;
    }
}

fn verify_each(terms: &[Term<'_>], indices: &[usize], valid: &mut [bool]) {
    for &i in indices {
        valid[i] = terms[i].parsed.check(&terms[i].key.point());
    }
}

/// The cofactored batch equation over the terms at `indices`.
fn batch_passes(terms: &[Term<'_>], indices: &[usize]) -> bool {
    let weights = weights(terms, indices);
    let mut scalars = Vec::with_capacity(2 * indices.len() + 1);
    let mut points = Vec::with_capacity(2 * indices.len() + 1);
    // B's coefficient goes first and is accumulated below.
    scalars.push(Scalar::ZERO);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    let mut key_slot: FastMap<&[u8; 32], usize> = FastMap::default();
    for (&i, z) in indices.iter().zip(&weights) {
        let t = &terms[i];
        scalars[0] -= z * t.parsed.s;
        scalars.push(*z);
        points.push(t.parsed.r);
        let zk = z * t.parsed.k;
        match key_slot.get(t.key.as_bytes()) {
            Some(&slot) => scalars[slot] += zk,
            None => {
                key_slot.insert(t.key.as_bytes(), scalars.len());
                scalars.push(zk);
                points.push(t.key.point());
            }
        }
    }
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

/// One 128-bit weight per term, from a hash of everything the terms contain.
fn weights(terms: &[Term<'_>], indices: &[usize]) -> Vec<Scalar> {
    let mut h = blake3::Hasher::new_derive_key(WEIGHTS_CONTEXT);
    h.update(&(indices.len() as u64).to_le_bytes());
    for &i in indices {
        let t = &terms[i];
        h.update(&t.sig.0);
        h.update(t.key.as_bytes());
        h.update(t.parsed.k.as_bytes());
    }
    let mut out = h.finalize_xof();
    indices
        .iter()
        .map(|_| {
            let mut z = [0u8; 32];
            out.fill(&mut z[..16]);
            Scalar::from_bytes_mod_order(z)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use proptest::prelude::*;
    use sha2::{Digest, Sha512};

    /// Owned test data from which `BatchItem`s are borrowed.
    struct Fixture {
        keys: Vec<PublicKey>,
        messages: Vec<Vec<u8>>,
        signatures: Vec<Signature>,
    }

    impl Fixture {
        fn valid(n: usize, distinct_keys: usize) -> Self {
            let pairs: Vec<Keypair> = (0..distinct_keys)
                .map(|k| Keypair::from_seed(&[k as u8 + 1; 32]))
                .collect();
            let mut f = Fixture {
                keys: Vec::new(),
                messages: Vec::new(),
                signatures: Vec::new(),
            };
            for i in 0..n {
                let kp = &pairs[i % distinct_keys];
                let msg = format!("message {i}").into_bytes();
                f.signatures.push(kp.sign(&msg));
                f.keys.push(kp.public());
                f.messages.push(msg);
            }
            f
        }

        fn push(&mut self, key: PublicKey, msg: &[u8], sig: Signature) {
            self.keys.push(key);
            self.messages.push(msg.to_vec());
            self.signatures.push(sig);
        }

        fn items(&self) -> Vec<BatchItem<'_>> {
            (0..self.keys.len())
                .map(|i| BatchItem::new(&self.keys[i], &self.messages[i], &self.signatures[i]))
                .collect()
        }

        fn one_by_one(&self) -> Vec<bool> {
            self.items()
                .iter()
                .map(|i| i.key.verify(i.message, i.signature).is_ok())
                .collect()
        }
    }

    #[test]
    fn all_valid_batch_accepts_everything() {
        let f = Fixture::valid(300, 7); // more than MAX_BATCH: two chunks
        assert_eq!(verify_batch(&f.items()), vec![true; 300]);
        let f = Fixture::valid(200, 200); // every key distinct
        assert_eq!(verify_batch(&f.items()), vec![true; 200]);
    }

    #[test]
    fn empty_batch_is_empty() {
        assert!(verify_batch(&[]).is_empty());
    }

    #[test]
    fn one_bad_signature_among_64_is_isolated() {
        for bad in [0usize, 17, 31, 32, 63] {
            let mut f = Fixture::valid(64, 5);
            f.signatures[bad].0[40] ^= 0x01; // s half: still canonical most of the time
            let result = verify_batch(&f.items());
            for (i, ok) in result.iter().enumerate() {
                assert_eq!(*ok, i != bad, "index {i} with bad index {bad}");
            }
        }
    }

    #[test]
    fn bad_message_and_several_bad_signatures_are_isolated() {
        let mut f = Fixture::valid(64, 3);
        let bad = [2usize, 3, 40, 41, 42, 63];
        for &b in &bad {
            f.messages[b].push(b'!');
        }
        let result = verify_batch(&f.items());
        for (i, ok) in result.iter().enumerate() {
            assert_eq!(*ok, !bad.contains(&i), "index {i}");
        }
    }

    #[test]
    fn a_signature_under_the_wrong_key_fails_even_when_the_key_repeats() {
        // Keys share one term in the equation; a swapped key must still be caught.
        let mut f = Fixture::valid(16, 2);
        f.keys[5] = f.keys[6];
        let expected: Vec<bool> = (0..16).map(|i| i != 5).collect();
        assert_eq!(verify_batch(&f.items()), expected);
    }

    /// A signer that knows its secret scalar and can add torsion to `R` or `A`:
    /// signatures that the cofactorless rule refuses and the cofactored one
    /// accepts, the case where dalek's own batch and `verify_strict` disagree.
    struct RawSigner {
        a: Scalar,
        public: PublicKey,
    }

    impl RawSigner {
        fn new(secret: u64, key_torsion: EdwardsPoint) -> Self {
            let a = Scalar::from(secret);
            let point = EdwardsPoint::mul_base(&a) + key_torsion;
            let public = PublicKey::from_bytes(&point.compress().0).unwrap();
            RawSigner { a, public }
        }

        /// Signs with nonce point `rB + r_torsion`, `R` encoded as `r_bytes` if given.
        fn sign_encoded(
            &self,
            r: u64,
            r_torsion: EdwardsPoint,
            r_bytes: Option<[u8; 32]>,
            msg: &[u8],
        ) -> Signature {
            let r = Scalar::from(r);
            let big_r =
                r_bytes.unwrap_or_else(|| (EdwardsPoint::mul_base(&r) + r_torsion).compress().0);
            let mut h = Sha512::new();
            h.update(big_r);
            h.update(self.public.as_bytes());
            h.update(msg);
            let digest: [u8; 64] = h.finalize().into();
            let k = Scalar::from_bytes_mod_order_wide(&digest);
            let s = r + k * self.a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&big_r);
            sig[32..].copy_from_slice(s.as_bytes());
            Signature(sig)
        }

        fn sign(&self, r: u64, r_torsion: EdwardsPoint, msg: &[u8]) -> Signature {
            self.sign_encoded(r, r_torsion, None, msg)
        }
    }

    fn strict_accepts(key: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).unwrap();
        vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .is_ok()
    }

    #[test]
    fn torsion_signatures_get_one_verdict_in_every_grouping() {
        // Mixed-order R (and a mixed-order key) with every torsion point: valid
        // under the cofactored rule, alone and batched, wherever they sit.
        let plain = RawSigner::new(777, EdwardsPoint::default());
        let torsioned_key = RawSigner::new(778, EIGHT_TORSION[4]);
        let mut f = Fixture::valid(8, 2);
        let mut strict_refused = 0;
        for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
            for signer in [&plain, &torsioned_key] {
                let msg = format!("torsion {t}").into_bytes();
                let sig = signer.sign(1000 + t as u64, *torsion, &msg);
                assert!(signer.public.verify(&msg, &sig).is_ok());
                strict_refused += usize::from(!strict_accepts(&signer.public, &msg, &sig));
                f.push(signer.public, &msg, sig);
            }
        }
        assert!(
            strict_refused > 0,
            "the fixture must hold what strict refuses"
        );
        let n = f.keys.len();
        assert_eq!(f.one_by_one(), vec![true; n]);
        assert_eq!(verify_batch(&f.items()), vec![true; n]);
        // Each alone, and in reverse order.
        for item in f.items() {
            assert_eq!(verify_batch(&[item]), vec![true]);
        }
        let mut reversed = f.items();
        reversed.reverse();
        assert_eq!(verify_batch(&reversed), vec![true; n]);
    }

    #[test]
    fn a_torsioned_signature_over_another_message_is_refused_in_a_batch() {
        let signer = RawSigner::new(779, EdwardsPoint::default());
        let mut f = Fixture::valid(9, 3);
        let sig = signer.sign(5, EIGHT_TORSION[2], b"pay 10");
        f.push(signer.public, b"pay 99", sig);
        let expected: Vec<bool> = (0..10).map(|i| i != 9).collect();
        assert_eq!(f.one_by_one(), expected);
        assert_eq!(verify_batch(&f.items()), expected);
    }

    #[test]
    fn small_order_and_non_canonical_r_follow_the_single_rule() {
        let owner = RawSigner::new(780, EdwardsPoint::default());
        let mut f = Fixture::valid(5, 1);
        // R = identity, s random: invalid.
        f.signatures[0].0[..32].copy_from_slice(EdwardsPoint::default().compress().as_bytes());
        // R = an order-2 point, s unchanged: invalid.
        f.signatures[1].0[..32].copy_from_slice(EIGHT_TORSION[4].compress().as_bytes());
        // s >= l: invalid.
        f.signatures[3].0[32..].copy_from_slice(&[0xff; 32]);
        // R = identity encoded non-canonically (y = p + 1), signed by the owner:
        // valid under ZIP-215 rules, alone and batched.
        let mut p_plus_one = [0xffu8; 32];
        p_plus_one[0] = 0xee;
        p_plus_one[31] = 0x7f;
        assert!(CompressedEdwardsY(p_plus_one).decompress().is_some());
        let sig = owner.sign_encoded(0, EdwardsPoint::default(), Some(p_plus_one), b"m");
        f.push(owner.public, b"m", sig);
        let expected = vec![false, false, true, false, true, true];
        assert_eq!(f.one_by_one(), expected);
        assert_eq!(verify_batch(&f.items()), expected);
    }

    #[test]
    fn errors_that_cancel_in_a_plain_sum_are_caught() {
        // Two signatures off by +d and -d: an unweighted sum of the equations
        // would balance and accept both. The weights make that fail.
        let signer = RawSigner::new(781, EdwardsPoint::default());
        let d = Scalar::from(12345u64);
        let mut a = signer.sign(11, EdwardsPoint::default(), b"one");
        let mut b = signer.sign(12, EdwardsPoint::default(), b"two");
        let sa = Scalar::from_canonical_bytes(a.0[32..].try_into().unwrap()).unwrap() + d;
        let sb = Scalar::from_canonical_bytes(b.0[32..].try_into().unwrap()).unwrap() - d;
        a.0[32..].copy_from_slice(sa.as_bytes());
        b.0[32..].copy_from_slice(sb.as_bytes());
        let mut f = Fixture::valid(6, 2);
        f.push(signer.public, b"one", a);
        f.push(signer.public, b"two", b);
        let expected = vec![true, true, true, true, true, true, false, false];
        assert_eq!(f.one_by_one(), expected);
        assert_eq!(verify_batch(&f.items()), expected);
        let pair: Vec<usize> = vec![6, 7];
        let terms = terms_of(&f);
        assert!(!batch_passes(&terms, &pair));
    }

    #[test]
    fn the_batch_equation_itself_accepts_torsion_signatures() {
        // Not only the verdicts (the fallback would fix those): the one
        // multi-scalar equation must pass, or batches of such signatures would
        // silently fall back to the slow path.
        let signer = RawSigner::new(782, EIGHT_TORSION[1]);
        let mut f = Fixture::valid(4, 2);
        for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
            let msg = [t as u8];
            f.push(
                signer.public,
                &msg,
                signer.sign(50 + t as u64, *torsion, &msg),
            );
        }
        let terms = terms_of(&f);
        let all: Vec<usize> = (0..terms.len()).collect();
        assert!(batch_passes(&terms, &all));
    }

    fn terms_of(f: &Fixture) -> Vec<Term<'_>> {
        (0..f.keys.len())
            .map(|i| Term {
                key: &f.keys[i],
                sig: &f.signatures[i],
                parsed: Parsed::new(f.keys[i].as_bytes(), &f.messages[i], &f.signatures[i])
                    .unwrap(),
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        None,
        FlipSignatureBit(usize),
        FlipMessageBit(usize),
        TorsionR(usize),
        SwapKey,
        /// Re-signed by the owner with a torsion component in R (valid).
        SignedTorsionR(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            4 => Just(Mutation::None),
            2 => (0usize..512).prop_map(Mutation::FlipSignatureBit),
            1 => (0usize..1024).prop_map(Mutation::FlipMessageBit),
            1 => (1usize..8).prop_map(Mutation::TorsionR),
            1 => Just(Mutation::SwapKey),
            1 => (1usize..8).prop_map(Mutation::SignedTorsionR),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn batch_equals_one_by_one(mutations in proptest::collection::vec(mutation(), 0..40)) {
            let mut f = Fixture::valid(mutations.len(), 3);
            let other = Keypair::from_seed(&[200u8; 32]).public();
            let raw = RawSigner::new(4321, EdwardsPoint::default());
            for (i, m) in mutations.iter().enumerate() {
                match *m {
                    Mutation::None => {}
                    Mutation::FlipSignatureBit(bit) => f.signatures[i].0[bit / 8] ^= 1 << (bit % 8),
                    Mutation::FlipMessageBit(bit) => {
                        let len = f.messages[i].len();
                        f.messages[i][(bit / 8) % len] ^= 1 << (bit % 8);
                    }
                    Mutation::TorsionR(t) => {
                        let r = CompressedEdwardsY(f.signatures[i].0[..32].try_into().unwrap())
                            .decompress()
                            .unwrap();
                        let mixed = (r + EIGHT_TORSION[t]).compress();
                        f.signatures[i].0[..32].copy_from_slice(mixed.as_bytes());
                    }
                    Mutation::SwapKey => f.keys[i] = other,
                    Mutation::SignedTorsionR(t) => {
                        f.keys[i] = raw.public;
                        f.signatures[i] = raw.sign(i as u64 + 1, EIGHT_TORSION[t], &f.messages[i]);
                    }
                }
            }
            let expected = f.one_by_one();
            prop_assert_eq!(verify_batch(&f.items()), expected.clone());
            // Unmutated and owner-signed items must be accepted, so the comparison
            // is not vacuous.
            for (i, m) in mutations.iter().enumerate() {
                if matches!(m, Mutation::None | Mutation::SignedTorsionR(_)) {
                    prop_assert!(expected[i]);
                }
            }
        }
    }
}
