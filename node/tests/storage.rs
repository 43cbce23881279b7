//! Storage tests against real redb files in temporary directories, including a
//! crash test that SIGKILLs a child process in the middle of writing.

#![cfg(feature = "server")]

use bitcraps_consensus::{
    Block, BlockHeader, Certificate, CommittedBlock, Proposal, Vote, VoteBody, WalEntry,
};
use bitcraps_crypto::{hash, Hash32, Keypair};
use bitcraps_node::storage::{
    StorageError, Store, StoreOptions, MAX_APP_VALUE_BYTES, MAX_RECORD_BYTES, MAX_UNSYNCED_COMMITS,
    SCHEMA_VERSION,
};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CHAIN: &str = "storage-test";

fn keys() -> Vec<Keypair> {
    (0..4u8).map(|i| Keypair::from_seed(&[i + 1; 32])).collect()
}

fn vote(kps: &[Keypair], signer: u16, body: VoteBody) -> Vote {
    Vote {
        body,
        signer,
        signature: kps[signer as usize].sign(&body.signing_bytes(CHAIN)),
    }
}

fn cert(kps: &[Keypair], body: VoteBody) -> Certificate {
    Certificate {
        body,
        signatures: (0..3u16)
            .map(|i| (i, kps[i as usize].sign(&body.signing_bytes(CHAIN))))
            .collect(),
    }
}

fn block(view: u64, height: u64, parent: Hash32, payload: Vec<u8>) -> Block {
    Block {
        header: BlockHeader {
            view,
            height,
            parent,
            parent_view: view.saturating_sub(1),
            proposer: 0,
            timestamp_ms: 1_700_000_000_000 + view,
            payload_hash: hash(&payload),
            payload_len: payload.len() as u32,
        },
        payload,
    }
}

/// A temporary directory (deleted when dropped), the database path in it,
/// and the validators' keys.
fn store_dir() -> (tempfile::TempDir, std::path::PathBuf, Vec<Keypair>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("node.redb");
    (dir, path, keys())
}

fn genesis_id() -> Hash32 {
    hash(b"genesis")
}

/// `n` committed blocks on top of `parent` (at `parent_height`), each finalized.
fn chain_on(kps: &[Keypair], parent: Hash32, parent_height: u64, n: u64) -> Vec<CommittedBlock> {
    let mut parent = parent;
    (1..=n)
        .map(|i| {
            let h = parent_height + i;
            let b = block(h * 2, h, parent, format!("payload {h}").into_bytes());
            parent = b.id();
            let finalization = cert(kps, VoteBody::finalize(b.header.view, b.id()));
            CommittedBlock {
                block: b,
                finalization,
            }
        })
        .collect()
}

fn tip(view: u64) -> WalEntry {
    WalEntry::Committed {
        view,
        height: view,
        id: hash(&view.to_le_bytes()),
        timestamp_ms: view,
    }
}

/// The committed-tip entry for a stored block, as the core writes it.
fn tip_of(cb: &CommittedBlock) -> WalEntry {
    WalEntry::Committed {
        view: cb.block.header.view,
        height: cb.block.header.height,
        id: cb.block.id(),
        timestamp_ms: cb.block.header.timestamp_ms,
    }
}

/// A finalized block on top of `parent` at `view`.
fn committed_at(
    kps: &[Keypair],
    view: u64,
    height: u64,
    parent: Hash32,
    payload: Vec<u8>,
) -> CommittedBlock {
    let b = block(view, height, parent, payload);
    let finalization = cert(kps, VoteBody::finalize(view, b.id()));
    CommittedBlock {
        block: b,
        finalization,
    }
}

fn nullify_vote(kps: &[Keypair], view: u64) -> WalEntry {
    WalEntry::OwnVote(vote(kps, 1, VoteBody::nullify(view)))
}

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

#[test]
fn wal_roundtrips_every_entry_kind() {
    let (_dir, path, kps) = store_dir();
    let b5 = block(5, 3, hash(b"parent"), vec![7u8; 1000]);
    let notarization = cert(&kps, VoteBody::notarize(4, hash(b"parent")));
    let proposal = Proposal {
        block: b5.clone(),
        vote: vote(&kps, 1, VoteBody::notarize(5, b5.id())),
        parent_certificate: Some(notarization.clone()),
        nullifications: vec![cert(&kps, VoteBody::nullify(3))],
    };
    let entries = vec![
        WalEntry::OwnVote(vote(&kps, 1, VoteBody::notarize(5, b5.id()))),
        WalEntry::OwnVote(vote(&kps, 1, VoteBody::finalize(5, b5.id()))),
        nullify_vote(&kps, 6),
        WalEntry::OwnProposal(proposal),
        WalEntry::Certificate(notarization),
        WalEntry::Certificate(cert(&kps, VoteBody::nullify(6))),
        WalEntry::Certificate(cert(&kps, VoteBody::finalize(5, b5.id()))),
        WalEntry::Block(b5.clone()),
        WalEntry::Block(block(7, 4, b5.id(), Vec::new())),
        WalEntry::Committed {
            view: 5,
            height: 3,
            id: b5.id(),
            timestamp_ms: 42,
        },
    ];
    {
        let mut store = Store::open(&path).unwrap();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(store.append(e).unwrap(), i as u64);
        }
        store.sync().unwrap();
        assert_eq!(store.wal().unwrap(), entries);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.wal().unwrap(), entries);
    let seqs: Vec<u64> = store
        .wal_with_seq()
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, (0..entries.len() as u64).collect::<Vec<_>>());
    assert_eq!(store.wal_len().unwrap(), entries.len() as u64);
}

