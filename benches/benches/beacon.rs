//! Micro benchmarks of the threshold BLS randomness beacon (BLS12-381, min-sig).
//!
//! * `beacon::partial_sign`: one validator signs a round message (hash-to-G1 plus
//!   a constant-time G1 scalar multiplication).
//! * `beacon::verify_partial`: one partial against its share key (hash-to-G1, a
//!   two-term Miller loop, one final exponentiation).
//! * `beacon::verify`: a recovered signature against the group key (same cost).
//! * `beacon::recover/n=N`: the fast path from all `n` honest partials
//!   (interpolation of `t = n - (n-1)/3` of them plus one verification).
//! * `beacon::recover_one_bad/n=N`: the slow path: the first partial is for the
//!   wrong round, so the fast check fails and partials are verified one by one.
//! * `beacon::validate/n=N`: the genesis-time share-key consistency check.

use bitcraps_crypto::beacon::{deal_from_seed, round_message, threshold_for};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const CHAIN: &str = "bench";

fn single(c: &mut Criterion) {
    let (public, shares) = deal_from_seed(4, 3, [7; 32]).expect("deal");
    let msg = round_message(CHAIN, 1);
    let partial = shares[0].sign(&msg);
    public
        .verify_partial(&msg, &partial)
        .expect("valid partial");
    let partials: Vec<_> = shares.iter().map(|s| s.sign(&msg)).collect();
    let sig = public.recover(&msg, &partials).expect("recover").signature;

    c.bench_function("beacon::partial_sign", |b| {
        b.iter(|| shares[0].sign(black_box(&msg)))
    });
    c.bench_function("beacon::verify_partial", |b| {
        b.iter(|| public.verify_partial(black_box(&msg), black_box(&partial)))
    });
    c.bench_function("beacon::verify", |b| {
        b.iter(|| public.verify(black_box(&msg), black_box(&sig)))
    });
}

fn recover(c: &mut Criterion) {
    let mut group = c.benchmark_group("beacon::recover");
    for n in [4u32, 10] {
        let (public, shares) = deal_from_seed(n, threshold_for(n), [n as u8; 32]).expect("deal");
        let msg = round_message(CHAIN, 9);
        let partials: Vec<_> = shares.iter().map(|s| s.sign(&msg)).collect();
        assert!(public
            .recover(&msg, &partials)
            .expect("recover")
            .invalid
            .is_empty());
        group.bench_function(format!("n={n}"), |b| {
            b.iter(|| public.recover(black_box(&msg), black_box(&partials)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("beacon::recover_one_bad");
    for n in [4u32, 10] {
        let (public, shares) = deal_from_seed(n, threshold_for(n), [n as u8; 32]).expect("deal");
        let msg = round_message(CHAIN, 9);
        let mut partials: Vec<_> = shares.iter().map(|s| s.sign(&msg)).collect();
        partials[0] = shares[0].sign(&round_message(CHAIN, 10));
        assert_eq!(
            public.recover(&msg, &partials).expect("recover").invalid,
            vec![1]
        );
        group.bench_function(format!("n={n}"), |b| {
            b.iter(|| public.recover(black_box(&msg), black_box(&partials)))
        });
    }
    group.finish();
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("beacon::validate");
    group.sample_size(10);
    for n in [10u32, 64] {
        let (public, _) = deal_from_seed(n, threshold_for(n), [3; 32]).expect("deal");
        public.validate().expect("valid");
        group.bench_function(format!("n={n}"), |b| {
            b.iter(|| black_box(&public).validate())
        });
    }
    group.finish();
}

criterion_group!(benches, single, recover, validate);
criterion_main!(benches);
