//! Micro benchmarks of the signature and hash primitives.
//!
//! Names follow `module::op/param=value`:
//!
//! * `crypto::sign/single`: one ed25519 signature over a notarize vote's
//!   signing bytes (~80 B), with an in-memory key.
//! * `crypto::verify/single`: `PublicKey::verify` (the cofactored rule of
//!   `bitcraps_crypto::verify`) of one such signature, as the core does for a vote.
//! * `crypto::batch_verify/n={64,256}`: the crate's batch
//!   (`bitcraps_crypto::batch::verify_batch`) over `n` valid signatures by 16
//!   distinct keys (a certificate stream repeats keys);
//!   `crypto::batch_verify/n=256,keys=256`: every signer different, as in a
//!   block of transactions from many players.
//! * `crypto::blake3/bytes={32,1024,65536,1048576}`: `bitcraps_crypto::hash`,
//!   throughput in bytes.
//! * `crypto::verify_parallel/threads=k`: 4096 signatures verified one by one,
//!   split in `k` contiguous chunks over `std::thread::scope` threads, for
//!   `k = 1..=max(2, available_parallelism)`. Thread start-up is included (one
//!   spawn per thread per iteration, ~10 µs against ~75 ms of work).

use bitcraps_benches::sigs::{bytes, items, signed, signed_by, thread_counts, verify_parallel};
use bitcraps_crypto::batch::verify_batch;
use bitcraps_crypto::{hash, Keypair};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// Signatures in the thread-scaling benchmark.
const PARALLEL_SIGNATURES: usize = 4096;

fn sign_verify(c: &mut Criterion) {
    let one = signed(1);
    let (key, msg, sig) = &one[0];
    let keypair = Keypair::from_seed(&[1; 32]);
    assert_eq!(keypair.public(), *key);

    let mut group = c.benchmark_group("crypto::sign");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| b.iter(|| keypair.sign(black_box(msg))));
    group.finish();

    let mut group = c.benchmark_group("crypto::verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        b.iter(|| black_box(key).verify(black_box(msg), black_box(sig)))
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto::batch_verify");
    for n in [64usize, 256] {
        let triples = signed(n);
        let items = items(&triples);
        assert!(verify_batch(&items).iter().all(|ok| *ok));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("n={n}"), |b| {
            b.iter(|| verify_batch(black_box(&items)))
        });
    }
    let triples = signed_by(256, 256);
    let items = items(&triples);
    assert!(verify_batch(&items).iter().all(|ok| *ok));
    group.throughput(Throughput::Elements(256));
    group.bench_function("n=256,keys=256", |b| {
        b.iter(|| verify_batch(black_box(&items)))
    });
    group.finish();
}

fn blake3(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto::blake3");
    for len in [32usize, 1024, 64 * 1024, 1024 * 1024] {
        let input = bytes(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("bytes={len}"), |b| {
            b.iter(|| hash(black_box(&input)))
        });
    }
    group.finish();
}

fn parallel(c: &mut Criterion) {
    let triples = signed(PARALLEL_SIGNATURES);
    let mut group = c.benchmark_group("crypto::verify_parallel");
    // ~150 ms per single-threaded iteration: 10 samples are plenty.
    group.sample_size(10);
    group.throughput(Throughput::Elements(PARALLEL_SIGNATURES as u64));
    for threads in thread_counts() {
        assert_eq!(verify_parallel(&triples, threads), PARALLEL_SIGNATURES);
        group.bench_function(format!("threads={threads}"), |b| {
            b.iter(|| verify_parallel(black_box(&triples), threads))
        });
    }
    group.finish();
}

criterion_group!(benches, sign_verify, batch, blake3, parallel);
criterion_main!(benches);
