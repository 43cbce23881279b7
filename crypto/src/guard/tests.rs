//! Tests for the signing guard. Async calls are driven with `block_on_ready`: the
//! in-memory signer and an uncontended mutex complete on the first poll, exactly as
//! in the deterministic simulator.

use super::file::{sibling, FILE_BYTES, SLOT_BYTES, SLOT_MAGIC, V1_MAGIC};
use super::*;
use crate::hash::hash;
use crate::signer::{block_on_ready, InMemorySigner, SignFuture};
use proptest::prelude::*;
use std::fs;
use std::future::Future;
use std::sync::atomic::AtomicUsize;

const CHAIN: &str = "bitcraps-test";

/// An in-memory signer that counts how often it is asked to sign.
#[derive(Debug)]
struct CountingSigner {
    inner: InMemorySigner,
    calls: Arc<AtomicUsize>,
}

impl CountingSigner {
    fn new(seed: u8) -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let signer = CountingSigner {
            inner: InMemorySigner::from_seed(&[seed; 32]),
            calls: calls.clone(),
        };
        (signer, calls)
    }
}

impl Signer for CountingSigner {
    fn public_key(&self) -> PublicKey {
        self.inner.public_key()
    }
    fn backend(&self) -> &'static str {
        "counting"
    }
    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.sign(message)
    }
}

/// A store that records every state it is asked to store.
#[derive(Debug, Clone, Default)]
struct RecordingStore {
    inner: MemoryGuardStore,
    stored: Arc<Mutex<Vec<GuardState>>>,
}

impl RecordingStore {
    fn history(&self) -> Vec<GuardState> {
        self.stored.lock().unwrap().clone()
    }
}

impl GuardStore for RecordingStore {
    fn load(&self) -> Result<Option<GuardState>, GuardStoreError> {
        self.inner.load()
    }
    fn store(&self, state: &GuardState) -> Result<(), GuardStoreError> {
        self.inner.store(state)?;
        self.stored.lock().unwrap().push(state.clone());
        Ok(())
    }
}

type MemGuard = SigningGuard<InMemorySigner, MemoryGuardStore>;

fn guard() -> MemGuard {
    SigningGuard::new(
        CHAIN,
        InMemorySigner::from_seed(&[1; 32]),
        MemoryGuardStore::new(),
    )
    .unwrap()
}

fn sign<S: Signer, G: GuardStore>(
    guard: &SigningGuard<S, G>,
    vote: VoteBody,
) -> Result<Signature, GuardError> {
    block_on_ready(guard.sign_vote(&vote)).expect("guard future completes on first poll")
}

fn assert_refused<S: Signer, G: GuardStore>(guard: &SigningGuard<S, G>, vote: VoteBody) {
    match sign(guard, vote) {
        Err(GuardError::Refused { reason }) => {
            assert!(reason.contains(&format!("view {}", vote.view)), "{reason}");
        }
        other => panic!("expected refusal of {vote:?}, got {other:?}"),
    }
}

fn assert_signed<S: Signer, G: GuardStore>(
    guard: &SigningGuard<S, G>,
    vote: VoteBody,
) -> Signature {
    let sig = sign(guard, vote).unwrap_or_else(|e| panic!("{vote:?} refused: {e}"));
    assert!(guard
        .public_key()
        .verify(&vote.signing_bytes(CHAIN), &sig)
        .is_ok());
    sig
}

fn a() -> Hash32 {
    hash(b"block a")
}
fn b() -> Hash32 {
    hash(b"block b")
}

#[test]
fn malformed_votes_are_refused() {
    let g = guard();
    assert_refused(&g, VoteBody::notarize(1, Hash32::ZERO));
    assert_refused(&g, VoteBody::finalize(1, Hash32::ZERO));
    let mut bad_nullify = VoteBody::nullify(1);
    bad_nullify.block = a();
    assert_refused(&g, bad_nullify);
    // Nothing was recorded, so the well-formed versions still sign.
    assert_signed(&g, VoteBody::notarize(1, a()));
    assert_signed(&g, VoteBody::nullify(1));
}