#[test]
fn unsynced_appends_are_lost_synced_ones_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/node.redb");
    let kps = keys();
    {
        let mut store = Store::open(&path).unwrap();
        store.persist(&nullify_vote(&kps, 1), false).unwrap();
        store.persist(&nullify_vote(&kps, 2), true).unwrap();
        store.persist(&nullify_vote(&kps, 3), false).unwrap();
        store.append(&nullify_vote(&kps, 4)).unwrap();
        // Dropped without sync: like kill -9 after the appends.
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(
        store.wal().unwrap(),
        vec![nullify_vote(&kps, 1), nullify_vote(&kps, 2)]
    );
    // Sequence numbers continue above the survivors.
    assert!(store.append(&nullify_vote(&kps, 5)).unwrap() >= 2);
    store.close().unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.wal().unwrap().len(), 3);
}

#[test]
fn prune_matches_simulator_semantics() {
    let (_dir, path, kps) = store_dir();
    let mut store = Store::open(&path).unwrap();
    // Pruning stops at the newest durable block's view: put one far above.
    store
        .commit(&committed_at(&kps, 5_000, 1, genesis_id(), Vec::new()))
        .unwrap();
    store.sync_blocks().unwrap();
    let log = vec![
        nullify_vote(&kps, 1),
        tip(1),
        nullify_vote(&kps, 2),
        tip(2),
        nullify_vote(&kps, 3),
        tip(3),
        nullify_vote(&kps, 4),
        WalEntry::Certificate(cert(&kps, VoteBody::nullify(5))),
    ];
    for e in &log {
        store.append(e).unwrap();
    }
    store.sync().unwrap();
    // Buffered entries are pruned too.
    store.append(&nullify_vote(&kps, 2)).unwrap();
    store.prune(3).unwrap();
    let expected = vec![
        nullify_vote(&kps, 3),
        tip(3),
        nullify_vote(&kps, 4),
        WalEntry::Certificate(cert(&kps, VoteBody::nullify(5))),
    ];
    assert_eq!(store.wal().unwrap(), expected);

    // The newest tip is kept even below the prune view; older tips go.
    store.append(&tip(4)).unwrap();
    store.append(&nullify_vote(&kps, 9)).unwrap();
    store.prune(100).unwrap();
    assert_eq!(store.wal().unwrap(), vec![tip(4)]);

    // Sequence numbers never go back, even when pruning empties the table.
    store.append(&nullify_vote(&kps, 10)).unwrap();
    store.sync().unwrap();
    let last = store.wal_with_seq().unwrap().last().unwrap().0;
    store.prune(1000).unwrap();
    store.close().unwrap();
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.wal().unwrap(), vec![tip(4)]);
    assert!(store.append(&nullify_vote(&kps, 11)).unwrap() > last);
}

/// The WAL is never pruned at or above the newest durable block's view: a
/// crash may lose the blocks above it, and those entries commit them again.
#[test]
fn prune_keeps_what_recommits_undurable_blocks() {
    let (_dir, path, kps) = store_dir();
    // No flush thread: block 2 must stay undurable until the test says so.
    let options = StoreOptions {
        block_flush_ms: 0,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&path, options).unwrap();
    let b1 = committed_at(&kps, 10, 1, genesis_id(), Vec::new());
    store.commit(&b1).unwrap();
    store.sync_blocks().unwrap();
    // Committed but not durable: it does not raise the floor.
    let b2 = committed_at(&kps, 20, 2, b1.block.id(), Vec::new());
    store.commit(&b2).unwrap();
    for v in [5, 9, 10, 15, 20, 25] {
        store.append(&nullify_vote(&kps, v)).unwrap();
    }
    store.prune(25).unwrap();
    let views = |s: &Store| -> Vec<u64> { s.wal().unwrap().iter().map(WalEntry::view).collect() };
    assert_eq!(views(&store), vec![10, 15, 20, 25]);
    // Once block 2 is durable the rest can go.
    store.sync_blocks().unwrap();
    store.prune(25).unwrap();
    assert_eq!(views(&store), vec![20, 25]);
}

