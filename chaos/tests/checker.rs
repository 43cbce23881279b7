//! The checkers must be able to fail: feed them violations directly.

use bitcraps_chaos::checker::Checker;
use bitcraps_chaos::sim::sim_genesis;
use bitcraps_consensus::{Block, BlockHeader, Certificate, CommittedBlock, VoteBody};
use bitcraps_crypto::{hash, Hash32, Keypair};

fn block(height: u64, parent: Hash32, tag: u8) -> Block {
    let payload = vec![tag; 4];
    Block {
        header: BlockHeader {
            view: height,
            height,
            parent,
            parent_view: height - 1,
            proposer: 0,
            timestamp_ms: height,
            payload_hash: hash(&payload),
            payload_len: 4,
        },
        payload,
    }
}

fn committed(keys: &[Keypair], chain: &str, b: &Block, signers: &[u16]) -> CommittedBlock {
    let body = VoteBody::finalize(b.header.view, b.id());
    CommittedBlock {
        block: b.clone(),
        finalization: Certificate {
            body,
            signatures: signers
                .iter()
                .map(|i| (*i, keys[*i as usize].sign(&body.signing_bytes(chain))))
                .collect(),
        },
    }
}

#[test]
fn conflicting_commits_bad_links_and_weak_certificates_are_reported() {
    let (genesis, keys) = sim_genesis(4, 7);
    let gid = genesis.block().id();
    let chain = genesis.chain_id.clone();
    let mut c = Checker::new(genesis.validate().unwrap(), chain.clone(), gid);

    let a1 = block(1, gid, 1);
    c.on_commit(0, gid, &committed(&keys, &chain, &a1, &[0, 1, 2]));
    assert!(c.violations.is_empty(), "{:?}", c.violations);

    // Same height, different block, on another node.
    let b1 = block(1, gid, 2);
    c.on_commit(1, gid, &committed(&keys, &chain, &b1, &[0, 1, 2]));
    assert!(c
        .violations
        .iter()
        .any(|v| v.contains("conflicting commits at height 1")));

    // A block whose parent is not the previous commit.
    let n = c.violations.len();
    let bad = block(2, hash(b"elsewhere"), 3);
    c.on_commit(0, gid, &committed(&keys, &chain, &bad, &[0, 1, 2]));
    assert!(c.violations.len() > n);

    // A finalization with too few signers does not re-verify.
    let n = c.violations.len();
    let a2 = block(2, a1.id(), 4);
    c.on_commit(2, gid, &committed(&keys, &chain, &a2, &[0, 1]));
    assert!(c.violations[n..]
        .iter()
        .any(|v| v.contains("does not re-verify")));
}

#[test]
fn honest_double_signing_is_reported() {
    let (genesis, _) = sim_genesis(4, 7);
    let mut c = Checker::new(
        genesis.validate().unwrap(),
        genesis.chain_id.clone(),
        Hash32::ZERO,
    );
    c.on_signed(1, VoteBody::notarize(5, hash(b"a")));
    c.on_signed(1, VoteBody::notarize(5, hash(b"a")));
    assert!(c.violations.is_empty());
    c.on_signed(1, VoteBody::nullify(5));
    assert!(c.violations.is_empty(), "notarize then nullify is allowed");
    c.on_signed(1, VoteBody::finalize(5, hash(b"a")));
    assert_eq!(
        c.violations.len(),
        1,
        "finalize after nullify is a double sign"
    );
    c.on_signed(2, VoteBody::notarize(5, hash(b"a")));
    c.on_signed(2, VoteBody::notarize(5, hash(b"b")));
    assert_eq!(c.violations.len(), 2);
}