#[test]
fn notarize_rules() {
    let g = guard();
    let first = assert_signed(&g, VoteBody::notarize(5, a()));
    assert_eq!(g.state().last_notarize.map(|r| r.view), Some(5));
    // Same view, same block: the stored signature.
    assert_eq!(sign(&g, VoteBody::notarize(5, a())).unwrap(), first);
    // Same view, other block: conflict.
    assert_refused(&g, VoteBody::notarize(5, b()));
    // Earlier view: regression.
    assert_refused(&g, VoteBody::notarize(4, a()));
    // Later view: fine, and the record moves on.
    assert_signed(&g, VoteBody::notarize(6, b()));
    assert_refused(&g, VoteBody::notarize(5, a()));
    // Notarize does not block nullify or finalize of the same view.
    assert_signed(&g, VoteBody::nullify(6));
}

#[test]
fn nullify_rules() {
    let g = guard();
    let first = assert_signed(&g, VoteBody::nullify(5));
    assert_eq!(sign(&g, VoteBody::nullify(5)).unwrap(), first);
    assert_refused(&g, VoteBody::nullify(4));
    assert_signed(&g, VoteBody::nullify(7));

    // Finalized view v blocks nullify of v and below, not above.
    let g = guard();
    assert_signed(&g, VoteBody::finalize(10, a()));
    assert_refused(&g, VoteBody::nullify(10));
    assert_refused(&g, VoteBody::nullify(9));
    assert_signed(&g, VoteBody::nullify(11));
}

#[test]
fn finalize_rules() {
    let g = guard();
    let first = assert_signed(&g, VoteBody::finalize(5, a()));
    assert_eq!(sign(&g, VoteBody::finalize(5, a())).unwrap(), first);
    assert_refused(&g, VoteBody::finalize(5, b()));
    assert_refused(&g, VoteBody::finalize(4, a()));
    assert_signed(&g, VoteBody::finalize(6, b()));

    // Nullified view v blocks finalize of v and below, not above.
    let g = guard();
    assert_signed(&g, VoteBody::nullify(10));
    assert_refused(&g, VoteBody::finalize(10, a()));
    assert_refused(&g, VoteBody::finalize(9, a()));
    assert_signed(&g, VoteBody::finalize(11, a()));
}

#[test]
fn idempotent_repeat_signs_and_stores_nothing_new() {
    let (signer, calls) = CountingSigner::new(2);
    let store = RecordingStore::default();
    let g = SigningGuard::new(CHAIN, signer, store.clone()).unwrap();
    let stores_after_new = store.history().len();
    assert_eq!(stores_after_new, 1, "new() stores the empty state once");

    let vote = VoteBody::notarize(3, a());
    let first = assert_signed(&g, vote);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.history().len(), 2);
    let durable = store.history().last().cloned().unwrap();
    assert_eq!(durable.last_notarize.unwrap().signature, first);

    for _ in 0..3 {
        let again = sign(&g, vote).unwrap();
        assert_eq!(again.to_bytes(), first.to_bytes());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "signer not asked again");
    assert_eq!(store.history().len(), 2, "store not written again");
    assert_eq!(store.inner.load().unwrap(), Some(durable));
    assert_eq!(g.backend(), "counting");
}

#[test]
fn state_is_durable_before_the_signature_is_returned() {
    let store = RecordingStore::default();
    let g = SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[3; 32]), store.clone()).unwrap();
    let sig = assert_signed(&g, VoteBody::finalize(8, b()));
    let stored = store.inner.load().unwrap().unwrap();
    assert_eq!(
        stored.last_finalize,
        Some(SignedRecord {
            view: 8,
            block: b(),
            signature: sig
        })
    );
    assert_eq!(stored, g.state());
}

#[test]
fn restart_from_file_store_still_refuses_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guard_state");
    let first = {
        let store = FileGuardStore::open(&path).unwrap();
        let g = SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[4; 32]), store).unwrap();
        let sig = assert_signed(&g, VoteBody::notarize(12, a()));
        assert_signed(&g, VoteBody::nullify(12));
        sig
        // Dropped here: the "crash". Only the file survives.
    };
    let store = FileGuardStore::open(&path).unwrap();
    let (signer, calls) = CountingSigner::new(4);
    let g = SigningGuard::new(CHAIN, signer, store).unwrap();
    assert_refused(&g, VoteBody::notarize(12, b()));
    assert_refused(&g, VoteBody::notarize(11, b()));
    assert_refused(&g, VoteBody::finalize(12, a()));
    assert_eq!(sign(&g, VoteBody::notarize(12, a())).unwrap(), first);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_signed(&g, VoteBody::notarize(13, b()));
}

