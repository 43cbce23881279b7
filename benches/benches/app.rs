//! Micro benchmarks of the application: block execution, the state root, the
//! mempool and payload building. Throughput in transactions (or leaves).
//!
//! Names follow `module::op/param=value`:
//!
//! * `game::execute/txs=N`: `AppState::execute_block` of a block of N signed,
//!   pre-verified transactions (one per player: half transfers to another
//!   player, half craps bets on 8 open tables), on a state with N+1 accounts
//!   and the tables. Pre-verified means the executor's `VerifiedCache` holds
//!   each transaction with its decoded form, as after mempool admission; the
//!   measured work is id hashing, the craps rules, balances, receipts, the
//!   storage writes and the incremental state-root update. The pre-state is
//!   cloned outside the measurement.
//! * `state::root/leaves=N`: `AppState::genesis` over N funded accounts: one
//!   crit-bit tree leaf per account, then the root (every branch hashed once).
//!   The tree itself is crate-private, so this goes through the public
//!   genesis path; it includes the accounts map (a small share).
//! * `mempool::insert/pending=10000`: admitting 1000 signed, pre-verified
//!   transfers (half the next nonce of a pending account, half new accounts)
//!   into a pool already holding 10000 (2500 accounts x 4 nonces); the pool
//!   clone is outside the measurement.
//! * `mempool::take_payload/txs=1000`: building one 1000-transaction proposal
//!   payload from that 10000-transaction pool (`Mempool::take_payload`).
//! * `payload::build/txs=1000`: framing 1000 encoded transfers with
//!   `PayloadBuilder` (the copy `take_payload` does per transaction).

use bitcraps_benches::app::{pool_config, root_genesis, GameBlock, PoolFixture, MAX_PAYLOAD_BYTES};
use bitcraps_node::app::{AppState, PayloadBuilder, MAX_TXS_PER_BLOCK};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;

const POOL_PENDING: usize = 10_000;
const POOL_INCOMING: usize = 1_000;
const PAYLOAD_TXS: usize = 1_000;

fn execute(c: &mut Criterion) {
    let mut group = c.benchmark_group("game::execute");
    for txs in [100usize, 1000] {
        let mut block = GameBlock::new(txs);
        let pre = block.pre.clone();
        group.throughput(Throughput::Elements(txs as u64));
        group.bench_function(format!("txs={txs}"), |b| {
            b.iter_batched(
                || pre.clone(),
                |mut s| {
                    let r = block.execute(&mut s);
                    (s, r)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn state_root(c: &mut Criterion) {
    let mut group = c.benchmark_group("state::root");
    for leaves in [1_000usize, 10_000] {
        let genesis = root_genesis(leaves);
        group.throughput(Throughput::Elements(leaves as u64));
        group.bench_function(format!("leaves={leaves}"), |b| {
            b.iter(|| AppState::genesis(black_box(&genesis)).state_root())
        });
    }
    group.finish();
}

fn mempool(c: &mut Criterion) {
    let f = PoolFixture::new(POOL_PENDING, POOL_INCOMING, pool_config(PAYLOAD_TXS));

    let mut group = c.benchmark_group("mempool::insert");
    group.throughput(Throughput::Elements(POOL_INCOMING as u64));
    group.bench_function(format!("pending={POOL_PENDING}"), |b| {
        b.iter_batched(
            || f.pool.clone(),
            |mut pool| {
                let admitted = f.admit(&mut pool);
                (pool, admitted)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("mempool::take_payload");
    group.throughput(Throughput::Elements(PAYLOAD_TXS as u64));
    let mut check = f.pool.clone();
    let (_, taken) = check.take_payload(1, MAX_PAYLOAD_BYTES, |_| 0);
    assert_eq!(taken.len(), PAYLOAD_TXS);
    group.bench_function(format!("txs={PAYLOAD_TXS}"), |b| {
        b.iter_batched(
            || f.pool.clone(),
            |mut pool| {
                let out = pool.take_payload(1, MAX_PAYLOAD_BYTES, |_| 0);
                (pool, out)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let encoded: Vec<&[u8]> = f
        .incoming
        .iter()
        .take(PAYLOAD_TXS)
        .map(|(_, e, _)| e.as_slice())
        .collect();
    assert_eq!(encoded.len(), PAYLOAD_TXS);
    let mut group = c.benchmark_group("payload::build");
    group.throughput(Throughput::Elements(PAYLOAD_TXS as u64));
    group.bench_function(format!("txs={PAYLOAD_TXS}"), |b| {
        b.iter(|| {
            let mut builder = PayloadBuilder::new(MAX_PAYLOAD_BYTES, MAX_TXS_PER_BLOCK);
            for e in black_box(&encoded) {
                builder.try_push(e);
            }
            builder.finish()
        })
    });
    group.finish();
}

criterion_group!(benches, execute, state_root, mempool);
criterion_main!(benches);
