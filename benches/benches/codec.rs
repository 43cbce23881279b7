//! Micro benchmarks of the wire codecs (throughput in encoded bytes).
//!
//! Names follow `module::op/param=value`:
//!
//! * `codec::{encode,decode}/message=vote`: a consensus notarize vote.
//! * `codec::{encode,decode}/message=proposal,payload=1KiB`: a proposal with a
//!   1 KiB payload and its parent's notarization (3 signatures).
//! * `codec::{encode,decode}/message=proposal,payload=1000x256B`: the same with a
//!   realistic payload: 1000 framed entries of 256 B (~254 KiB).
//! * `codec::{encode,decode}/tx={transfer,place_bet}`: a node transaction
//!   (`SignedTx`); decoding is strict (size, version, postcard, canonical
//!   re-encoding) and decompresses the sender's key (plus the recipient's for a
//!   transfer).

use bitcraps_benches::app::sample_txs;
use bitcraps_benches::chain::{Messages, PROPOSAL_TXS, PROPOSAL_TX_BYTES};
use bitcraps_consensus::Message;
use bitcraps_node::app::SignedTx;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn messages(c: &mut Criterion) {
    let m = Messages::new();
    let full = format!("message=proposal,payload={PROPOSAL_TXS}x{PROPOSAL_TX_BYTES}B");
    let cases = [
        ("message=vote".to_owned(), &m.vote),
        ("message=proposal,payload=1KiB".to_owned(), &m.proposal_1k),
        (full, &m.proposal_full),
    ];
    for (name, msg) in cases {
        let bytes = msg.encode();
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(msg));
        let mut group = c.benchmark_group("codec::encode");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(&name, |b| b.iter(|| black_box(msg).encode()));
        group.finish();
        let mut group = c.benchmark_group("codec::decode");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(&name, |b| b.iter(|| Message::decode(black_box(&bytes))));
        group.finish();
    }
}

fn txs(c: &mut Criterion) {
    let (transfer, bet) = sample_txs();
    for (name, tx) in [("tx=transfer", transfer), ("tx=place_bet", bet)] {
        let bytes = tx.encode();
        assert_eq!(SignedTx::decode(&bytes), Ok(tx));
        let mut group = c.benchmark_group("codec::encode");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| b.iter(|| black_box(&tx).encode()));
        group.finish();
        let mut group = c.benchmark_group("codec::decode");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| b.iter(|| SignedTx::decode(black_box(&bytes))));
        group.finish();
    }
}

criterion_group!(benches, messages, txs);
criterion_main!(benches);