#[test]
fn memory_store_survives_a_simulated_crash() {
    let disk = MemoryGuardStore::new();
    {
        let g =
            SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[5; 32]), disk.clone()).unwrap();
        assert_signed(&g, VoteBody::finalize(3, a()));
    }
    let g = SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[5; 32]), disk).unwrap();
    assert_refused(&g, VoteBody::nullify(3));
}

#[test]
fn chain_mismatch_is_refused() {
    let disk = MemoryGuardStore::new();
    SigningGuard::new("mainnet", InMemorySigner::from_seed(&[6; 32]), disk.clone()).unwrap();
    match SigningGuard::new("testnet", InMemorySigner::from_seed(&[6; 32]), disk.clone()) {
        Err(GuardError::ChainMismatch { stored, requested }) => {
            assert_eq!(
                (stored.as_str(), requested.as_str()),
                ("mainnet", "testnet")
            );
        }
        other => panic!("expected chain mismatch, got {other:?}"),
    }
    assert!(SigningGuard::new("mainnet", InMemorySigner::from_seed(&[6; 32]), disk).is_ok());
}

#[test]
fn invalid_chain_ids_are_refused() {
    let long = "x".repeat(MAX_CHAIN_ID_LEN + 1);
    for id in ["", long.as_str()] {
        let r = SigningGuard::new(
            id,
            InMemorySigner::from_seed(&[6; 32]),
            MemoryGuardStore::new(),
        );
        assert!(
            matches!(r, Err(GuardError::InvalidChainId { .. })),
            "{id:?}"
        );
    }
    let max = "y".repeat(MAX_CHAIN_ID_LEN);
    assert!(SigningGuard::new(
        &max,
        InMemorySigner::from_seed(&[6; 32]),
        MemoryGuardStore::new()
    )
    .is_ok());
}

#[test]
fn state_signed_by_another_key_is_refused() {
    let disk = MemoryGuardStore::new();
    {
        let g =
            SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[7; 32]), disk.clone()).unwrap();
        assert_signed(&g, VoteBody::notarize(1, a()));
    }
    let r = SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[8; 32]), disk.clone());
    assert!(matches!(r, Err(GuardError::KeyMismatch { .. })), "{r:?}");
    assert!(SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[7; 32]), disk).is_ok());
}

#[test]
fn failing_store_releases_no_signature_and_keeps_the_stricter_state() {
    let disk = MemoryGuardStore::new();
    let g = SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[9; 32]), disk.clone()).unwrap();
    disk.set_failing(true);

    let vote = VoteBody::notarize(4, a());
    assert!(matches!(sign(&g, vote), Err(GuardError::Store(_))));
    // In memory the vote counts as signed, so a conflicting one is refused.
    assert_eq!(
        g.state().last_notarize.map(|r| (r.view, r.block)),
        Some((4, a()))
    );
    assert_refused(&g, VoteBody::notarize(4, b()));
    // The repeat is not released either: it is not durable yet.
    assert!(matches!(sign(&g, vote), Err(GuardError::Store(_))));
    // Nor is anything else.
    assert!(matches!(
        sign(&g, VoteBody::nullify(9)),
        Err(GuardError::Store(_))
    ));
    assert_eq!(disk.load().unwrap().unwrap().last_notarize, None);

    disk.set_failing(false);
    let sig = sign(&g, vote).unwrap();
    assert!(g
        .public_key()
        .verify(&vote.signing_bytes(CHAIN), &sig)
        .is_ok());
    assert_eq!(
        disk.load()
            .unwrap()
            .unwrap()
            .last_notarize
            .map(|r| r.signature),
        Some(sig)
    );
}

#[test]
fn failing_store_at_creation_is_an_error() {
    let disk = MemoryGuardStore::new();
    disk.set_failing(true);
    let r = SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[9; 32]), disk);
    assert!(matches!(r, Err(GuardError::Store(_))));
}

/// A backend that fails, or answers with a signature by another key.
#[derive(Debug)]
struct BrokenSigner {
    public: PublicKey,
    impostor: Option<InMemorySigner>,
}

impl Signer for BrokenSigner {
    fn public_key(&self) -> PublicKey {
        self.public
    }
    fn backend(&self) -> &'static str {
        "broken"
    }
    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        match &self.impostor {
            Some(other) => other.sign(message),
            None => Box::pin(std::future::ready(Err(SignerError::Unavailable(
                "token removed".into(),
            )))),
        }
    }
}

