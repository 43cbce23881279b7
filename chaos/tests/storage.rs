//! Crash semantics of the simulated WAL.

use bitcraps_chaos::storage::SimStorage;
use bitcraps_consensus::WalEntry;
use bitcraps_crypto::hash;

fn tip(view: u64) -> WalEntry {
    WalEntry::Committed {
        view,
        height: view,
        id: hash(&view.to_le_bytes()),
        timestamp_ms: view,
    }
}

#[test]
fn crash_drops_only_unsynced_entries() {
    let mut s = SimStorage::default();
    s.append(tip(1));
    s.sync();
    s.append(tip(2));
    s.crash();
    assert_eq!(s.wal(), vec![tip(1)]);
}

#[test]
fn prune_keeps_only_the_newest_tip() {
    let mut s = SimStorage::default();
    for v in 1..=5 {
        s.append(tip(v));
    }
    s.sync();
    s.prune(4);
    assert_eq!(s.wal(), vec![tip(5)]);
}
