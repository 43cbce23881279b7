//! Batch signature verification that accepts exactly what [`PublicKey::verify`]
//! accepts, and isolates every bad signature.
//!
//! # Why batching needs care here
//!
//! Every node must reach the same verdict on every signature, however it happened
//! to group them: a transaction that one validator batch-verified and another
//! verified alone must be valid for both or for neither, or their state roots
//! diverge (DESIGN.md, invariant 5). [`PublicKey::verify`] is dalek's
//! `verify_strict`: `s < l`, `R` and `A` not of small order, and the encoding of
//! `[s]B - [k]A` must equal the `R` bytes *exactly* (cofactorless, canonical `R`).
//!
//! dalek's `verify_batch` checks a random linear combination
//! `sum z_i * ([s_i]B - [k_i]A_i - R_i) == 0` with 128-bit `z_i` derived from a hash
//! of the whole batch. It accepts things `verify_strict` refuses:
//!
//! * an `R` of small order, or a non-canonical encoding of `R` (it works on the
//!   decompressed point, strict compares bytes);
//! * an `R` or `A` with a *torsion component* (a point of order 2, 4 or 8 added to
//!   it). Then `D_i = [s_i]B - [k_i]A_i - R_i` can be a nonzero torsion point, and
//!   `z_i * D_i == 0` whenever `z_i` is a multiple of its order: probability 1/2
//!   for order 2, and since `z_i` is a deterministic hash of the batch, a signer
//!   can grind the message until a batch accepts. Checking "not small order" and
//!   "canonical" is not enough: `rB + T` is neither small order nor non-canonical.
//!
//! # What this module does
//!
//! A signature is *eligible* for a batch only when `s` is canonical, `R` is a
//! canonical encoding of a point that is not of small order and lies in the
//! prime-order subgroup, and `A` lies in the prime-order subgroup too. Every other
//! signature is verified alone with [`PublicKey::verify`]: eligibility only picks the
//! path, it never decides validity.
//!
//! For eligible signatures every `D_i` lies in the prime-order subgroup, so a passing
//! batch means every `D_i == 0` except with probability about 2^-128 per attempt
//! (the standard batch-verification bound, treating the transcript hash as a random
//! oracle), and `D_i == 0` with a canonical `R` is exactly strict's equation.
//! Conversely a batch of strictly valid signatures always passes. So a batch result
//! equals the conjunction of the individual results.
//!
//! When a batch fails it is bisected so each bad signature is found and every good
//! one still accepted; see `isolate` for the strategy and its worst case.
//!
//! # Cost (measured, and not in batching's favour)
//!
//! The subgroup check on `R` is a variable-base scalar multiplication, and with a
//! cofactorless acceptance rule it cannot be skipped: nothing cheaper tells `rB + T`
//! from `rB` with the public curve25519-dalek API. Public keys repeat (validators,
//! busy players), so their check runs once per distinct key per call. Measured on
//! the 2-core dev machine, 256 signatures, one thread:
//!
//! | path                                   | us per signature |
//! | -------------------------------------- | ---------------- |
//! | `PublicKey::verify` one by one         | 36               |
//! | dalek batch equation alone (inexact)   | 12               |
//! | `verify_batch`, all valid, 4 keys      | 41               |
//! | `verify_batch`, all valid, 256 keys    | 63               |
//! | `verify_batch`, one bad, 4 keys        | 62               |
//! | `verify_batch`, all bad, 4 keys        | 87               |
//!
//! So the exact batch is *not* faster than verifying one by one. Callers that only
//! need throughput get identical results from [`PublicKey::verify`] in a loop. A
//! real speed-up needs a different acceptance rule everywhere (cofactored, ZIP-215
//! style) together with a cofactored batch equation, which dalek 3 does not
//! provide; its batch equation is cofactorless.

use crate::keys::{PublicKey, Signature};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use std::collections::BTreeMap;

/// Largest number of signatures handed to one batch equation. Bounds the memory
/// and latency of a single call into dalek; longer inputs are cut into chunks.
pub const MAX_BATCH: usize = 256;

/// Failed batches at most this long are resolved one signature at a time: below
/// this size bisection costs more batch equations than it saves.
const VERIFY_ALONE_BELOW: usize = 4;

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

    fn verify_alone(&self) -> bool {
        self.key.verify(self.message, self.signature).is_ok()
    }
}

