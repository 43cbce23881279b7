//! Threshold BLS beacon: dealing, recovery, uniqueness, fault handling, key
//! validation and encodings, through the public API only.

// Helpers outside #[test] functions unwrap too (a failure is a test failure).
#![allow(clippy::unwrap_used)]

use bitcraps_crypto::beacon::{
    deal, deal_from_seed, round_message, threshold_for, BeaconError, BeaconPublic, BeaconSignature,
    GroupPublicKey, PartialSignature, SecretShare, GROUP_KEY_BYTES, MAX_BEACON_PARTICIPANTS,
    PARTIAL_SIG_BYTES,
};
use proptest::prelude::*;

const CHAIN: &str = "beacon-test";

fn setup(n: u32, seed: u8) -> (BeaconPublic, Vec<SecretShare>) {
    let t = threshold_for(n);
    let (public, shares) = deal_from_seed(n, t, [seed; 32]).unwrap();
    assert_eq!(public.threshold, t);
    assert_eq!(public.participants(), n);
    assert_eq!(shares.len(), n as usize);
    (public, shares)
}

fn sign_all(shares: &[SecretShare], msg: &[u8]) -> Vec<PartialSignature> {
    shares.iter().map(|s| s.sign(msg)).collect()
}

/// A share with an arbitrary scalar at `index`: its signatures are well-formed
/// G1 points that are not the right partials for anyone.
fn rogue_share(index: u32, scalar_byte: u8) -> SecretShare {
    let mut b = [0u8; 36];
    b[..4].copy_from_slice(&index.to_be_bytes());
    b[4] = scalar_byte;
    b[5] = 0x5a;
    SecretShare::from_bytes(&b).unwrap()
}

/// Tiny deterministic generator for subset/order choices (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

#[test]
fn deal_recover_roundtrip() {
    for (n, t) in [(4u32, 3u32), (7, 5), (10, 7)] {
        assert_eq!(threshold_for(n), t);
        let (public, shares) = setup(n, n as u8);
        public.validate().unwrap();
        for round in [0u64, 1, u64::MAX] {
            let msg = round_message(CHAIN, round);
            let partials = sign_all(&shares, &msg);
            for p in &partials {
                public.verify_partial(&msg, p).unwrap();
            }
            let r = public.recover(&msg, &partials).unwrap();
            assert!(r.invalid.is_empty(), "n={n}");
            public.verify(&msg, &r.signature).unwrap();
            // Exactly t partials suffice.
            let r2 = public
                .recover(&msg, &partials[n as usize - t as usize..])
                .unwrap();
            assert_eq!(r2.signature, r.signature);
        }
    }
}

#[test]
fn any_t_subset_gives_the_same_signature() {
    // n = 4: every 3-subset, in every rotation.
    let (public, shares) = setup(4, 40);
    let msg = round_message(CHAIN, 17);
    let partials = sign_all(&shares, &msg);
    let reference = public.recover(&msg, &partials).unwrap().signature;
    for skip in 0..4 {
        let mut subset: Vec<_> = (0..4).filter(|&i| i != skip).map(|i| partials[i]).collect();
        for _ in 0..3 {
            subset.rotate_left(1);
            assert_eq!(public.recover(&msg, &subset).unwrap().signature, reference);
        }
    }
    // n = 7 and n = 10: random subsets of random sizes >= t in random orders.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in [7u32, 10] {
        let (public, shares) = setup(n, n as u8 + 100);
        let t = public.threshold as usize;
        let msg = round_message(CHAIN, 99);
        let partials = sign_all(&shares, &msg);
        let reference = public.recover(&msg, &partials).unwrap();
        assert!(reference.invalid.is_empty());
        for _ in 0..8 {
            let mut order = partials.clone();
            rng.shuffle(&mut order);
            let k = t + (rng.next() as usize % (n as usize - t + 1));
            let r = public.recover(&msg, &order[..k]).unwrap();
            assert_eq!(r.signature, reference.signature, "n={n} k={k}");
            assert_eq!(r.signature.randomness(), reference.signature.randomness());
        }
    }
}