/// A restarted core replays the WAL without committed tips above the stored
/// chain, and with the stored tip: it re-delivers exactly the missing blocks.
#[test]
fn restore_log_matches_the_stored_chain() {
    let (_dir, path, kps) = store_dir();
    let chain = chain_on(&kps, genesis_id(), 0, 3);
    let lost = chain_on(&kps, chain[2].block.id(), 3, 2);
    {
        let mut store = Store::open(&path).unwrap();
        assert!(store.restore_log().unwrap().is_empty());
        for cb in &chain {
            store.commit(cb).unwrap();
            store.append(&tip_of(cb)).unwrap();
        }
        store.close().unwrap();
    }
    let vote = nullify_vote(&kps, 9);
    let mut store = Store::open(&path).unwrap();
    // As if blocks 4 and 5 were committed, their tips synced, and the
    // blocks lost in a crash.
    store.append(&tip_of(&lost[0])).unwrap();
    store.append(&vote).unwrap();
    store.append(&tip_of(&lost[1])).unwrap();
    store.sync().unwrap();
    let expected = vec![
        tip_of(&chain[0]),
        tip_of(&chain[1]),
        tip_of(&chain[2]),
        vote.clone(),
        tip_of(&chain[2]),
    ];
    assert_eq!(store.restore_log().unwrap(), expected);
    // With the blocks stored, the tips stay.
    for cb in &lost {
        store.commit(cb).unwrap();
    }
    let log = store.restore_log().unwrap();
    assert_eq!(log.len(), 7);
    assert_eq!(log[5], tip_of(&lost[1]));
    assert_eq!(log[6], tip_of(&lost[1]));
}

/// WAL rows as the redb layouts stored them: (seq, view, is tip, postcard).
fn wal_rows(entries: &[WalEntry]) -> Vec<(u64, u64, bool, Vec<u8>)> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let is_tip = matches!(e, WalEntry::Committed { .. });
            (
                i as u64,
                e.view(),
                is_tip,
                postcard::to_stdvec(e).expect("encodes"),
            )
        })
        .collect()
}

/// A database written by schema 1 (the WAL in the main file) opens as
/// schema 2: same WAL, same blocks and state, sequence numbers continue, and
/// the main file no longer has a WAL table.
#[test]
fn single_file_database_is_upgraded() {
    use redb::{ReadableDatabase, TableDefinition, TableHandle};
    type WalTable = TableDefinition<'static, u64, (u64, bool, &'static [u8])>;
    const WAL: WalTable = TableDefinition::new("wal");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let (_dir, path, kps) = store_dir();
    let chain = chain_on(&kps, genesis_id(), 0, 3);
    let entries = vec![
        nullify_vote(&kps, 1),
        tip_of(&chain[2]),
        nullify_vote(&kps, 8),
    ];
    let last_seq = {
        let mut store = Store::open(&path).unwrap();
        for cb in &chain {
            store
                .commit_with_state(cb, &[(b"k".to_vec(), Some(b"v".to_vec()))])
                .unwrap();
        }
        for e in &entries {
            store.append(e).unwrap();
        }
        store.close().unwrap();
        let store = Store::open(&path).unwrap();
        store.wal_with_seq().unwrap().last().unwrap().0
    };
    // Rewrite it as schema 1 wrote it: WAL rows and counter in the main file.
    let wal_file = bitcraps_node::storage::wal_path(&path);
    let rows = wal_rows(&entries);
    std::fs::remove_file(&wal_file).unwrap();
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(WAL).unwrap();
            for (seq, view, tip, bytes) in &rows {
                t.insert(*seq, (*view, *tip, bytes.as_slice())).unwrap();
            }
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("schema_version", 1).unwrap();
            meta.insert("wal_next_seq", last_seq + 5).unwrap();
        }
        txn.commit().unwrap();
    }
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.wal().unwrap(), entries);
        assert_eq!(store.committed_height().unwrap(), 3);
        assert_eq!(store.app_get(b"k").unwrap(), Some(b"v".to_vec()));
        // The stored counter survives the move.
        assert_eq!(store.append(&nullify_vote(&kps, 9)).unwrap(), last_seq + 5);
        store.close().unwrap();
    }
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(
        meta.get("schema_version").unwrap().unwrap().value(),
        SCHEMA_VERSION
    );
    assert!(meta.get("wal_next_seq").unwrap().is_none());
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    assert!(!tables.iter().any(|t| t == "wal"), "{tables:?}");
    drop((meta, txn, db));
    let store = Store::open(&path).unwrap();
    assert_eq!(store.wal().unwrap().len(), 4);
}