/// Verifies every item; `result[i]` is true iff `items[i].key.verify(..)` accepts.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Vec<bool> {
    let mut valid = vec![false; items.len()];
    // Subgroup check per distinct key, shared by all chunks of this call.
    let mut key_in_subgroup: BTreeMap<[u8; 32], bool> = BTreeMap::new();

    for (chunk_no, chunk) in items.chunks(MAX_BATCH).enumerate() {
        let first = chunk_no * MAX_BATCH;
        let mut eligible = Vec::with_capacity(chunk.len());
        for (offset, item) in chunk.iter().enumerate() {
            if batch_eligible(item, &mut key_in_subgroup) {
                eligible.push(first + offset);
            } else {
                valid[first + offset] = item.verify_alone();
            }
        }
        isolate(items, &eligible, false, &mut valid);
    }
    valid
}

/// Resolves the eligible items at `indices`, writing each verdict into `valid`.
///
/// `known_to_fail` says the batch equation over exactly `indices` already failed,
/// which lets us skip recomputing it. Strategy (bounded worst case):
/// * a passing batch accepts all its items;
/// * a failing batch is split in halves; if one half passes, the other must hold
///   the bad signatures and is bisected further without re-checking it;
/// * if both halves fail there are several bad signatures, and bisecting further
///   could cost `n log n` batch terms, so both halves are verified one by one.
///   Worst case (every signature bad) is then about two batch equations over the
///   input plus one strict verification each, instead of `n log n`.
///
/// Correctness never depends on these inferences: a verdict comes either from a
/// passing batch of eligible items or from [`PublicKey::verify`].
fn isolate(items: &[BatchItem<'_>], indices: &[usize], known_to_fail: bool, valid: &mut [bool]) {
    if indices.is_empty() {
        return;
    }
    if indices.len() < VERIFY_ALONE_BELOW {
        verify_each(items, indices, valid);
        return;
    }
    if !known_to_fail && batch_passes(items, indices) {
        accept_all(indices, valid);
        return;
    }
    let (left, right) = indices.split_at(indices.len() / 2);
    if batch_passes(items, left) {
        accept_all(left, valid);
        isolate(items, right, true, valid);
    } else if batch_passes(items, right) {
        accept_all(right, valid);
        isolate(items, left, true, valid);
    } else {
        verify_each(items, indices, valid);
    }
}

fn accept_all(indices: &[usize], valid: &mut [bool]) {
    for &i in indices {
        valid[i] = true;
    }
}

fn verify_each(items: &[BatchItem<'_>], indices: &[usize], valid: &mut [bool]) {
    for &i in indices {
        valid[i] = items[i].verify_alone();
    }
}

/// Runs dalek's batch equation over the items at `indices`.
fn batch_passes(items: &[BatchItem<'_>], indices: &[usize]) -> bool {
    let mut messages = Vec::with_capacity(indices.len());
    let mut signatures = Vec::with_capacity(indices.len());
    let mut keys = Vec::with_capacity(indices.len());
    for &i in indices {
        let item = &items[i];
        messages.push(item.message);
        signatures.push(ed25519_dalek::Signature::from_bytes(&item.signature.0));
        keys.push(*item.key.inner());
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// True when a passing batch equation proves `verify_strict` would accept this
/// item (see the module documentation for the argument).
fn batch_eligible(item: &BatchItem<'_>, key_in_subgroup: &mut BTreeMap<[u8; 32], bool>) -> bool {
    let (r_half, s_half) = item.signature.0.split_at(32);
    let (Ok(r_bytes), Ok(s_bytes)) = (<[u8; 32]>::try_from(r_half), <[u8; 32]>::try_from(s_half))
    else {
        return false;
    };
    // Non-canonical s: strict refuses it, and dalek would fail the whole batch.
    if bool::from(Scalar::from_canonical_bytes(s_bytes).is_none()) {
        return false;
    }
    let r_encoded = CompressedEdwardsY(r_bytes);
    let Some(r) = r_encoded.decompress() else {
        return false;
    };
    // Strict compares encodings; the batch equation only sees the point.
    if r.compress() != r_encoded {
        return false;
    }
    if r.is_small_order() || !in_prime_order_subgroup(&r) {
        return false;
    }
    *key_in_subgroup
        .entry(item.key.to_bytes())
        .or_insert_with(|| in_prime_order_subgroup(&item.key.inner().to_edwards()))
}

/// `[l]P == identity`, in variable time (the points are public, so constant time
/// buys nothing and costs ~30%). `l` itself is not representable as a `Scalar`
/// (it reduces to zero), hence `[l - 1]P + P`.
fn in_prime_order_subgroup(point: &EdwardsPoint) -> bool {
    let l_minus_one = -Scalar::ONE;
    (EdwardsPoint::vartime_multiscalar_mul([l_minus_one], [*point]) + point).is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
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

        fn items(&self) -> Vec<BatchItem<'_>> {
            (0..self.keys.len())
                .map(|i| BatchItem::new(&self.keys[i], &self.messages[i], &self.signatures[i]))
                .collect()
        }

        fn one_by_one(&self) -> Vec<bool> {
            self.items().iter().map(BatchItem::verify_alone).collect()
        }
    }

    #[test]
    fn all_valid_batch_accepts_everything() {
        let f = Fixture::valid(300, 7); // more than MAX_BATCH: two chunks
        assert_eq!(verify_batch(&f.items()), vec![true; 300]);
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
    fn subgroup_check_matches_dalek() {
        let p = EdwardsPoint::mul_base(&Scalar::from(12345u64));
        assert!(in_prime_order_subgroup(&p));
        assert!(in_prime_order_subgroup(&EdwardsPoint::default()));
        for t in EIGHT_TORSION.iter().skip(1) {
            let mixed = p + t;
            assert!(!in_prime_order_subgroup(&mixed));
            assert_eq!(in_prime_order_subgroup(&mixed), mixed.is_torsion_free());
        }
    }

    /// A signer that knows its secret scalar and can add torsion to `R` or `A`:
    /// the raw material for signatures that dalek's batch may accept while strict
    /// verification refuses them.
    struct RawSigner {
        a: Scalar,
        public: PublicKey,
        /// Torsion added to the public point (identity for a normal key).
        key_torsion: EdwardsPoint,
    }

    impl RawSigner {
        fn new(secret: u64, key_torsion: EdwardsPoint) -> Self {
            let a = Scalar::from(secret);
            let point = EdwardsPoint::mul_base(&a) + key_torsion;
            let public = PublicKey::from_bytes(&point.compress().0).unwrap();
            RawSigner {
                a,
                public,
                key_torsion,
            }
        }

        /// Signs with nonce point `rB + r_torsion`; returns the signature and `k`.
        fn sign(&self, r: u64, r_torsion: EdwardsPoint, msg: &[u8]) -> (Signature, Scalar) {
            let r = Scalar::from(r);
            let big_r = (EdwardsPoint::mul_base(&r) + r_torsion).compress();
            let mut h = Sha512::new();
            h.update(big_r.as_bytes());
            h.update(self.public.as_bytes());
            h.update(msg);
            let digest: [u8; 64] = h.finalize().into();
            let k = Scalar::from_bytes_mod_order_wide(&digest);
            let s = r + k * self.a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(big_r.as_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            (Signature(sig), k)
        }
    }

    fn dalek_batch_accepts(key: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
        let s = ed25519_dalek::Signature::from_bytes(&sig.0);
        ed25519_dalek::verify_batch(&[msg], &[s], &[*key.inner()]).is_ok()
    }

    /// Grinds messages until dalek's plain batch accepts a signature that strict
    /// verification refuses, and checks that `verify_batch` still refuses it. If the
    /// eligibility rules lost the subgroup checks, the last assertion would fail.
    fn assert_grinding_attack_fails(signer: &RawSigner, r_torsion: EdwardsPoint) {
        let order_two = EIGHT_TORSION[4];
        let mut found = false;
        for attempt in 0u64..128 {
            let msg = format!("grind {attempt}").into_bytes();
            let (sig, k) = signer.sign(1000 + attempt, r_torsion, &msg);
            // With a torsioned key, only odd k leaves a torsion term strict sees.
            if signer.key_torsion == order_two && k.as_bytes()[0] & 1 == 0 {
                continue;
            }
            assert!(signer.public.verify(&msg, &sig).is_err());
            if !dalek_batch_accepts(&signer.public, &msg, &sig) {
                continue;
            }
            found = true;
            // Batched alone and batched among valid signatures.
            assert_eq!(
                verify_batch(&[BatchItem::new(&signer.public, &msg, &sig)]),
                vec![false]
            );
            let f = Fixture::valid(8, 2);
            let mut items = f.items();
            items.insert(3, BatchItem::new(&signer.public, &msg, &sig));
            let expected: Vec<bool> = (0..9).map(|i| i != 3).collect();
            assert_eq!(verify_batch(&items), expected);
            break;
        }
        assert!(
            found,
            "dalek's batch never accepted the mixed-order signature"
        );
    }

    #[test]
    fn torsion_in_r_cannot_sneak_through_a_batch() {
        let signer = RawSigner::new(777, EdwardsPoint::default());
        assert_grinding_attack_fails(&signer, EIGHT_TORSION[4]);
    }

    #[test]
    fn torsion_in_key_cannot_sneak_through_a_batch() {
        let signer = RawSigner::new(778, EIGHT_TORSION[4]);
        assert_grinding_attack_fails(&signer, EdwardsPoint::default());
    }

    #[test]
    fn identity_r_cannot_sneak_through_a_batch() {
        // R = identity and s = k*a satisfy the batch equation exactly, for any
        // message: dalek's batch accepts, strict refuses the small-order R.
        let signer = RawSigner::new(780, EdwardsPoint::default());
        let msg = b"any message at all";
        let (sig, _) = signer.sign(0, EdwardsPoint::default(), msg);
        assert!(dalek_batch_accepts(&signer.public, msg, &sig));
        assert!(signer.public.verify(msg, &sig).is_err());
        let f = Fixture::valid(7, 2);
        let mut items = f.items();
        items.push(BatchItem::new(&signer.public, msg, &sig));
        let expected: Vec<bool> = (0..8).map(|i| i != 7).collect();
        assert_eq!(verify_batch(&items), expected);
    }

    #[test]
    fn strictly_valid_signature_under_torsioned_key_is_accepted() {
        // Strict accepts a key with a torsion component when k kills it (k even for
        // an order-2 component). Such items take the one-by-one path and must still
        // come out valid.
        let signer = RawSigner::new(779, EIGHT_TORSION[4]);
        let (msg, sig) = (0u64..64)
            .find_map(|i| {
                let msg = format!("even {i}").into_bytes();
                let (sig, k) = signer.sign(50 + i, EdwardsPoint::default(), &msg);
                (k.as_bytes()[0] & 1 == 0).then_some((msg, sig))
            })
            .unwrap();
        assert!(signer.public.verify(&msg, &sig).is_ok());
        let f = Fixture::valid(6, 2);
        let mut items = f.items();
        items.push(BatchItem::new(&signer.public, &msg, &sig));
        assert_eq!(verify_batch(&items), vec![true; 7]);
    }

    #[test]
    fn small_order_and_non_canonical_r_are_refused() {
        let f = Fixture::valid(5, 1);
        let mut sigs = f.signatures.clone();
        // R = identity, R = order-2 point, R = non-canonical encoding of y = 1 (p + 1).
        sigs[0].0[..32].copy_from_slice(EdwardsPoint::default().compress().as_bytes());
        sigs[1].0[..32].copy_from_slice(EIGHT_TORSION[4].compress().as_bytes());
        let mut p_plus_one = [0xffu8; 32];
        p_plus_one[0] = 0xee;
        p_plus_one[31] = 0x7f;
        sigs[2].0[..32].copy_from_slice(&p_plus_one);
        // s >= l (all ones in the top byte range).
        sigs[3].0[32..].copy_from_slice(&[0xff; 32]);
        let items: Vec<BatchItem<'_>> = (0..5)
            .map(|i| BatchItem::new(&f.keys[i], &f.messages[i], &sigs[i]))
            .collect();
        assert_eq!(verify_batch(&items), vec![false, false, false, false, true]);
    }

    #[test]
    fn base_point_is_in_subgroup() {
        assert!(in_prime_order_subgroup(&ED25519_BASEPOINT_POINT));
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        None,
        FlipSignatureBit(usize),
        FlipMessageBit(usize),
        TorsionR(usize),
        SwapKey,
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            4 => Just(Mutation::None),
            2 => (0usize..512).prop_map(Mutation::FlipSignatureBit),
            1 => (0usize..1024).prop_map(Mutation::FlipMessageBit),
            1 => (1usize..8).prop_map(Mutation::TorsionR),
            1 => Just(Mutation::SwapKey),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn batch_equals_one_by_one(mutations in proptest::collection::vec(mutation(), 0..40)) {
            let mut f = Fixture::valid(mutations.len(), 3);
            let other = Keypair::from_seed(&[200u8; 32]).public();
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
                }
            }
            let expected = f.one_by_one();
            prop_assert_eq!(verify_batch(&f.items()), expected.clone());
            // Unmutated items must be accepted, so the comparison is not vacuous.
            for (i, m) in mutations.iter().enumerate() {
                if matches!(m, Mutation::None) {
                    prop_assert!(expected[i]);
                }
            }
        }
    }
}