#[test]
fn signer_failures_and_wrong_signatures_record_nothing() {
    let public = InMemorySigner::from_seed(&[10; 32]).public_key();
    for impostor in [None, Some(InMemorySigner::from_seed(&[11; 32]))] {
        let wrong_key = impostor.is_some();
        let disk = MemoryGuardStore::new();
        let g = SigningGuard::new(CHAIN, BrokenSigner { public, impostor }, disk.clone()).unwrap();
        match sign(&g, VoteBody::notarize(2, a())) {
            Err(GuardError::Signer(SignerError::Unavailable(_))) => assert!(!wrong_key),
            Err(GuardError::Signer(SignerError::Failed(_))) => assert!(wrong_key),
            other => panic!("expected a signer error, got {other:?}"),
        }
        assert_eq!(g.state().last_notarize, None);
        assert_eq!(disk.load().unwrap().unwrap().last_notarize, None);
    }
}

/// A signer whose signature is only ready once the test opens the gate.
#[derive(Debug)]
struct GateSigner {
    inner: crate::keys::Keypair,
    open: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Signer for GateSigner {
    fn public_key(&self) -> PublicKey {
        self.inner.public()
    }
    fn backend(&self) -> &'static str {
        "gate"
    }
    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::poll_fn(move |_cx| {
            if self.open.load(Ordering::SeqCst) {
                std::task::Poll::Ready(Ok(self.inner.sign(message)))
            } else {
                std::task::Poll::Pending
            }
        }))
    }
}

