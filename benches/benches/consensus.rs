//! Micro benchmarks of the consensus core, its wire codec and signature checks.
//!
//! Names follow `area::what/param=value`:
//!
//! * `consensus::handle/validators=N`: a fresh core (a follower, `me = None`, so
//!   the numbers exclude the signer) fed a pre-generated stream of valid
//!   messages of a healthy N-validator chain: per view one proposal (with its
//!   parent's notarization), N-1 notarize votes, the notarization certificate,
//!   N-1 finalize votes and the finalization certificate; the core commits one
//!   block per view. Throughput in messages/s.
//! * `consensus::handle/kind=duplicate_vote`: a vote the core already counted
//!   (the cheap path before any signature check).
//! * `consensus::codec/{encode,decode}/message={vote,proposal}`: the wire codec
//!   (a proposal carries a 1 KiB payload and its parent's notarization).
//! * `crypto::verify/single` and `crypto::verify_batch/n={64,256}`: ed25519
//!   checks as the core does them for votes and certificates.

use bitcraps_chaos::sim::sim_genesis;
use bitcraps_consensus::{
    Block, BlockHeader, Certificate, Core, Genesis, Input, Message, Proposal, Vote, VoteBody,
};
use bitcraps_crypto::{
    batch::{verify_batch, BatchItem},
    hash, Hash32, Keypair, PublicKey, Signature,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;

/// Views in a generated stream (one committed block each).
const VIEWS: u64 = 40;

fn sign(genesis: &Genesis, keys: &[Keypair], signer: usize, body: VoteBody) -> Vote {
    Vote {
        body,
        signer: signer as u16,
        signature: keys[signer].sign(&body.signing_bytes(&genesis.chain_id)),
    }
}

fn cert(genesis: &Genesis, keys: &[Keypair], signers: &[usize], body: VoteBody) -> Certificate {
    Certificate {
        body,
        signatures: signers
            .iter()
            .map(|&i| (i as u16, sign(genesis, keys, i, body).signature))
            .collect(),
    }
}

fn child(
    parent: &BlockHeader,
    parent_id: Hash32,
    view: u64,
    proposer: u16,
    payload: Vec<u8>,
) -> Block {
    Block::new(
        view,
        parent.height + 1,
        parent_id,
        parent.view,
        proposer,
        parent.timestamp_ms + 1,
        payload,
    )
}

/// A healthy chain's traffic as seen by a follower: `(from, message)` pairs.
struct Stream {
    genesis: Genesis,
    messages: Vec<(u16, Message)>,
    /// Local time at which every block's timestamp is acceptable.
    now_ms: u64,
}

fn stream(n: usize) -> Stream {
    let (genesis, keys) = sim_genesis(n, 42);
    let set = genesis.validate().expect("valid genesis");
    let q = set.quorum();
    let g = genesis.block();
    let (mut parent, mut parent_id) = (g.header.clone(), g.id());
    let mut parent_cert: Option<Certificate> = None;
    let mut messages = Vec::new();
    for v in 1..=VIEWS {
        let leader = set.leader(v) as usize;
        let block = child(&parent, parent_id, v, leader as u16, vec![v as u8; 256]);
        let id = block.id();
        let others: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
        let proposal = Proposal {
            vote: sign(&genesis, &keys, leader, VoteBody::notarize(v, id)),
            block: block.clone(),
            parent_certificate: parent_cert.take(),
            nullifications: vec![],
        };
        messages.push((leader as u16, Message::Proposal(proposal)));
        for &i in &others {
            let vote = sign(&genesis, &keys, i, VoteBody::notarize(v, id));
            messages.push((i as u16, Message::Vote(vote)));
        }
        let mut signers: Vec<usize> = (0..n).collect();
        signers.truncate(q);
        let notarization = cert(&genesis, &keys, &signers, VoteBody::notarize(v, id));
        messages.push((leader as u16, Message::Certificate(notarization.clone())));
        for &i in &others {
            let vote = sign(&genesis, &keys, i, VoteBody::finalize(v, id));
            messages.push((i as u16, Message::Vote(vote)));
        }
        let finalization = cert(&genesis, &keys, &signers, VoteBody::finalize(v, id));
        messages.push((leader as u16, Message::Certificate(finalization)));
        parent_cert = Some(notarization);
        parent = block.header;
        parent_id = id;
    }
    Stream {
        now_ms: parent.timestamp_ms + 1,
        genesis,
        messages,
    }
}

/// Feeds the whole stream to a fresh follower core; returns its committed height.
fn replay(s: &Stream, mut core: Core) -> u64 {
    core.handle(s.now_ms, Input::Start);
    for (from, m) in &s.messages {
        let effects = core.handle(
            s.now_ms,
            Input::Message {
                from: *from,
                message: m.clone(),
            },
        );
        black_box(effects);
    }
    core.committed().height
}

fn handle(c: &mut Criterion) {
    let mut group = c.benchmark_group("consensus::handle");
    for n in [4usize, 7] {
        let s = stream(n);
        // The stream must really drive the core: one commit per view.
        let height = replay(&s, Core::new(&s.genesis, None).expect("core"));
        assert_eq!(height, VIEWS, "generated stream does not commit every view");
        group.throughput(Throughput::Elements(s.messages.len() as u64));
        group.bench_function(format!("validators={n}"), |b| {
            b.iter_batched(
                || Core::new(&s.genesis, None).expect("core"),
                |core| replay(&s, core),
                BatchSize::SmallInput,
            )
        });
    }

    // A vote the core has already counted.
    let (genesis, keys) = sim_genesis(4, 42);
    let mut core = Core::new(&genesis, None).expect("core");
    let now = genesis.genesis_time_ms + 1;
    core.handle(now, Input::Start);
    let vote = sign(&genesis, &keys, 2, VoteBody::notarize(1, hash(b"x")));
    let input = Input::Message {
        from: 2,
        message: Message::Vote(vote),
    };
    core.handle(now, input.clone());
    group.throughput(Throughput::Elements(1));
    group.bench_function("kind=duplicate_vote", |b| {
        b.iter_batched(
            || input.clone(),
            |i| core.handle(now, i),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    let (genesis, keys) = sim_genesis(4, 42);
    let g = genesis.block();
    let parent = child(&g.header, g.id(), 1, 1, vec![1; 64]);
    let block = child(&parent.header, parent.id(), 2, 2, vec![7; 1024]);
    let proposal = Message::Proposal(Proposal {
        vote: sign(&genesis, &keys, 2, VoteBody::notarize(2, block.id())),
        block,
        parent_certificate: Some(cert(
            &genesis,
            &keys,
            &[0, 1, 2],
            VoteBody::notarize(1, parent.id()),
        )),
        nullifications: vec![],
    });
    let vote = Message::Vote(sign(&genesis, &keys, 3, VoteBody::notarize(2, hash(b"b"))));

    let mut group = c.benchmark_group("consensus::codec");
    for (name, m) in [("vote", &vote), ("proposal", &proposal)] {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(m));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("encode/message={name}"), |b| {
            b.iter(|| black_box(m).encode())
        });
        group.bench_function(format!("decode/message={name}"), |b| {
            b.iter(|| Message::decode(black_box(&bytes)))
        });
    }
    group.finish();
}

/// `n` (key, message, signature) triples over 16 distinct keys, like the votes
/// of a certificate stream.
fn signed(n: usize) -> Vec<(PublicKey, Vec<u8>, Signature)> {
    let keys: Vec<Keypair> = (0..16u8)
        .map(|i| Keypair::from_seed(&[i + 1; 32]))
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

fn crypto(c: &mut Criterion) {
    let one = signed(1);
    let (key, msg, sig) = &one[0];
    let mut group = c.benchmark_group("crypto::verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        b.iter(|| black_box(key).verify(black_box(msg), black_box(sig)))
    });
    group.finish();

    let mut group = c.benchmark_group("crypto::verify_batch");
    for n in [64usize, 256] {
        let triples = signed(n);
        let items: Vec<BatchItem<'_>> = triples
            .iter()
            .map(|(k, m, s)| BatchItem::new(k, m, s))
            .collect();
        assert!(verify_batch(&items).iter().all(|ok| *ok));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("n={n}"), |b| {
            b.iter(|| verify_batch(black_box(&items)))
        });
    }
    group.finish();
}

criterion_group!(benches, handle, codec, crypto);
criterion_main!(benches);