#[test]
fn fewer_than_t_shares_fail() {
    for n in [4u32, 7, 10] {
        let (public, shares) = setup(n, n as u8 + 50);
        let t = public.threshold as usize;
        let msg = round_message(CHAIN, 5);
        let partials = sign_all(&shares[..t - 1], &msg);
        assert_eq!(
            public.recover(&msg, &partials),
            Err(BeaconError::NotEnoughShares {
                have: t - 1,
                need: t
            })
        );
        assert_eq!(
            public.recover(&msg, &[]),
            Err(BeaconError::NotEnoughShares { have: 0, need: t })
        );
    }
}

#[test]
fn duplicates_do_not_count_twice() {
    let (public, shares) = setup(7, 70);
    let t = public.threshold as usize;
    let msg = round_message(CHAIN, 8);
    let partials = sign_all(&shares[..t - 1], &msg);
    let mut doubled = partials.clone();
    doubled.extend_from_slice(&partials);
    doubled.push(partials[0]);
    assert_eq!(
        public.recover(&msg, &doubled),
        Err(BeaconError::NotEnoughShares {
            have: t - 1,
            need: t
        })
    );
    // A second, different partial under an index already present does not count
    // either, even if it verifies for another index's key.
    let mut relabelled = partials.clone();
    let extra = shares[t - 1].sign(&msg);
    relabelled.push(PartialSignature::from_parts(1, &extra.sig_bytes()).unwrap());
    assert!(matches!(
        public.recover(&msg, &relabelled),
        Err(BeaconError::NotEnoughShares { .. })
    ));
    // With duplicates plus one more honest partial, recovery works.
    doubled.push(extra);
    let r = public.recover(&msg, &doubled).unwrap();
    assert!(r.invalid.is_empty());
    public.verify(&msg, &r.signature).unwrap();
}

#[test]
fn corrupted_partials_are_detected_and_skipped() {
    let (public, shares) = setup(7, 77);
    let msg = round_message(CHAIN, 1234);
    let honest = sign_all(&shares, &msg);
    let reference = public.recover(&msg, &honest).unwrap().signature;

    // Three kinds of corruption, each put first so it is in the fast-path subset.
    let wrong_index = PartialSignature::from_parts(2, &honest[0].sig_bytes()).unwrap();
    let random_point = rogue_share(3, 0x42).sign(&msg);
    let other_round = shares[3].sign(&round_message(CHAIN, 1235));
    let other_chain = shares[4].sign(&round_message("other-chain", 1234));
    for (bad, idx) in [
        (wrong_index, 2u32),
        (random_point, 3),
        (other_round, 4),
        (other_chain, 5),
    ] {
        assert_eq!(
            public.verify_partial(&msg, &bad),
            Err(BeaconError::InvalidPartial { index: idx })
        );
        let mut partials = vec![bad];
        partials.extend(honest.iter().filter(|p| p.index != idx));
        let r = public.recover(&msg, &partials).unwrap();
        assert_eq!(r.invalid, vec![idx]);
        assert_eq!(r.signature, reference);
        // A bad first occurrence followed by the honest partial for the same index.
        let mut partials = vec![bad];
        partials.extend(honest.iter().copied());
        let r = public.recover(&msg, &partials).unwrap();
        assert_eq!(r.invalid, vec![idx]);
        assert_eq!(r.signature, reference);
    }

    // f = 2 byzantine partials together, honest ones after them: still fine.
    let mut partials = vec![wrong_index, other_round];
    partials.extend(honest.iter().filter(|p| p.index != 2 && p.index != 4));
    let r = public.recover(&msg, &partials).unwrap();
    assert_eq!(r.invalid, vec![2, 4]);
    assert_eq!(r.signature, reference);

    // Too many bad partials: not enough valid ones remain.
    let t = public.threshold as usize;
    let mut partials = vec![wrong_index, other_round];
    partials.extend(
        honest
            .iter()
            .filter(|p| p.index != 2 && p.index != 4)
            .take(t - 2),
    );
    assert_eq!(
        public.recover(&msg, &partials),
        Err(BeaconError::NotEnoughShares {
            have: t - 2,
            need: t
        })
    );
}