/// A WAL file of format 1 (a redb database beside a schema-2 main file) is
/// rewritten as the append-only log: same entries, the counter continues.
#[test]
fn redb_wal_file_is_upgraded() {
    use redb::TableDefinition;
    type WalTable = TableDefinition<'static, u64, (u64, bool, &'static [u8])>;
    const WAL: WalTable = TableDefinition::new("wal");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let (_dir, path, kps) = store_dir();
    let chain = chain_on(&kps, genesis_id(), 0, 2);
    {
        let mut store = Store::open(&path).unwrap();
        for cb in &chain {
            store.commit(cb).unwrap();
        }
        store.close().unwrap();
    }
    let entries = vec![
        nullify_vote(&kps, 3),
        tip_of(&chain[1]),
        nullify_vote(&kps, 4),
    ];
    let wal_file = bitcraps_node::storage::wal_path(&path);
    std::fs::remove_file(&wal_file).unwrap();
    {
        let db = redb::Database::create(&wal_file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(WAL).unwrap();
            for (seq, view, tip, bytes) in wal_rows(&entries) {
                t.insert(seq, (view, tip, bytes.as_slice())).unwrap();
            }
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("schema_version", 1).unwrap();
            meta.insert("wal_next_seq", 40).unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(std::fs::read(&wal_file).unwrap().starts_with(b"redb"));
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.wal().unwrap(), entries);
        assert_eq!(store.restore_log().unwrap().len(), 4);
        assert_eq!(store.append(&nullify_vote(&kps, 5)).unwrap(), 40);
        store.close().unwrap();
    }
    assert!(std::fs::read(&wal_file).unwrap().starts_with(b"BCWALLOG"));
    let store = Store::open(&path).unwrap();
    assert_eq!(store.wal().unwrap().len(), 4);
}

/// A crash that tears the last write leaves garbage after the last good
/// record: opening cuts it off, so what is appended next survives the next
/// restart (it would be unreachable behind the garbage otherwise).
#[test]
fn a_torn_wal_tail_is_cut_off_on_open() {
    use std::io::Write;
    let (_dir, path, kps) = store_dir();
    let wal_file = bitcraps_node::storage::wal_path(&path);
    {
        let mut store = Store::open(&path).unwrap();
        store.persist(&nullify_vote(&kps, 1), true).unwrap();
        store.persist(&nullify_vote(&kps, 2), true).unwrap();
    }
    let good_len = std::fs::metadata(&wal_file).unwrap().len();
    // Half of a third record, as a torn write leaves it.
    let third = postcard::to_stdvec(&nullify_vote(&kps, 3)).unwrap();
    let mut torn = vec![(third.len() + 17) as u8, 0, 0, 0];
    torn.extend_from_slice(&[0xAB; 20]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&wal_file)
        .unwrap()
        .write_all(&torn)
        .unwrap();
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(
            store.wal().unwrap(),
            vec![nullify_vote(&kps, 1), nullify_vote(&kps, 2)]
        );
        assert_eq!(std::fs::metadata(&wal_file).unwrap().len(), good_len);
        store.persist(&nullify_vote(&kps, 4), true).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.wal().unwrap(),
        vec![
            nullify_vote(&kps, 1),
            nullify_vote(&kps, 2),
            nullify_vote(&kps, 4)
        ]
    );
}

/// Pruned entries are dropped from the file by compaction: a long run keeps
/// the file within a bound, and what is live reads back the same, before and
/// after a restart.
#[test]
fn the_wal_file_is_compacted() {
    let (_dir, path, kps) = store_dir();
    let wal_file = bitcraps_node::storage::wal_path(&path);
    let mut store = Store::open(&path).unwrap();
    // Pruning is clamped to the durable block's view: put one far above.
    store
        .commit(&committed_at(&kps, 1_000_000, 1, genesis_id(), Vec::new()))
        .unwrap();
    store.sync_blocks().unwrap();
    // ~4 KB blocks, 5 views live at a time: ~24 MB appended in all.
    let payload = vec![7u8; 4096];
    let mut max_file = 0;
    let mut parent = genesis_id();
    for view in 1..=6_000u64 {
        let b = block(view, view, parent, payload.clone());
        parent = b.id();
        store.persist(&WalEntry::Block(b), true).unwrap();
        store
            .persist(&nullify_vote(&kps, view), view % 2 == 0)
            .unwrap();
        store.prune(view.saturating_sub(4)).unwrap();
        max_file = max_file.max(std::fs::metadata(&wal_file).unwrap().len());
    }
    let (file_len, live) = store.wal_footprint();
    assert_eq!(live, 10);
    assert!(
        max_file < 12 * 1024 * 1024,
        "the file reached {max_file} bytes"
    );
    assert!(file_len < 12 * 1024 * 1024);
    let views: Vec<u64> = store.wal().unwrap().iter().map(WalEntry::view).collect();
    assert_eq!(
        views,
        vec![5996, 5996, 5997, 5997, 5998, 5998, 5999, 5999, 6000, 6000]
    );
    let next = store.append(&nullify_vote(&kps, 6001)).unwrap();
    store.close().unwrap();
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.wal().unwrap().len(), 11);
    assert_eq!(store.append(&nullify_vote(&kps, 6002)).unwrap(), next + 1);
}

