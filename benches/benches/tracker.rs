//! Micro benchmarks of the correlation tracker, which every validator calls
//! once per stage per traced transaction (up to ~10 calls per tx on the
//! origin, ~6 on the others), so its cost per call bounds the tracing
//! overhead on the commit path.
//!
//! Names follow `module::op/param=value`:
//!
//! * `tracker::begin/entries=65536`: start tracking a new tx in a full
//!   tracker (each call also evicts the oldest entry: the steady state).
//! * `tracker::record/hit` and `tracker::record/miss`: one stage for a
//!   tracked tx, and the lookup for an untracked one (what every tx of a
//!   block costs when nothing traces it).
//! * `tracker::record_many/txs=1000`: one stage for a block's worth of txs
//!   under one lock.
//! * `tracker::get/txs=1`: `/api/v1/correlation/{id}`'s read.
//! * `tracker::stats/samples=4096`: `/api/v1/correlation/stats` with full
//!   latency rings (sorts 11 rings).

use bitcraps_benches::trace::{full_tracker, id, tx};
use bitcraps_crypto::Hash32;
use bitcraps_node::trace::tracker::{CorrelationTracker, Origin, Stage};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const ENTRIES: usize = 65_536;

/// A tracker holding `ENTRIES` executed txs (full rings of latency samples).
fn full() -> CorrelationTracker {
    full_tracker(ENTRIES)
}

fn tracker(c: &mut Criterion) {
    let t = full();
    let mut group = c.benchmark_group("tracker::begin");
    group.throughput(Throughput::Elements(1));
    let mut next = ENTRIES as u64;
    group.bench_function("entries=65536", |b| {
        b.iter(|| {
            next += 1;
            t.begin(id(next), tx(next), Origin::default(), Stage::Received, next);
        })
    });
    group.finish();

    let t = full();
    let hit = tx(ENTRIES as u64 - 1);
    let miss = tx(u64::MAX);
    let mut group = c.benchmark_group("tracker::record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hit", |b| {
        b.iter(|| t.record(black_box(&hit), Stage::Settled, 1))
    });
    group.bench_function("miss", |b| {
        b.iter(|| t.record(black_box(&miss), Stage::Voted, 1))
    });
    group.finish();

    let block: Vec<Hash32> = (ENTRIES as u64 - 1_000..ENTRIES as u64).map(tx).collect();
    let mut group = c.benchmark_group("tracker::record_many");
    group.throughput(Throughput::Elements(block.len() as u64));
    group.bench_function("txs=1000", |b| {
        b.iter(|| t.record_many(black_box(&block), Stage::Settled, 1))
    });
    group.finish();

    let wanted = id(ENTRIES as u64 / 2);
    let mut group = c.benchmark_group("tracker::get");
    group.throughput(Throughput::Elements(1));
    group.bench_function("txs=1", |b| b.iter(|| t.get(black_box(&wanted))));
    group.finish();

    let mut group = c.benchmark_group("tracker::stats");
    group.throughput(Throughput::Elements(1));
    group.bench_function("samples=4096", |b| b.iter(|| t.stats()));
    group.finish();
}

criterion_group!(benches, tracker);
criterion_main!(benches);