#[test]
fn signature_binds_round_chain_and_group_key() {
    let (public, shares) = setup(4, 11);
    let (other_public, _) = setup(4, 12);
    let msg = round_message(CHAIN, 42);
    let sig = public
        .recover(&msg, &sign_all(&shares, &msg))
        .unwrap()
        .signature;
    public.verify(&msg, &sig).unwrap();
    let err = Err(BeaconError::InvalidSignature);
    assert_eq!(public.verify(&round_message(CHAIN, 43), &sig), err);
    assert_eq!(public.verify(&round_message("other-chain", 42), &sig), err);
    assert_eq!(other_public.verify(&msg, &sig), err);

    // Different rounds give different randomness; the same round the same.
    let msg2 = round_message(CHAIN, 43);
    let sig2 = public
        .recover(&msg2, &sign_all(&shares, &msg2))
        .unwrap()
        .signature;
    assert_ne!(sig.randomness(), sig2.randomness());
    assert_eq!(
        sig.randomness(),
        BeaconSignature::from_bytes(&sig.to_bytes())
            .unwrap()
            .randomness()
    );
    // The randomness is domain separated from a plain hash of the signature.
    assert_ne!(sig.randomness(), bitcraps_crypto::hash(&sig.to_bytes()));

    // A partial set recovered against the wrong public data fails cleanly.
    let partials = sign_all(&shares, &msg);
    assert!(matches!(
        other_public.recover(&msg, &partials),
        Err(BeaconError::NotEnoughShares { have: 0, .. })
    ));
}

#[test]
fn validate_rejects_inconsistent_keys() {
    for n in [4u32, 7, 10] {
        let (public, _) = setup(n, n as u8 + 20);
        let (other, _) = setup(n, n as u8 + 21);
        public.validate().unwrap();
        let t = public.threshold as usize;

        // Wrong group key.
        let mut bad = public.clone();
        bad.group_key = other.group_key;
        let e = bad.validate().unwrap_err();
        assert!(
            matches!(e, BeaconError::Inconsistent(ref s) if s.contains("group key")),
            "{e}"
        );

        // A tampered share key among the first t, and one after them.
        for k in [0, t - 1, t, n as usize - 1] {
            let mut bad = public.clone();
            bad.share_keys[k] = other.share_keys[k];
            assert!(
                matches!(bad.validate(), Err(BeaconError::Inconsistent(_))),
                "n={n} k={k}"
            );
        }
        // Two share keys swapped.
        let mut bad = public.clone();
        bad.share_keys.swap(0, n as usize - 1);
        assert!(matches!(bad.validate(), Err(BeaconError::Inconsistent(_))));

        // A share key past the threshold names itself in the error.
        let mut bad = public.clone();
        bad.share_keys[n as usize - 1] = other.share_keys[0];
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(&format!("share key {n}")), "{e}");

        // Bad thresholds, a missing share key, a smaller threshold than dealt.
        for th in [0, n + 1] {
            let mut bad = public.clone();
            bad.threshold = th;
            assert_eq!(
                bad.validate(),
                Err(BeaconError::BadThreshold {
                    threshold: th,
                    participants: n
                })
            );
        }
        let mut bad = public.clone();
        bad.threshold -= 1;
        assert!(matches!(bad.validate(), Err(BeaconError::Inconsistent(_))));
        // Dropping the first share key shifts every index by one.
        let mut bad = public.clone();
        bad.share_keys.remove(0);
        assert!(matches!(bad.validate(), Err(BeaconError::Inconsistent(_))));
        let mut bad = public.clone();
        bad.share_keys.clear();
        assert!(matches!(
            bad.validate(),
            Err(BeaconError::BadThreshold { .. })
        ));
    }
    // A larger threshold than dealt is consistent (degree t-1 fits degree t): only
    // lowering it is unsafe, and that is rejected above.
}

#[test]
fn validate_and_recover_at_the_participant_cap() {
    // Not the full 256 (slow in debug builds), but large enough to exercise
    // the batched check with many targets.
    let n = 40;
    let (public, shares) = setup(n, 3);
    public.validate().unwrap();
    let msg = round_message(CHAIN, 1);
    let r = public.recover(&msg, &sign_all(&shares, &msg)).unwrap();
    public.verify(&msg, &r.signature).unwrap();
    assert!(MAX_BEACON_PARTICIPANTS >= n);
}