#[test]
fn commit_is_idempotent_and_serves_chains() {
    let (_dir, path, kps) = store_dir();
    let chain = chain_on(&kps, genesis_id(), 0, 10);
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.committed_height().unwrap(), 0);
        for cb in &chain {
            assert!(store.commit(cb).unwrap());
        }
        // Re-delivery after a restart is ignored.
        assert!(!store.commit(&chain[4]).unwrap());
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.committed_height().unwrap(), 10);
    assert!(!store.commit(&chain[9]).unwrap());
    assert!(!store.commit(&chain[0]).unwrap());

    // A different block at a stored height is a safety violation.
    let other = chain_on(&kps, hash(b"fork"), 4, 1).remove(0);
    assert!(matches!(
        store.commit(&other),
        Err(StorageError::Conflict { height: 5, .. })
    ));
    // Gaps and forks above the tip are refused.
    let gap = chain_on(&kps, chain[9].block.id(), 11, 1).remove(0);
    assert!(matches!(
        store.commit(&gap),
        Err(StorageError::NotContiguous {
            tip: 10,
            got: 12,
            ..
        })
    ));
    let fork = chain_on(&kps, chain[8].block.id(), 10, 1).remove(0);
    assert!(matches!(
        store.commit(&fork),
        Err(StorageError::NotContiguous {
            tip: 10,
            got: 11,
            ..
        })
    ));
    let next = chain_on(&kps, chain[9].block.id(), 10, 1).remove(0);
    assert!(store.commit(&next).unwrap());

    let heights =
        |blocks: Vec<Block>| -> Vec<u64> { blocks.into_iter().map(|b| b.header.height).collect() };
    let id7 = chain[6].block.id();
    assert_eq!(
        heights(store.chain_from(&id7, 3).unwrap()),
        vec![7, 6, 5, 4]
    );
    assert_eq!(heights(store.chain_from(&id7, 0).unwrap()), vec![7]);
    let id2 = chain[1].block.id();
    assert_eq!(heights(store.chain_from(&id2, 64).unwrap()), vec![2, 1]);
    assert!(store.chain_from(&hash(b"nope"), 5).unwrap().is_empty());
    assert_eq!(store.chain_from(&id7, 1).unwrap()[1], chain[5].block);

    assert_eq!(store.block_by_height(3).unwrap().unwrap(), chain[2]);
    assert_eq!(store.block_by_id(&id7).unwrap().unwrap(), chain[6]);
    assert_eq!(store.height_of(&id7).unwrap(), Some(7));
    assert!(store.block_by_height(99).unwrap().is_none());
    let range = store.range(3, 6).unwrap();
    assert_eq!(range, chain[2..5].to_vec());
    assert!(store.range(6, 6).unwrap().is_empty());
    assert_eq!(store.range(9, 1000).unwrap().len(), 3);
    // Both halves can move to other threads and tasks.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    send_sync::<bitcraps_node::storage::Reader>();
    // Readers on other threads see the same data.
    let reader = store.reader();
    let h = std::thread::spawn(move || reader.committed_height().unwrap());
    assert_eq!(h.join().unwrap(), 11);
}

#[test]
fn commit_with_state_is_atomic() {
    let (_dir, path, kps) = store_dir();
    let chain = chain_on(&kps, genesis_id(), 0, 3);
    let put = |k: &str, v: &str| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()));
    {
        let mut store = Store::open(&path).unwrap();
        assert!(store
            .commit_with_state(&chain[0], &[put("a", "1"), put("b", "1")])
            .unwrap());
        assert!(store
            .commit_with_state(&chain[1], &[put("a", "2"), (b"b".to_vec(), None)])
            .unwrap());
        // A repeat applies nothing.
        assert!(!store
            .commit_with_state(&chain[1], &[put("a", "X")])
            .unwrap());
        // An oversized write refuses the whole commit: neither block nor state.
        store.append(&nullify_vote(&kps, 9)).unwrap();
        let big = (b"c".to_vec(), Some(vec![0u8; MAX_APP_VALUE_BYTES + 1]));
        assert!(matches!(
            store.commit_with_state(&chain[2], &[put("a", "3"), big]),
            Err(StorageError::TooLarge { .. })
        ));
        assert_eq!(store.committed_height().unwrap(), 2);
        assert_eq!(store.app_get(b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.app_get(b"b").unwrap(), None);
        // The refused commit did not write the buffered WAL entry either.
        assert!(store.wal().unwrap().is_empty());
        // A block commit leaves the buffered WAL entries alone (they go to
        // the WAL file with the next sync).
        assert!(store
            .commit_with_state(&chain[2], &[put("a", "3"), put("z", "9")])
            .unwrap());
        assert!(store.wal().unwrap().is_empty());
        store.sync().unwrap();
        assert_eq!(store.wal().unwrap(), vec![nullify_vote(&kps, 9)]);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.committed_height().unwrap(), 3);
    assert_eq!(store.app_get(b"a").unwrap(), Some(b"3".to_vec()));
    assert_eq!(
        store.app_scan(None, 10).unwrap(),
        vec![
            (b"a".to_vec(), b"3".to_vec()),
            (b"z".to_vec(), b"9".to_vec())
        ]
    );
    assert_eq!(
        store.app_scan(Some(b"a"), 10).unwrap(),
        vec![(b"z".to_vec(), b"9".to_vec())]
    );
    assert_eq!(store.app_scan(None, 1).unwrap().len(), 1);
}