#[test]
fn concurrent_requests_do_not_interleave() {
    use std::task::{Context, Poll, Waker};
    let open = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let signer = GateSigner {
        inner: crate::keys::Keypair::from_seed(&[12; 32]),
        open: open.clone(),
        calls: calls.clone(),
    };
    let g = SigningGuard::new(CHAIN, signer, MemoryGuardStore::new()).unwrap();
    let mut cx = Context::from_waker(Waker::noop());

    let first_vote = VoteBody::notarize(3, a());
    let second_vote = VoteBody::notarize(3, b()); // conflicts with the first
    let mut first = Box::pin(g.sign_vote(&first_vote));
    let mut second = Box::pin(g.sign_vote(&second_vote));

    // The first request takes the lock and waits for the signer.
    assert!(first.as_mut().poll(&mut cx).is_pending());
    // The second must wait for the lock: it may not even reach the check.
    assert!(second.as_mut().poll(&mut cx).is_pending());
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    open.store(true, Ordering::SeqCst);
    let Poll::Ready(Ok(_)) = first.as_mut().poll(&mut cx) else {
        panic!("first request should complete once the signer answers");
    };
    match second.as_mut().poll(&mut cx) {
        Poll::Ready(Err(GuardError::Refused { .. })) => {}
        other => panic!("second request must see the first's record, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn dropping_a_request_while_signing_records_nothing() {
    use std::task::{Context, Waker};
    let open = Arc::new(AtomicBool::new(false));
    let signer = GateSigner {
        inner: crate::keys::Keypair::from_seed(&[13; 32]),
        open: open.clone(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let g = SigningGuard::new(CHAIN, signer, MemoryGuardStore::new()).unwrap();
    let vote = VoteBody::notarize(3, a());
    {
        let mut pending = Box::pin(g.sign_vote(&vote));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(pending.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(g.state().last_notarize, None);
    open.store(true, Ordering::SeqCst);
    // The lock was released: a conflicting vote can now be signed.
    assert_signed(&g, VoteBody::notarize(3, b()));
}

#[test]
fn debug_output_has_no_secret() {
    let seed = [14u8; 32];
    let g = SigningGuard::new(
        CHAIN,
        InMemorySigner::from_seed(&seed),
        MemoryGuardStore::new(),
    )
    .unwrap();
    let shown = format!("{g:?}");
    assert!(shown.contains("SigningGuard"));
    assert!(!shown.contains(&hex::encode(seed)));
}

// ---- FileGuardStore ----

fn sample_state() -> GuardState {
    let signer = InMemorySigner::from_seed(&[15; 32]);
    let vote = VoteBody::finalize(77, a());
    let sig = block_on_ready(signer.sign(&vote.signing_bytes(CHAIN)))
        .unwrap()
        .unwrap();
    GuardState {
        chain_id: CHAIN.into(),
        last_notarize: None,
        last_nullify: Some(SignedRecord {
            view: 76,
            block: Hash32::ZERO,
            signature: sig,
        }),
        last_finalize: Some(SignedRecord {
            view: 77,
            block: a(),
            signature: sig,
        }),
    }
}

#[test]
fn file_store_roundtrip_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileGuardStore::open(dir.path().join("state")).unwrap();
    assert_eq!(store.load().unwrap(), None);
    let state = sample_state();
    store.store(&state).unwrap();
    assert_eq!(store.load().unwrap(), Some(state.clone()));
    let mut newer = state;
    newer.last_notarize = newer.last_finalize;
    store.store(&newer).unwrap();
    assert_eq!(store.load().unwrap(), Some(newer));
    assert!(
        !sibling(store.path(), ".tmp").exists(),
        "temp file renamed away"
    );
}

#[test]
fn file_store_reports_corruption_instead_of_resetting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    // One store: one used slot, the other unused (all zeros).
    let good = {
        let store = FileGuardStore::open(&path).unwrap();
        store.store(&sample_state()).unwrap();
        fs::read(&path).unwrap()
    };
    assert_eq!(good.len(), FILE_BYTES);
    let used = if good[..SLOT_BYTES].iter().all(|b| *b == 0) {
        SLOT_BYTES
    } else {
        0
    };
    let header = SLOT_MAGIC.len() + 8 + 4 + 32;
    let flip = |at: usize| {
        let mut b = good.clone();
        b[used + at] ^= 0x40;
        b
    };
    let mut too_large = good.clone();
    too_large.resize(16 * 1024 + 1, 0);
    let damaged: [(&str, Vec<u8>); 8] = [
        ("flipped payload", flip(header + 3)),
        ("flipped checksum", flip(SLOT_MAGIC.len() + 12)),
        ("flipped sequence number", flip(SLOT_MAGIC.len())),
        ("bad magic", flip(0)),
        ("junk after the payload", flip(SLOT_BYTES - 1)),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("empty", Vec::new()),
        ("too large", too_large),
    ];
    for (what, bytes) in damaged {
        fs::write(&path, &bytes).unwrap();
        let store = FileGuardStore::open(&path).unwrap();
        assert!(
            matches!(store.load(), Err(GuardStoreError::Corrupt { .. })),
            "{what}"
        );
        let r = SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[15; 32]), store);
        assert!(
            matches!(r, Err(GuardError::Store(GuardStoreError::Corrupt { .. }))),
            "{what}"
        );
    }
    // The untouched bytes still load, so the failures above are the damage.
    fs::write(&path, &good).unwrap();
    assert_eq!(
        FileGuardStore::open(&path).unwrap().load().unwrap(),
        Some(sample_state())
    );
}

/// `sample_state` with its finalize moved to `view`: a distinguishable state.
fn state_at(view: u64) -> GuardState {
    let mut s = sample_state();
    if let Some(r) = s.last_finalize.as_mut() {
        r.view = view;
    }
    s
}

#[test]
fn file_store_alternates_slots_and_a_torn_write_resumes_from_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let store = FileGuardStore::open(&path).unwrap();
    for view in 1..=5 {
        store.store(&state_at(view)).unwrap();
        assert_eq!(store.load().unwrap(), Some(state_at(view)));
    }
    let both = fs::read(&path).unwrap();
    let (a, b) = both.split_at(SLOT_BYTES);
    // Both slots in use, holding the last two states.
    assert!(a.starts_with(SLOT_MAGIC) && b.starts_with(SLOT_MAGIC));
    // Tear the newest slot (view 5, sequence 5: the second slot) as a crash in
    // the middle of its write would: the previous state comes back.
    let mut torn = both.clone();
    for byte in &mut torn[SLOT_BYTES + 100..] {
        *byte = 0xAA;
    }
    fs::write(&path, &torn).unwrap();
    drop(store);
    let store = FileGuardStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), Some(state_at(4)));
    // Writing on goes to the torn slot (the one not holding the state we
    // resumed from), and the sequence keeps rising.
    store.store(&state_at(6)).unwrap();
    assert_eq!(store.load().unwrap(), Some(state_at(6)));
    let after = fs::read(&path).unwrap();
    assert_eq!(
        &after[..SLOT_BYTES],
        &torn[..SLOT_BYTES],
        "state 4 untouched"
    );
}