#[test]
fn serde_roundtrips() {
    let (public, shares) = setup(4, 33);
    let json = serde_json::to_value(&public).unwrap();
    let obj = json.as_object().unwrap();
    assert_eq!(obj.len(), 3);
    assert_eq!(obj["threshold"], 3);
    let gk = obj["group_key"].as_str().unwrap();
    assert_eq!(gk.len(), 2 * GROUP_KEY_BYTES);
    assert_eq!(gk, gk.to_lowercase());
    assert_eq!(gk, hex::encode(public.group_key.to_bytes()));
    let sk = obj["share_keys"].as_array().unwrap();
    assert_eq!(sk.len(), 4);
    assert_eq!(sk[1].as_str().unwrap(), public.share_keys[1].to_hex());
    let back: BeaconPublic = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, public);
    back.validate().unwrap();

    // Unknown fields and bad points are refused.
    let mut extra = json.clone();
    extra["dealer"] = serde_json::json!("me");
    assert!(serde_json::from_value::<BeaconPublic>(extra).is_err());
    let mut bad = json.clone();
    bad["group_key"] = serde_json::json!(format!("c0{}", "00".repeat(95))); // identity
    assert!(serde_json::from_value::<BeaconPublic>(bad).is_err());
    let mut bad = json;
    bad["share_keys"][0] = serde_json::json!("abcd");
    assert!(serde_json::from_value::<BeaconPublic>(bad).is_err());

    // postcard (binary) too.
    let bin = postcard::to_stdvec(&public).unwrap();
    assert_eq!(postcard::from_bytes::<BeaconPublic>(&bin).unwrap(), public);

    // Signatures and partials.
    let msg = round_message(CHAIN, 3);
    let partials = sign_all(&shares, &msg);
    let sig = public.recover(&msg, &partials).unwrap().signature;
    let js = serde_json::to_string(&sig).unwrap();
    assert_eq!(js, format!("\"{}\"", hex::encode(sig.to_bytes())));
    assert_eq!(js.len(), 2 * PARTIAL_SIG_BYTES + 2);
    assert_eq!(serde_json::from_str::<BeaconSignature>(&js).unwrap(), sig);
    let bin = postcard::to_stdvec(&sig).unwrap();
    assert_eq!(postcard::from_bytes::<BeaconSignature>(&bin).unwrap(), sig);

    let p = partials[2];
    let js = serde_json::to_value(p).unwrap();
    assert_eq!(js["index"], 3);
    assert_eq!(js["sig"].as_str().unwrap(), hex::encode(p.sig_bytes()));
    assert_eq!(
        serde_json::from_value::<PartialSignature>(js.clone()).unwrap(),
        p
    );
    let mut zero = js;
    zero["index"] = serde_json::json!(0);
    assert!(serde_json::from_value::<PartialSignature>(zero).is_err());
    let bin = postcard::to_stdvec(&p).unwrap();
    assert_eq!(postcard::from_bytes::<PartialSignature>(&bin).unwrap(), p);

    let gk = public.group_key;
    let js = serde_json::to_string(&gk).unwrap();
    assert_eq!(serde_json::from_str::<GroupPublicKey>(&js).unwrap(), gk);
}

#[test]
fn point_decoding_rejects_bad_points() {
    // Identity encodings (compression + infinity flags).
    let mut g1_inf = [0u8; 48];
    g1_inf[0] = 0xc0;
    let mut g2_inf = [0u8; 96];
    g2_inf[0] = 0xc0;
    assert_eq!(
        BeaconSignature::from_bytes(&g1_inf),
        Err(BeaconError::InvalidPoint)
    );
    assert_eq!(
        PartialSignature::from_parts(1, &g1_inf),
        Err(BeaconError::InvalidPoint)
    );
    assert_eq!(
        GroupPublicKey::from_bytes(&g2_inf),
        Err(BeaconError::InvalidPoint)
    );
    // Wrong lengths.
    assert_eq!(
        BeaconSignature::from_bytes(&[0u8; 47]),
        Err(BeaconError::BadLength {
            expected: 48,
            got: 47
        })
    );
    assert!(matches!(
        GroupPublicKey::from_bytes(&[0u8; 48]),
        Err(BeaconError::BadLength { .. })
    ));
    // Garbage.
    assert_eq!(
        BeaconSignature::from_bytes(&[0xffu8; 48]),
        Err(BeaconError::InvalidPoint)
    );
    assert_eq!(
        GroupPublicKey::from_bytes(&[0xffu8; 96]),
        Err(BeaconError::InvalidPoint)
    );
    // Partial indices.
    let (_, shares) = setup(4, 1);
    let sig = shares[0].sign(b"x").sig_bytes();
    assert_eq!(
        PartialSignature::from_parts(0, &sig),
        Err(BeaconError::BadIndex { index: 0 })
    );
    assert_eq!(
        PartialSignature::from_parts(MAX_BEACON_PARTICIPANTS + 1, &sig),
        Err(BeaconError::BadIndex { index: 257 })
    );
    assert_eq!(PartialSignature::from_parts(4, &sig).unwrap().index, 4);
}