#[test]
fn oversized_wal_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("node.redb")).unwrap();
    let huge = WalEntry::Block(block(1, 1, genesis_id(), vec![0u8; MAX_RECORD_BYTES + 1]));
    assert!(matches!(
        store.append(&huge),
        Err(StorageError::TooLarge { .. })
    ));
}

#[test]
fn open_reports_bad_files_clearly() {
    let dir = tempfile::tempdir().unwrap();

    // Not a database at all.
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0xAB; 8192]).unwrap();
    let err = Store::open(&garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.redb"), "{err}");

    // A redb file with another schema version.
    let other = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut t = txn.open_table(meta).unwrap();
            t.insert("schema_version", SCHEMA_VERSION + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Store::open(&other).unwrap_err();
    assert!(
        matches!(err, StorageError::WrongVersion { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("schema version"), "{err}");

    // Only one writer.
    let path = dir.path().join("node.redb");
    let _store = Store::open(&path).unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StorageError::AlreadyOpen { .. })
    ));
}

#[test]
fn verify_on_open_reports_damage_as_corrupt() {
    let (_dir, path, kps) = store_dir();
    {
        let mut store = Store::open(&path).unwrap();
        for cb in chain_on(&kps, genesis_id(), 0, 50) {
            store.commit(&cb).unwrap();
        }
        store.close().unwrap();
    }
    // Damage the page that holds a committed block (found by its payload),
    // whatever the file's layout.
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"payload 25";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("block 25 is in the file");
    let page = at - at % 4096;
    let end = (page + 4096).min(bytes.len());
    for b in &mut bytes[page..end] {
        *b ^= 0x5A;
    }
    std::fs::write(&path, bytes).unwrap();
    let options = StoreOptions {
        verify_on_open: true,
        ..StoreOptions::default()
    };
    let err = Store::open_with(&path, options).unwrap_err();
    eprintln!("damaged: {err}");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

/// A child test's database path and number, from the two variables its
/// parent set; `None` when run as an ordinary test (or with a bad number,
/// which the parent sees as a child that did not crash).
fn child_args(path_var: &str, number_var: &str) -> Option<(String, u64)> {
    let path = std::env::var(path_var).ok()?;
    let n = std::env::var(number_var).ok()?.parse().ok()?;
    Some((path, n))
}

const CHILD_ENV: &str = "BITCRAPS_STORAGE_CRASH_CHILD";
const START_ENV: &str = "BITCRAPS_STORAGE_CRASH_START";

/// The child half of `kill_9_loses_nothing_synced`; does nothing unless run by it.
/// Appends and syncs WAL entries forever, reporting each synced view; every
/// few rounds commits a block with application state, and every few more
/// makes the blocks durable.
#[test]
fn crash_child() {
    let Some((path, start)) = child_args(CHILD_ENV, START_ENV) else {
        return;
    };
    let kps = keys();
    let mut store = Store::open(&path).unwrap();
    let mut height = store.committed_height().unwrap();
    let mut parent = match store.block_by_height(height).unwrap() {
        Some(cb) => cb.block.id(),
        None => genesis_id(),
    };
    let mut view = start;
    for round in 0u64.. {
        // A batch of votes plus a largish block, one fsync.
        for _ in 0..3 {
            view += 1;
            store.append(&nullify_vote(&kps, view)).unwrap();
        }
        view += 1;
        store
            .append(&WalEntry::Block(block(
                view,
                1,
                parent,
                vec![round as u8; 32 * 1024],
            )))
            .unwrap();
        store.sync().unwrap();
        println!("SYNCED {view}");
        if round % 4 == 3 {
            // Committed at the current view, its tip logged as the core
            // does; durable only when the blocks are synced below.
            view += 1;
            let cb = committed_at(&kps, view, height + 1, parent, Vec::new());
            let h = (height + 1).to_le_bytes().to_vec();
            let filler = (b"filler".to_vec(), Some(vec![round as u8; 8 * 1024]));
            assert!(store
                .commit_with_state(&cb, &[(b"height".to_vec(), Some(h)), filler])
                .unwrap());
            store.append(&tip_of(&cb)).unwrap();
            height += 1;
            parent = cb.block.id();
        }
        if round % 8 == 7 {
            store.sync_blocks().unwrap();
            println!("BLOCKS_SYNCED {height}");
        }
        if round % 10 == 9 {
            let floor = view - 20;
            store.prune(floor).unwrap();
            println!("PRUNED {floor}");
        }
    }
}

#[test]
fn kill_9_loses_nothing_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let exe = std::env::current_exe().unwrap();
    let mut floor = 0;
    // Blocks are durable once a block sync is reported.
    let mut durable_committed = 0;
    for run in 0..8u64 {
        let start = (run + 1) * 1_000_000;
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .env(START_ENV, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = 10 + random_u64() % 40;
        let mut synced = Vec::new();
        let mut killed = false;
        let mut record = |line: &str, synced: &mut Vec<u64>| {
            let mut parts = line.split_whitespace();
            let (Some(kind), Some(n)) = (parts.next(), parts.next()) else {
                return;
            };
            let Ok(n) = n.parse::<u64>() else { return };
            match kind {
                "SYNCED" => synced.push(n),
                "BLOCKS_SYNCED" => durable_committed = durable_committed.max(n),
                "PRUNED" => floor = floor.max(n),
                _ => {}
            }
        };
        for line in lines {
            record(&line.unwrap(), &mut synced);
            if !killed && synced.len() as u64 >= kill_after {
                // Let it get into the middle of the next write.
                std::thread::sleep(std::time::Duration::from_micros(random_u64() % 3000));
                child.kill().unwrap(); // SIGKILL
                killed = true;
            }
        }
        assert!(killed, "child exited before making progress");
        let status = child.wait().unwrap();
        assert!(!status.success());

        let options = StoreOptions {
            verify_on_open: run % 2 == 1,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&path, options).unwrap();
        let wal = store.wal().unwrap();
        let views: Vec<u64> = wal.iter().map(WalEntry::view).collect();
        assert!(views.windows(2).all(|w| w[0] < w[1]), "WAL out of order");
        // No durable block was lost, and blocks and state moved together.
        let height = store.committed_height().unwrap();
        eprintln!(
            "run {run}: killed after {} syncs reported; WAL {} entries, height {height}",
            synced.len(),
            wal.len()
        );
        assert!(
            height >= durable_committed,
            "{height} < {durable_committed}"
        );
        // Every synced entry the newest prune allowed is there, and nothing
        // at or above the stored tip's view was pruned, whatever was asked:
        // those entries commit the blocks a crash lost.
        let tip_view = store
            .block_by_height(height)
            .unwrap()
            .map_or(0, |cb| cb.block.header.view);
        for v in synced.iter().filter(|v| **v >= floor.min(tip_view)) {
            assert!(views.binary_search(v).is_ok(), "synced view {v} lost");
        }
        // The restored core's tip is the stored tip, never above it.
        let log = store.restore_log().unwrap();
        let tips: Vec<u64> = log
            .iter()
            .filter_map(|e| match e {
                WalEntry::Committed { height, .. } => Some(*height),
                _ => None,
            })
            .collect();
        assert!(tips.iter().all(|h| *h <= height), "{tips:?} above {height}");
        if height > 0 {
            assert_eq!(tips.last(), Some(&height));
        }
        let state = store.app_get(b"height").unwrap();
        if height > 0 {
            assert_eq!(state, Some(height.to_le_bytes().to_vec()));
        }
        if let Some(top) = store.block_by_height(height).unwrap() {
            let chain = store.chain_from(&top.block.id(), 1000).unwrap();
            assert_eq!(chain.len() as u64, height);
        }
    }
}

const ABORT_CHILD_ENV: &str = "BITCRAPS_STORAGE_ABORT_CHILD";
const ABORT_COMMITS_ENV: &str = "BITCRAPS_STORAGE_ABORT_COMMITS";
const ABORT_FLUSH_ENV: &str = "BITCRAPS_STORAGE_ABORT_FLUSH_MS";
/// How long the child leaves its flush thread before it aborts.
const ABORT_AFTER_FLUSH_MS: u64 = 1_000;

/// The child half of `commits_without_sync_are_bounded`; does nothing unless
/// run by it. Commits blocks with state and never syncs, then aborts (no
/// destructor runs: what a crash leaves). With a flush interval it first
/// gives the flush thread time to run.
#[test]
fn abort_child() {
    let Some((path, n)) = child_args(ABORT_CHILD_ENV, ABORT_COMMITS_ENV) else {
        return;
    };
    let flush_ms = std::env::var(ABORT_FLUSH_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let options = StoreOptions {
        block_flush_ms: flush_ms,
        ..StoreOptions::default()
    };
    let kps = keys();
    let mut store = Store::open_with(&path, options).unwrap();
    for cb in chain_on(&kps, genesis_id(), 0, n) {
        let h = cb.block.header.height.to_le_bytes().to_vec();
        assert!(store
            .commit_with_state(&cb, &[(b"height".to_vec(), Some(h))])
            .unwrap());
    }
    if flush_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(ABORT_AFTER_FLUSH_MS));
    }
    std::process::abort();
}

