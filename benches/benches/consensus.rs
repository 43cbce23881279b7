//! Micro benchmarks of the consensus core's message handling.
//!
//! Names follow `module::op/param=value`:
//!
//! * `consensus::handle/validators=N`: a fresh core (a follower, `me = None`, so
//!   the numbers exclude the signer) fed a pre-generated stream of valid
//!   messages of a healthy N-validator chain: per view one proposal (with its
//!   parent's notarization), N-1 notarize votes, the notarization certificate,
//!   N-1 finalize votes and the finalization certificate; the core commits one
//!   block per view, 40 views. Throughput in messages/s.
//! * `consensus::handle/kind=duplicate_vote`: a vote the core already counted
//!   (the cheap path before any signature check).
//!
//! The wire codec is in the `codec` bench, signature checks in `crypto`.

use bitcraps_benches::chain::{stream, DuplicateVote};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// Views in a generated stream (one committed block each).
const VIEWS: u64 = 40;

fn handle(c: &mut Criterion) {
    let mut group = c.benchmark_group("consensus::handle");
    for n in [4usize, 7] {
        let s = stream(n, VIEWS);
        // The stream must really drive the core: one commit per view.
        assert_eq!(
            s.replay(s.core()),
            VIEWS,
            "generated stream does not commit every view"
        );
        group.throughput(Throughput::Elements(s.messages.len() as u64));
        group.bench_function(format!("validators={n}"), |b| {
            b.iter_batched(|| s.core(), |core| s.replay(core), BatchSize::SmallInput)
        });
    }

    let mut dup = DuplicateVote::new();
    let input = dup.input.clone();
    group.throughput(Throughput::Elements(1));
    group.bench_function("kind=duplicate_vote", |b| {
        b.iter_batched(|| input.clone(), |i| dup.handle(i), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, handle);
criterion_main!(benches);