/// Points on the curve but outside the prime-order subgroup must be refused
/// (they would break uniqueness). Found by trying small x coordinates with the
/// library's unchecked decoder.
#[test]
fn point_decoding_rejects_non_subgroup_points() {
    use bls12_381::{G1Affine, G2Affine};
    let mut found_g1 = false;
    for x in 1u8..=200 {
        let mut b = [0u8; 48];
        b[0] = 0x80;
        b[47] = x;
        if bool::from(G1Affine::from_compressed_unchecked(&b).is_some()) {
            assert!(bool::from(G1Affine::from_compressed(&b).is_none()));
            assert_eq!(
                BeaconSignature::from_bytes(&b),
                Err(BeaconError::InvalidPoint)
            );
            assert_eq!(
                PartialSignature::from_parts(1, &b),
                Err(BeaconError::InvalidPoint)
            );
            found_g1 = true;
            break;
        }
    }
    assert!(found_g1);
    let mut found_g2 = false;
    for x in 1u8..=200 {
        let mut b = [0u8; 96];
        b[0] = 0x80;
        b[95] = x;
        if bool::from(G2Affine::from_compressed_unchecked(&b).is_some()) {
            assert!(bool::from(G2Affine::from_compressed(&b).is_none()));
            assert_eq!(
                GroupPublicKey::from_bytes(&b),
                Err(BeaconError::InvalidPoint)
            );
            found_g2 = true;
            break;
        }
    }
    assert!(found_g2);
}

#[test]
fn secret_share_encoding() {
    let (public, shares) = setup(7, 9);
    for s in &shares {
        let b = s.to_bytes();
        assert_eq!(b.len(), 36);
        assert_eq!(&b[..4], &s.index().to_be_bytes());
        let back = SecretShare::from_bytes(b.as_ref()).unwrap();
        assert_eq!(back.index(), s.index());
        assert_eq!(back.to_bytes(), b);
        assert_eq!(back.public_key(), public.share_keys[s.index() as usize - 1]);
        let msg = round_message(CHAIN, 2);
        assert_eq!(back.sign(&msg), s.sign(&msg));
    }
    let good = shares[0].to_bytes();

    let mut zero_index = *good;
    zero_index[..4].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        SecretShare::from_bytes(&zero_index),
        Err(BeaconError::BadIndex { index: 0 })
    ));
    let mut big_index = *good;
    big_index[..4].copy_from_slice(&(MAX_BEACON_PARTICIPANTS + 1).to_be_bytes());
    assert!(matches!(
        SecretShare::from_bytes(&big_index),
        Err(BeaconError::BadIndex { .. })
    ));

    // The group order r (little-endian) and all-ones are not canonical; zero is
    // refused as a share.
    let r_le =
        hex::decode("01000000fffffffffe5bfeff02a4bd5305d8a10908d83933487d9d2953a7ed73").unwrap();
    for scalar in [r_le.clone(), vec![0xff; 32], vec![0; 32]] {
        let mut b = *good;
        b[4..].copy_from_slice(&scalar);
        assert!(
            matches!(SecretShare::from_bytes(&b), Err(BeaconError::InvalidScalar)),
            "{}",
            hex::encode(&scalar)
        );
    }
    // r - 1 is canonical.
    let mut r_minus_1 = r_le;
    r_minus_1[0] = 0;
    let mut b = *good;
    b[4..].copy_from_slice(&r_minus_1);
    SecretShare::from_bytes(&b).unwrap();

    assert!(matches!(
        SecretShare::from_bytes(&good[..35]),
        Err(BeaconError::BadLength { .. })
    ));
}