/// Blocks are committed without an fsync of their own, but never more than
/// `MAX_UNSYNCED_COMMITS` in a row: without the flush thread a crash loses at
/// most that many. The first run shows the commits really are unsynced (lost
/// to the crash), so the second run's survival is the bound's doing, and
/// the third's (a few commits, then idle) the flush thread's.
#[test]
fn commits_without_sync_are_bounded() {
    let exe = std::env::current_exe().unwrap();
    let max = u64::from(MAX_UNSYNCED_COMMITS);
    for (n, flush_ms, expected) in [(max - 1, 0, 0), (max + 3, 0, max), (5, 20, 5)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let status = Command::new(&exe)
            .args(["--exact", "abort_child", "--nocapture", "--test-threads=1"])
            .env(ABORT_CHILD_ENV, &path)
            .env(ABORT_COMMITS_ENV, n.to_string())
            .env(ABORT_FLUSH_ENV, flush_ms.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child must abort");
        let store = Store::open(&path).unwrap();
        let height = store.committed_height().unwrap();
        assert_eq!(height, expected, "{n} commits, then a crash");
        let state = store.app_get(b"height").unwrap();
        let want = (expected > 0).then(|| expected.to_le_bytes().to_vec());
        assert_eq!(state, want, "state moves with its block");
    }
}

/// Receipts stored per block are indexed by id in batches, found through
/// the recent height, the index or the per-transaction key of earlier
/// versions, and a newer stored receipt of the same id wins.
#[test]
fn receipts_are_indexed_by_id_and_found() {
    use bitcraps_node::app::state::{
        block_receipts_key, encode_receipts, receipt_key, Receipt, Rejection,
    };
    use bitcraps_node::engine::indexer::{find_receipt, index_batch, Batch};
    use bitcraps_node::storage::TxIndex;

    let receipt = |id: u8, height: u64, result| Receipt {
        hash: Hash32([id; 32]),
        height,
        index: 0,
        result,
    };
    let early = Err(Rejection::BadNonce {
        expected: 0,
        got: 1,
    });
    let (a1, b1, a3) = (
        receipt(1, 1, early),
        receipt(2, 1, Ok(())),
        receipt(1, 3, Ok(())),
    );
    let legacy = receipt(9, 2, Ok(()));
    let mut legacy_value = vec![1];
    legacy_value.extend(postcard::to_stdvec(&legacy).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("db")).unwrap();
    let chain = chain_on(&keys(), genesis_id(), 0, 4);
    let chunk = |h, rs: &[Receipt]| (block_receipts_key(h, 0), Some(encode_receipts(rs)));
    store
        .commit_with_state(&chain[0], &[chunk(1, &[a1, b1])])
        .unwrap();
    store
        .commit_with_state(
            &chain[1],
            &[(receipt_key(&legacy.hash), Some(legacy_value))],
        )
        .unwrap();
    store
        .commit_with_state(&chain[2], &[chunk(3, &[a3])])
        .unwrap();
    let reader = store.reader();
    let index = TxIndex::open(dir.path().join("txindex"), CHAIN).unwrap();
    let find = |id: u8, recent| find_receipt(&reader, Some(&index), recent, &Hash32([id; 32]));

    // Not indexed yet: only a recent height or the legacy key finds it.
    assert_eq!(find(2, None).unwrap(), None);
    assert_eq!(find(2, Some(1)).unwrap(), Some(b1));
    assert_eq!(find(9, None).unwrap(), Some(legacy));
    let batch = index_batch(&reader, &index).unwrap();
    assert_eq!(
        batch,
        Batch {
            blocks: 3,
            caught_up: true
        }
    );
    assert_eq!(index.indexed_height().unwrap(), 3);
    assert_eq!(
        find(1, None).unwrap(),
        Some(a3),
        "the newest stored receipt wins"
    );
    assert_eq!(find(2, None).unwrap(), Some(b1));
    // A wrong recent height falls through to the index.
    assert_eq!(find(2, Some(3)).unwrap(), Some(b1));
    assert_eq!(find(7, None).unwrap(), None);
    // Nothing new: caught up, nothing indexed.
    let idle = index_batch(&reader, &index).unwrap();
    assert_eq!(
        idle,
        Batch {
            blocks: 0,
            caught_up: true
        }
    );
    // A corrupt chunk is an error for the one lookup, not a wrong answer.
    store
        .commit_with_state(
            &chain[3],
            &[(block_receipts_key(4, 0), Some(vec![1, 0xff]))],
        )
        .unwrap();
    assert!(find(5, Some(4)).is_err());
    assert!(index_batch(&reader, &index).is_err());
    assert_eq!(
        index.indexed_height().unwrap(),
        3,
        "a failed batch moves nothing"
    );
}