#[test]
fn file_store_without_a_load_continues_the_sequence() {
    // A store that was never asked to load must not restart at sequence 1,
    // or the next load would pick the older, higher-numbered slot.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let store = FileGuardStore::open(&path).unwrap();
        for view in 1..=4 {
            store.store(&state_at(view)).unwrap();
        }
    }
    let store = FileGuardStore::open(&path).unwrap();
    store.store(&state_at(9)).unwrap();
    drop(store);
    assert_eq!(
        FileGuardStore::open(&path).unwrap().load().unwrap(),
        Some(state_at(9))
    );
}

#[test]
fn file_store_upgrades_the_first_format_in_one_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    // A file as the first version wrote it: magic, blake3(payload), payload.
    let old = sample_state();
    let payload = postcard::to_stdvec(&old).unwrap();
    let mut bytes = V1_MAGIC.to_vec();
    bytes.extend_from_slice(blake3::hash(&payload).as_bytes());
    bytes.extend_from_slice(&payload);
    fs::write(&path, &bytes).unwrap();
    let store = FileGuardStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), Some(old));
    store.store(&state_at(100)).unwrap();
    assert_eq!(fs::read(&path).unwrap().len(), FILE_BYTES);
    assert_eq!(store.load().unwrap(), Some(state_at(100)));
    store.store(&state_at(101)).unwrap();
    drop(store);
    assert_eq!(
        FileGuardStore::open(&path).unwrap().load().unwrap(),
        Some(state_at(101))
    );
    // A damaged first-format file is still an error.
    bytes[V1_MAGIC.len() + 40] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        FileGuardStore::open(&path).unwrap().load(),
        Err(GuardStoreError::Corrupt { .. })
    ));
}

#[test]
fn file_store_is_exclusive_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let first = FileGuardStore::open(&path).unwrap();
    assert!(matches!(
        FileGuardStore::open(&path),
        Err(GuardStoreError::Locked { .. })
    ));
    drop(first);
    assert!(FileGuardStore::open(&path).is_ok());
}

#[cfg(unix)]
#[test]
fn file_store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    // A pre-existing world-readable file is replaced by a private one.
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let store = FileGuardStore::open(&path).unwrap();
    store.store(&sample_state()).unwrap();
    for p in [path.clone(), sibling(&path, ".lock")] {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

#[test]
fn file_store_write_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let store = FileGuardStore::open(&path).unwrap();
    // A directory where the state file should be: creating it must fail.
    fs::create_dir(&path).unwrap();
    fs::write(path.join("x"), b"x").unwrap();
    assert!(matches!(
        store.store(&sample_state()),
        Err(GuardStoreError::Io { .. })
    ));
}

// ---- the safety property ----

fn any_vote() -> impl Strategy<Value = VoteBody> {
    let block = prop_oneof![Just(a()), Just(b()), Just(hash(b"c")), Just(Hash32::ZERO)];
    (0u8..3, 0u64..8, block).prop_map(|(kind, view, block)| {
        let kind = match kind {
            0 => VoteKind::Notarize,
            1 => VoteKind::Nullify,
            _ => VoteKind::Finalize,
        };
        // Mostly well-formed; a zero/non-zero mismatch now and then.
        VoteBody { kind, view, block }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn never_returns_conflicting_signatures(
        votes in proptest::collection::vec(any_vote(), 1..60),
        crash_at in proptest::collection::vec(any::<bool>(), 60),
    ) {
        let disk = MemoryGuardStore::new();
        let new_guard = || SigningGuard::new(CHAIN, InMemorySigner::from_seed(&[16; 32]), disk.clone()).unwrap();
        let mut g = new_guard();
        let mut released: Vec<(VoteBody, Signature)> = Vec::new();
        for (i, vote) in votes.iter().enumerate() {
            if crash_at[i] {
                g = new_guard(); // restart from the "disk"
            }
            match sign(&g, *vote) {
                Ok(sig) => {
                    prop_assert!(vote.is_well_formed());
                    prop_assert!(g.public_key().verify(&vote.signing_bytes(CHAIN), &sig).is_ok());
                    for (earlier, earlier_sig) in &released {
                        prop_assert!(!vote.conflicts_with(earlier), "{vote:?} conflicts with {earlier:?}");
                        if earlier == vote {
                            prop_assert_eq!(earlier_sig, &sig);
                        }
                    }
                    released.push((*vote, sig));
                }
                Err(GuardError::Refused { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
        // Not vacuous: the first well-formed vote is always signed.
        let first_ok = votes.iter().position(VoteBody::is_well_formed);
        prop_assert_eq!(first_ok.is_some(), !released.is_empty());
    }
}