#[test]
fn secret_share_debug_hides_the_scalar() {
    let (_, shares) = setup(4, 5);
    for s in &shares {
        let b = s.to_bytes();
        let le = hex::encode(&b[4..]);
        let mut be_bytes = b[4..].to_vec();
        be_bytes.reverse();
        let be = hex::encode(&be_bytes);
        for dbg in [format!("{s:?}"), format!("{s:#?}")] {
            assert!(!dbg.contains(&le[..16]), "{dbg}");
            assert!(!dbg.contains(&be[..16]), "{dbg}");
            assert!(dbg.contains(&s.index().to_string()));
        }
    }
}

#[test]
fn seeded_deal_is_deterministic_and_os_deal_is_not() {
    let (a, sa) = deal_from_seed(7, 5, [1; 32]).unwrap();
    let (b, sb) = deal_from_seed(7, 5, [1; 32]).unwrap();
    assert_eq!(a, b);
    for (x, y) in sa.iter().zip(&sb) {
        assert_eq!(x.to_bytes(), y.to_bytes());
    }
    let (c, _) = deal_from_seed(7, 5, [2; 32]).unwrap();
    assert_ne!(a.group_key, c.group_key);

    let (d, sd) = deal(7, 5).unwrap();
    let (e, _) = deal(7, 5).unwrap();
    d.validate().unwrap();
    assert_ne!(d.group_key, e.group_key);
    let msg = round_message(CHAIN, 1);
    let r = d.recover(&msg, &sign_all(&sd, &msg)).unwrap();
    d.verify(&msg, &r.signature).unwrap();
    assert!(matches!(deal(3, 4), Err(BeaconError::BadThreshold { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any multiset of partials with at least t valid distinct indices recovers
    /// THE signature, and every corrupted index that recovery had to look at is
    /// reported; fewer than t valid distinct indices fail with NotEnoughShares.
    #[test]
    fn random_subsets_with_faults(
        picks in proptest::collection::vec((0usize..7, any::<bool>()), 0..12),
        round in any::<u64>(),
    ) {
        use std::sync::OnceLock;
        static SETUP: OnceLock<(BeaconPublic, Vec<[u8; 36]>)> = OnceLock::new();
        let (public, share_bytes) = SETUP.get_or_init(|| {
            let (p, s) = setup(7, 123);
            (p, s.iter().map(|s| *s.to_bytes()).collect())
        });
        let shares: Vec<SecretShare> =
            share_bytes.iter().map(|b| SecretShare::from_bytes(b).unwrap()).collect();
        let msg = round_message(CHAIN, round);
        let wrong = round_message(CHAIN, round.wrapping_add(1));
        let partials: Vec<PartialSignature> = picks
            .iter()
            .map(|&(i, bad)| if bad { shares[i].sign(&wrong) } else { shares[i].sign(&msg) })
            .collect();
        let valid_distinct: std::collections::BTreeSet<u32> =
            picks.iter().filter(|(_, bad)| !bad).map(|&(i, _)| i as u32 + 1).collect();
        let bad_indices: std::collections::BTreeSet<u32> =
            picks.iter().filter(|(_, bad)| *bad).map(|&(i, _)| i as u32 + 1).collect();
        let t = public.threshold as usize;
        match public.recover(&msg, &partials) {
            Ok(r) => {
                prop_assert!(valid_distinct.len() >= t);
                public.verify(&msg, &r.signature).unwrap();
                let reference = public.recover(&msg, &sign_all(&shares, &msg)).unwrap();
                prop_assert_eq!(r.signature, reference.signature);
                for i in &r.invalid {
                    prop_assert!(bad_indices.contains(i));
                }
            }
            Err(BeaconError::NotEnoughShares { have, need }) => {
                prop_assert_eq!(need, t);
                prop_assert!(valid_distinct.len() < t, "have {} valid {:?}", have, valid_distinct);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
