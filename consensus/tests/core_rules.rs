//! Focused tests of single protocol rules of the core, each with a control
//! case showing the same setup does act when the rule's condition is absent
//! (so a test cannot pass just because the core ignores everything).

mod harness;

use bitcraps_consensus::{
    message::WIRE_VERSION,
    params::{MAX_BLOCKS_PER_RESPONSE, MAX_MESSAGE_BYTES, MAX_VALIDATORS, MAX_VIEW_GAP},
    Block, Certificate, Core, DecodeError, Effect, Genesis, Input, Message, Proposal, TimeoutKind,
    ViewChange, Vote, VoteBody, VoteKind, WalEntry,
};
use bitcraps_crypto::{hash, Keypair, Signature};
use harness::{block, certificate, proposal, sign_vote, GENESIS_MS};

/// Local time of the tests (a little after genesis).
const T0: u64 = GENESIS_MS + 10;

struct Fixture {
    genesis: Genesis,
    keys: Vec<Keypair>,
    g: Block,
}

impl Fixture {
    fn new() -> Fixture {
        let (genesis, keys) = harness::genesis(4, 7);
        let g = genesis.block();
        Fixture { genesis, keys, g }
    }

    /// A started core for validator `me`.
    fn core(&self, me: u16) -> (Core, Vec<Effect>) {
        let mut core = Core::new(&self.genesis, Some(me)).expect("core");
        let effects = core.handle(T0, Input::Start);
        (core, effects)
    }

    /// The leader's (validator 1's) proposal for view 1 on genesis.
    fn view1_proposal(&self) -> Proposal {
        let b = block(&self.g.header, self.g.id(), 1, 1);
        proposal(&self.keys, b, 1, None, vec![])
    }

    fn vote(&self, signer: u16, body: VoteBody) -> Vote {
        sign_vote(&self.keys[signer as usize], signer, body)
    }

    fn sig(&self, signer: u16, body: VoteBody) -> Signature {
        self.vote(signer, body).signature
    }
}

fn msg(from: u16, message: Message) -> Input {
    Input::Message { from, message }
}

fn requested(effects: &[Effect]) -> Vec<VoteBody> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::RequestSignature(b) => Some(*b),
            _ => None,
        })
        .collect()
}

/// Every own vote or proposal sent is preceded, in the same effect list, by a
/// durable persist of it. Returns how many such messages were checked.
fn assert_persisted_before_sent(effects: &[Effect], me: u16) -> usize {
    let mut checked = 0;
    for (k, e) in effects.iter().enumerate() {
        let m = match e {
            Effect::Broadcast(m) | Effect::Send { message: m, .. } => m,
            _ => continue,
        };
        let own = match m {
            Message::Vote(v) if v.signer == me => WalEntry::OwnVote(*v),
            Message::Proposal(p) if p.vote.signer == me => WalEntry::OwnProposal(p.clone()),
            _ => continue,
        };
        checked += 1;
        let persisted = effects[..k]
            .iter()
            .any(|p| matches!(p, Effect::Persist { entry, durable: true } if *entry == own));
        assert!(
            persisted,
            "{m:?} sent at index {k} without an earlier durable persist in {effects:?}"
        );
    }
    checked
}

fn wal(effects: &[Effect]) -> Vec<WalEntry> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist { entry, .. } => Some(entry.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn proposal_from_a_non_leader_is_ignored() {
    let f = Fixture::new();
    let (mut core, _) = f.core(0);
    assert_eq!(core.leader(1), 1);
    // Validator 2 proposes in view 1, which validator 1 leads.
    let b = block(&f.g.header, f.g.id(), 1, 2);
    let p = proposal(&f.keys, b, 2, None, vec![]);
    let effects = core.handle(T0, msg(2, Message::Proposal(p)));
    assert!(requested(&effects).is_empty(), "{effects:?}");
    assert!(effects.is_empty(), "{effects:?}");

    // Claims the leader as proposer but is signed by validator 2.
    let b = block(&f.g.header, f.g.id(), 1, 1);
    let mut p = proposal(&f.keys, b.clone(), 1, None, vec![]);
    p.vote.signature = f.sig(2, p.vote.body);
    let effects = core.handle(T0, msg(2, Message::Proposal(p)));
    assert!(requested(&effects).is_empty(), "{effects:?}");

    // Signed by the leader but naming another proposer in the header.
    let mut b2 = b.clone();
    b2.header.proposer = 3;
    let p = proposal(&f.keys, b2, 1, None, vec![]);
    let effects = core.handle(T0, msg(1, Message::Proposal(p)));
    assert!(requested(&effects).is_empty(), "{effects:?}");

    // Control: the leader's own proposal is voted for.
    let p = f.view1_proposal();
    let id = p.block.id();
    let effects = core.handle(T0, msg(1, Message::Proposal(p)));
    assert_eq!(requested(&effects), vec![VoteBody::notarize(1, id)]);
}

#[test]
fn vote_with_a_bad_signature_is_ignored() {
    let f = Fixture::new();
    let (mut core, _) = f.core(0);
    let x = hash(b"block x");
    let body = VoteBody::notarize(1, x);
    for s in [1, 2] {
        let effects = core.handle(T0, msg(s, Message::Vote(f.vote(s, body))));
        assert!(effects.is_empty(), "{effects:?}");
    }
    // A third vote with a corrupted signature would complete the quorum.
    let mut bad = f.vote(3, body);
    bad.signature.0[7] ^= 0x40;
    assert!(core.handle(T0, msg(3, Message::Vote(bad))).is_empty());
    // Signed with another validator's key.
    let mut forged = f.vote(2, body);
    forged.signer = 3;
    assert!(core.handle(T0, msg(3, Message::Vote(forged))).is_empty());
    // Unknown signer.
    let mut unknown = f.vote(2, body);
    unknown.signer = 9;
    assert!(core.handle(T0, msg(2, Message::Vote(unknown))).is_empty());
    assert!(core.certificate(1, VoteKind::Notarize).is_none());
    assert_eq!(core.view(), 1);
    assert_eq!(core.evidence().count(), 0);

    // Control: the genuine vote of the same signer still counts (the bad ones
    // did not take its slot) and completes the quorum.
    let effects = core.handle(T0, msg(3, Message::Vote(f.vote(3, body))));
    assert!(
        core.certificate(1, VoteKind::Notarize).is_some(),
        "{effects:?}"
    );
    assert_eq!(core.view(), 2);
}

#[test]
fn conflicting_second_vote_from_one_signer_yields_evidence() {
    let f = Fixture::new();
    let (mut core, _) = f.core(0);
    let first = f.vote(2, VoteBody::notarize(1, hash(b"a")));
    let second = f.vote(2, VoteBody::notarize(1, hash(b"b")));
    assert!(core.handle(T0, msg(2, Message::Vote(first))).is_empty());
    // An exact duplicate is idempotent: no effect at all.
    assert!(core.handle(T0, msg(2, Message::Vote(first))).is_empty());
    let effects = core.handle(T0, msg(2, Message::Vote(second)));
    assert_eq!(
        effects,
        vec![Effect::Evidence(bitcraps_consensus::Evidence {
            first,
            second
        })]
    );
    // Reported once, even if the conflicting vote arrives again.
    assert!(core.handle(T0, msg(2, Message::Vote(second))).is_empty());
    assert_eq!(core.evidence().count(), 1);

    // Finalize after nullify in the same view is also equivocation.
    let null = f.vote(3, VoteBody::nullify(1));
    let fin = f.vote(3, VoteBody::finalize(1, hash(b"a")));
    assert!(core.handle(T0, msg(3, Message::Vote(null))).is_empty());
    let effects = core.handle(T0, msg(3, Message::Vote(fin)));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Evidence(ev) if ev.first == null && ev.second == fin
        )),
        "{effects:?}"
    );

    // Control: votes of one signer in different views are not evidence.
    let other_view = f.vote(2, VoteBody::notarize(2, hash(b"b")));
    let effects = core.handle(T0, msg(2, Message::Vote(other_view)));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Evidence(_))));
}

#[test]
fn quorum_of_notarize_votes_broadcasts_a_certificate_and_enters_the_next_view() {
    let f = Fixture::new();
    let (mut core, _) = f.core(0);
    let x = hash(b"block x");
    let body = VoteBody::notarize(1, x);
    // Two of four are not a quorum (q = 3).
    for s in [3, 1] {
        assert!(core
            .handle(T0, msg(s, Message::Vote(f.vote(s, body))))
            .is_empty());
    }
    let effects = core.handle(T0, msg(2, Message::Vote(f.vote(2, body))));
    let expected = certificate(&f.keys, &[1, 2, 3], body);
    assert!(
        effects.contains(&Effect::Broadcast(Message::Certificate(expected.clone()))),
        "{effects:?}"
    );
    assert!(effects.contains(&Effect::ViewEntered {
        view: 2,
        via: ViewChange::Notarized
    }));
    // Simplex: notarized before our timer fired, so we vote to finalize it.
    assert!(requested(&effects).contains(&VoteBody::finalize(1, x)));
    // The certificate is logged before it is acted on.
    let persisted = effects.iter().position(
        |e| matches!(e, Effect::Persist { entry: WalEntry::Certificate(c), .. } if *c == expected),
    );
    let entered = effects
        .iter()
        .position(|e| matches!(e, Effect::ViewEntered { .. }));
    assert!(persisted.is_some() && persisted < entered, "{effects:?}");
    assert_eq!(core.view(), 2);
    assert_eq!(core.certificate(1, VoteKind::Notarize), Some(&expected));
}

/// The next leader can see the certificate for its parent before the parent's
/// proposal: the votes come from other peers and overtake it. It enters its
/// view without the block, fetches it, and must propose as soon as the late
/// proposal brings it, not let its view time out (a 1 s stall under load).
#[test]
fn next_leader_proposes_when_its_parent_arrives_after_the_certificate() {
    let f = Fixture::new();
    let p1 = f.view1_proposal();
    let body = VoteBody::notarize(1, p1.block.id());
    let proposes = |effects: &[Effect]| {
        effects
            .iter()
            .any(|e| matches!(e, Effect::RequestPayload { view: 2, parent, .. } if *parent == p1.block.id()))
    };
    // Validator 2 leads view 2. Votes first: view 2 entered, no block yet.
    let (mut core, _) = f.core(2);
    let mut effects = Vec::new();
    for s in [0, 1, 3] {
        effects.extend(core.handle(T0, msg(s, Message::Vote(f.vote(s, body)))));
    }
    assert_eq!(core.view(), 2);
    assert!(
        !proposes(&effects),
        "cannot propose without the parent: {effects:?}"
    );
    let late = core.handle(T0 + 1, msg(1, Message::Proposal(p1.clone())));
    assert!(
        proposes(&late),
        "the late parent must trigger the proposal: {late:?}"
    );
    // Control: with the proposal first, the certificate alone triggers it.
    let (mut core, _) = f.core(2);
    core.handle(T0, msg(1, Message::Proposal(p1.clone())));
    let mut effects = Vec::new();
    for s in [0, 3] {
        effects.extend(core.handle(T0, msg(s, Message::Vote(f.vote(s, body)))));
    }
    assert!(proposes(&effects), "{effects:?}");
}

#[test]
fn view_timeout_requests_a_nullify_signature() {
    let f = Fixture::new();
    let (mut core, start) = f.core(0);
    let at = start
        .iter()
        .find_map(|e| match e {
            Effect::ScheduleTimeout {
                view: 1,
                kind: TimeoutKind::View,
                at_ms,
            } => Some(*at_ms),
            _ => None,
        })
        .expect("view timer armed on start");
    assert_eq!(at, T0 + harness::params().view_timeout_ms);

    // Stale timers (another view) do nothing.
    for view in [0, 2, 7] {
        let e = core.handle(
            at,
            Input::Timeout {
                view,
                kind: TimeoutKind::View,
            },
        );
        assert!(e.is_empty(), "{e:?}");
    }
    let effects = core.handle(
        at,
        Input::Timeout {
            view: 1,
            kind: TimeoutKind::View,
        },
    );
    assert_eq!(requested(&effects), vec![VoteBody::nullify(1)]);
    assert!(effects.contains(&Effect::ScheduleTimeout {
        view: 1,
        kind: TimeoutKind::Retry,
        at_ms: at + harness::params().retry_interval_ms,
    }));
    // Asked once: a second firing only rebroadcasts.
    let again = core.handle(
        at + 1,
        Input::Timeout {
            view: 1,
            kind: TimeoutKind::View,
        },
    );
    assert!(requested(&again).is_empty(), "{again:?}");
}

#[test]
fn durable_persist_precedes_the_broadcast_of_our_own_votes_and_proposals() {
    let f = Fixture::new();

    // Leader (validator 1): payload -> signature -> proposal.
    let (mut leader, start) = f.core(1);
    assert!(start
        .iter()
        .any(|e| matches!(e, Effect::RequestPayload { view: 1, .. })));
    let effects = leader.handle(
        T0,
        Input::PayloadReady {
            view: 1,
            payload: b"bets".to_vec(),
        },
    );
    let [body] = requested(&effects)[..] else {
        panic!("expected one signature request: {effects:?}")
    };
    assert_eq!(body.kind, VoteKind::Notarize);
    let effects = leader.handle(
        T0,
        Input::SignatureReady {
            vote: body,
            signature: f.sig(1, body),
        },
    );
    assert_eq!(assert_persisted_before_sent(&effects, 1), 1, "{effects:?}");
    let Some(Effect::Broadcast(Message::Proposal(p))) = effects
        .iter()
        .find(|e| matches!(e, Effect::Broadcast(Message::Proposal(_))))
    else {
        panic!("no proposal broadcast: {effects:?}")
    };
    let p = p.clone();

    // Voter (validator 0): notarize, then finalize, then (next view) nullify.
    let (mut voter, _) = f.core(0);
    let effects = voter.handle(T0, msg(1, Message::Proposal(p.clone())));
    let notarize = VoteBody::notarize(1, p.block.id());
    assert_eq!(requested(&effects), vec![notarize]);
    let effects = voter.handle(
        T0,
        Input::SignatureReady {
            vote: notarize,
            signature: f.sig(0, notarize),
        },
    );
    assert_eq!(assert_persisted_before_sent(&effects, 0), 1, "{effects:?}");

    let effects = voter.handle(T0, msg(2, Message::Vote(f.vote(2, notarize))));
    let finalize = VoteBody::finalize(1, p.block.id());
    assert_eq!(requested(&effects), vec![finalize]);
    let effects = voter.handle(
        T0,
        Input::SignatureReady {
            vote: finalize,
            signature: f.sig(0, finalize),
        },
    );
    assert_eq!(assert_persisted_before_sent(&effects, 0), 1, "{effects:?}");

    let effects = voter.handle(
        T0 + 100_000,
        Input::Timeout {
            view: 2,
            kind: TimeoutKind::View,
        },
    );
    assert_eq!(requested(&effects), vec![VoteBody::nullify(2)]);
    let effects = voter.handle(
        T0 + 100_000,
        Input::SignatureReady {
            vote: VoteBody::nullify(2),
            signature: f.sig(0, VoteBody::nullify(2)),
        },
    );
    assert_eq!(assert_persisted_before_sent(&effects, 0), 1, "{effects:?}");

    // Retries resend what is already durable (nothing new to persist).
    let effects = voter.handle(
        T0 + 200_000,
        Input::Timeout {
            view: 2,
            kind: TimeoutKind::Retry,
        },
    );
    assert!(effects.iter().any(
        |e| matches!(e, Effect::Broadcast(Message::Vote(v)) if v.body == VoteBody::nullify(2))
    ));
}

#[test]
fn decode_rejects_oversize_and_garbage_frames() {
    let f = Fixture::new();
    let p = f.view1_proposal();
    let good = Message::Proposal(p.clone()).encode();
    assert_eq!(Message::decode(&good), Ok(Message::Proposal(p.clone())));

    assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        Message::decode(&vec![WIRE_VERSION; MAX_MESSAGE_BYTES + 1]),
        Err(DecodeError::TooLarge(MAX_MESSAGE_BYTES + 1))
    );
    let mut wrong_version = good.clone();
    wrong_version[0] = WIRE_VERSION.wrapping_add(1);
    assert!(matches!(
        Message::decode(&wrong_version),
        Err(DecodeError::Version(_))
    ));
    // Every strict prefix of a valid frame is refused.
    for len in 1..good.len() {
        assert!(Message::decode(&good[..len]).is_err(), "prefix of {len}");
    }
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0]);
    assert_eq!(
        Message::decode(&trailing),
        Err(DecodeError::TrailingBytes(2))
    );

    // Structurally valid but over the limits.
    let mut long_gap = p.clone();
    long_gap.nullifications = (0..=MAX_VIEW_GAP)
        .map(|v| Certificate {
            body: VoteBody::nullify(v + 1),
            signatures: vec![],
        })
        .collect();
    assert!(matches!(
        Message::decode(&Message::Proposal(long_gap).encode()),
        Err(DecodeError::Limit(_))
    ));
    let huge_cert = Certificate {
        body: VoteBody::nullify(1),
        signatures: (0..=MAX_VALIDATORS as u16)
            .map(|i| (i, Signature([0; 64])))
            .collect(),
    };
    assert!(matches!(
        Message::decode(&Message::Certificate(huge_cert).encode()),
        Err(DecodeError::Limit(_))
    ));
    let many_blocks = Message::Blocks(vec![p.block.clone(); MAX_BLOCKS_PER_RESPONSE as usize + 2]);
    assert!(matches!(
        Message::decode(&many_blocks.encode()),
        Err(DecodeError::Limit(_))
    ));

    // Random garbage (deterministic xorshift): never a panic, almost always an
    // error, and anything accepted re-encodes to a frame that decodes the same.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut refused = 0;
    for i in 0..4_000 {
        let len = (next() % 300) as usize;
        let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && !frame.is_empty() {
            frame[0] = WIRE_VERSION;
        }
        match Message::decode(&frame) {
            Err(_) => refused += 1,
            Ok(m) => assert_eq!(Message::decode(&m.encode()), Ok(m)),
        }
    }
    assert!(
        refused > 3_500,
        "only {refused} of 4000 garbage frames refused"
    );
    // Bit flips in a valid frame never panic either.
    for i in 0..good.len() * 8 {
        let mut flipped = good.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        let _ = Message::decode(&flipped);
    }
}

#[test]
fn restore_resumes_the_view_and_does_not_re_request_a_logged_vote() {
    let f = Fixture::new();
    let (mut core, start) = f.core(0);
    let mut log = wal(&start);
    let p = f.view1_proposal();
    let notarize = VoteBody::notarize(1, p.block.id());
    let effects = core.handle(T0, msg(1, Message::Proposal(p.clone())));
    log.extend(wal(&effects));
    assert_eq!(requested(&effects), vec![notarize]);
    let effects = core.handle(
        T0,
        Input::SignatureReady {
            vote: notarize,
            signature: f.sig(0, notarize),
        },
    );
    log.extend(wal(&effects));
    let own = f.vote(0, notarize);
    assert!(log.contains(&WalEntry::OwnVote(own)));

    // Crash and restart in view 1.
    let mut restored = Core::restore(&f.genesis, Some(0), log.clone()).expect("restore");
    assert_eq!(restored.view(), 1);
    let effects = restored.handle(T0 + 5, Input::Start);
    assert!(requested(&effects).is_empty(), "{effects:?}");
    assert!(effects.contains(&Effect::ViewEntered {
        view: 1,
        via: ViewChange::Start
    }));
    // It re-sends the logged vote (peers may have missed it) ...
    assert!(effects.contains(&Effect::Broadcast(Message::Vote(own))));
    // ... and the same proposal arriving again asks for nothing.
    let effects = restored.handle(T0 + 5, msg(1, Message::Proposal(p.clone())));
    assert!(requested(&effects).is_empty(), "{effects:?}");

    // A logged nullify is honoured too: no notarize for a view we nullified.
    let (mut core, start) = f.core(0);
    let mut log = wal(&start);
    let at = T0 + 1_000;
    let effects = core.handle(
        at,
        Input::Timeout {
            view: 1,
            kind: TimeoutKind::View,
        },
    );
    assert_eq!(requested(&effects), vec![VoteBody::nullify(1)]);
    let effects = core.handle(
        at,
        Input::SignatureReady {
            vote: VoteBody::nullify(1),
            signature: f.sig(0, VoteBody::nullify(1)),
        },
    );
    log.extend(wal(&effects));
    let mut restored = Core::restore(&f.genesis, Some(0), log).expect("restore");
    restored.handle(at, Input::Start);
    let effects = restored.handle(at, msg(1, Message::Proposal(p.clone())));
    assert!(requested(&effects).is_empty(), "{effects:?}");
    // Control: a fresh core does vote for that proposal.
    let (mut fresh, _) = f.core(0);
    let effects = fresh.handle(T0, msg(1, Message::Proposal(p.clone())));
    assert_eq!(requested(&effects), vec![notarize]);

    // Certificates in the log move the restored core forward.
    let (mut core, start) = f.core(0);
    let mut log = wal(&start);
    let not1 = certificate(&f.keys, &[1, 2, 3], notarize);
    let null2 = certificate(&f.keys, &[1, 2, 3], VoteBody::nullify(2));
    for c in [not1, null2] {
        log.extend(wal(&core.handle(T0, msg(1, Message::Certificate(c)))));
    }
    assert_eq!(core.view(), 3);
    let mut restored = Core::restore(&f.genesis, Some(0), log).expect("restore");
    assert_eq!(restored.view(), 3);
    let effects = restored.handle(T0, Input::Start);
    assert!(effects.contains(&Effect::ViewEntered {
        view: 3,
        via: ViewChange::Start
    }));
}

/// BUG (consensus/src/handle/proposal.rs, `complete_proposal`): the leader picks
/// its parent when it asks for a payload (`try_propose` stores it in
/// `payload_request`), but when the signature arrives `complete_proposal`
/// re-runs `select_parent` to build the justification. If a skipped view became
/// notarized in between (a view can be both nullified and notarized), the
/// proposal's block extends the old parent while its justification carries the
/// newer view's notarization and omits the nullifications the block needs.
///
/// Input (4 validators, we are validator 3, the leader of view 3):
///   Start; proposal of view 1 (block B1 by validator 1); notarization of view 1
///   (B1); nullification of view 2 -> enter view 3, RequestPayload on B1;
///   notarization of view 2 (block B2); PayloadReady; SignatureReady.
/// Expected: the proposal's block has parent B1 / parent_view 1 and carries the
///   notarization of (1, B1) and the nullification of view 2.
/// Actual: parent_certificate is the notarization of (2, B2) and
///   `nullifications` is empty. A validator that lacks the nullification of
///   view 2 (the case justifications exist for) cannot vote for the proposal.
#[test]
fn bug_proposal_justification_matches_the_block_parent() {
    let f = Fixture::new();
    let (mut leader, _) = f.core(3);
    assert_eq!(leader.leader(3), 3);
    let p1 = f.view1_proposal();
    let b1 = p1.block.clone();
    leader.handle(T0, msg(1, Message::Proposal(p1.clone())));
    let not1 = certificate(&f.keys, &[0, 1, 2], VoteBody::notarize(1, b1.id()));
    leader.handle(T0, msg(1, Message::Certificate(not1.clone())));
    assert_eq!(leader.view(), 2);
    let null2 = certificate(&f.keys, &[0, 1, 2], VoteBody::nullify(2));
    let effects = leader.handle(T0, msg(1, Message::Certificate(null2.clone())));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::RequestPayload { view: 3, parent, .. } if *parent == b1.id()
        )),
        "{effects:?}"
    );
    // View 2 turns out to be notarized as well (some validators voted for B2
    // before nullifying).
    let b2 = block(&b1.header, b1.id(), 2, 2);
    let not2 = certificate(&f.keys, &[0, 1, 2], VoteBody::notarize(2, b2.id()));
    leader.handle(T0, msg(1, Message::Certificate(not2)));
    let effects = leader.handle(
        T0,
        Input::PayloadReady {
            view: 3,
            payload: b"bets".to_vec(),
        },
    );
    let [body] = requested(&effects)[..] else {
        panic!("expected one signature request: {effects:?}")
    };
    let effects = leader.handle(
        T0,
        Input::SignatureReady {
            vote: body,
            signature: f.sig(3, body),
        },
    );
    let p3 = effects
        .iter()
        .find_map(|e| match e {
            Effect::Broadcast(Message::Proposal(p)) => Some(p.clone()),
            _ => None,
        })
        .expect("proposal broadcast");
    assert_eq!(p3.block.header.parent, b1.id());
    assert_eq!(p3.block.header.parent_view, 1);

    // Consequence: validator 0 saw view 1 (it voted for B1) but none of the
    // later certificates; the proposal alone must be enough for it to vote.
    let (mut lagging, _) = f.core(0);
    lagging.handle(T0, msg(1, Message::Proposal(p1)));
    let effects = lagging.handle(T0, msg(3, Message::Proposal(p3.clone())));
    let vote_requested = requested(&effects).contains(&VoteBody::notarize(3, p3.block.id()));
    // Control: the same block and leader vote with the justification the block
    // needs does get that validator's vote.
    let fixed = Proposal {
        parent_certificate: Some(not1),
        nullifications: vec![null2.clone()],
        ..p3.clone()
    };
    let (mut lagging2, _) = f.core(0);
    lagging2.handle(T0, msg(1, Message::Proposal(f.view1_proposal())));
    let control = lagging2.handle(T0, msg(3, Message::Proposal(fixed)));
    assert!(
        requested(&control).contains(&VoteBody::notarize(3, p3.block.id())),
        "{control:?}"
    );
    eprintln!(
        "justification {:?}, nullifications {:?}, lagging validator votes: {vote_requested}",
        p3.parent_certificate
            .as_ref()
            .map(|c| (c.body.view, c.body.block)),
        p3.nullifications
            .iter()
            .map(|c| c.body.view)
            .collect::<Vec<_>>()
    );

    assert_eq!(
        p3.parent_certificate
            .as_ref()
            .map(|c| (c.body.view, c.body.block)),
        Some((1, b1.id())),
        "justification names another parent than the block"
    );
    assert_eq!(p3.nullifications, vec![null2]);
    assert!(
        vote_requested,
        "a lagging validator cannot vote: {effects:?}"
    );
}

/// An observer (no key) that has seen validators 0, 1 and 2 notarize `x` in
/// view 1: it holds the notarization and is in view 2.
fn notarized_observer(f: &Fixture, x: bitcraps_crypto::Hash32) -> Core {
    let mut core = Core::new(&f.genesis, None).expect("core");
    core.handle(T0, Input::Start);
    for s in [0, 1, 2] {
        core.handle(
            T0,
            msg(s, Message::Vote(f.vote(s, VoteBody::notarize(1, x)))),
        );
    }
    assert!(core.certificate(1, VoteKind::Notarize).is_some());
    assert_eq!(core.view(), 2);
    core
}

fn sends_certificate(effects: &[Effect], to: u16) -> bool {
    effects.iter().any(|e| {
        matches!(e, Effect::Send { to: t, message: Message::Certificate(c) }
            if *t == to && c.body.kind == VoteKind::Notarize && c.body.view == 1)
    })
}

#[test]
fn a_vote_after_its_certificate_is_checked_only_when_sent_again() {
    let f = Fixture::new();
    let x = hash(b"x");
    let late = f.vote(3, VoteBody::notarize(1, x));
    let mut core = notarized_observer(&f, x);
    // The fourth vote adds nothing to the notarization: held, unchecked, and
    // its sender is not yet treated as lagging.
    let effects = core.handle(T0, msg(3, Message::Vote(late)));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(core.held_unchecked(1), 1);
    // Only validators' votes are held: one per kind and validator at most.
    for signer in [4, 5, 999, u16::MAX] {
        core.handle(T0, msg(3, Message::Vote(Vote { signer, ..late })));
    }
    assert_eq!(core.held_unchecked(1), 1);
    // Sent again, the peer is stuck in view 1: its vote checks out, so it
    // gets the certificate.
    let effects = core.handle(T0, msg(3, Message::Vote(late)));
    assert!(sends_certificate(&effects, 3), "{effects:?}");

    // A forged late vote sent twice is dropped once checked: no help.
    let mut core = notarized_observer(&f, x);
    let forged = Vote {
        signature: f.sig(2, VoteBody::notarize(1, x)),
        ..late
    };
    assert!(core.handle(T0, msg(3, Message::Vote(forged))).is_empty());
    let effects = core.handle(T0, msg(3, Message::Vote(forged)));
    assert!(!sends_certificate(&effects, 3), "{effects:?}");
    // The genuine vote still counts after the forgery was dropped.
    let effects = core.handle(T0, msg(3, Message::Vote(late)));
    assert!(effects.is_empty(), "{effects:?}");
    let effects = core.handle(T0, msg(3, Message::Vote(late)));
    assert!(sends_certificate(&effects, 3), "{effects:?}");
}

#[test]
fn a_vote_held_unchecked_is_still_evidence_against_a_conflicting_one() {
    let f = Fixture::new();
    let x = hash(b"x");
    let late = f.vote(3, VoteBody::notarize(1, x));
    let conflicting = f.vote(3, VoteBody::notarize(1, hash(b"y")));
    let mut core = notarized_observer(&f, x);
    assert!(core.handle(T0, msg(3, Message::Vote(late))).is_empty());
    let effects = core.handle(T0, msg(3, Message::Vote(conflicting)));
    let evidence = Effect::Evidence(bitcraps_consensus::Evidence {
        first: late,
        second: conflicting,
    });
    assert!(effects.contains(&evidence), "{effects:?}");
    assert_eq!(core.evidence().count(), 1);

    // Control: a held vote whose signature is bad is no evidence; the
    // conflicting vote is then simply the signer's first.
    let mut core = notarized_observer(&f, x);
    let forged = Vote {
        signature: f.sig(2, VoteBody::notarize(1, x)),
        ..late
    };
    assert!(core.handle(T0, msg(3, Message::Vote(forged))).is_empty());
    let effects = core.handle(T0, msg(3, Message::Vote(conflicting)));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Evidence(_))),
        "{effects:?}"
    );
    assert_eq!(core.evidence().count(), 0);

    // Finalize and nullify exclude each other: a finalize vote held after
    // the finalization is evidence against a later nullify vote.
    let mut core = notarized_observer(&f, x);
    for s in [0, 1, 2] {
        core.handle(
            T0,
            msg(s, Message::Vote(f.vote(s, VoteBody::finalize(1, x)))),
        );
    }
    assert!(core.certificate(1, VoteKind::Finalize).is_some());
    let fin = f.vote(3, VoteBody::finalize(1, x));
    let null = f.vote(3, VoteBody::nullify(1));
    assert!(core.handle(T0, msg(3, Message::Vote(fin))).is_empty());
    let effects = core.handle(T0, msg(3, Message::Vote(null)));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Evidence(ev) if ev.first == fin && ev.second == null
        )),
        "{effects:?}"
    );
}

#[test]
fn a_certificate_is_refused_for_a_bad_signature_even_beside_counted_votes() {
    let f = Fixture::new();
    let x = hash(b"x");
    let body = VoteBody::notarize(1, x);
    let counted = |core: &mut Core| {
        for s in [1, 2] {
            core.handle(T0, msg(s, Message::Vote(f.vote(s, body))));
        }
        assert!(core.certificate(1, VoteKind::Notarize).is_none());
    };
    // Signatures 1 and 2 match counted votes; 3's is forged.
    let mut forged = certificate(&f.keys, &[1, 2, 3], body);
    forged.signatures[2].1 = f.sig(2, body);
    let (mut core, _) = f.core(0);
    counted(&mut core);
    core.handle(T0, msg(3, Message::Certificate(forged)));
    assert!(core.certificate(1, VoteKind::Notarize).is_none());
    assert_eq!(core.view(), 1);
    // A counted signer's signature that differs from its counted vote is
    // checked too.
    let mut swapped = certificate(&f.keys, &[1, 2, 3], body);
    swapped.signatures[0].1 = f.sig(3, body);
    core.handle(T0, msg(3, Message::Certificate(swapped)));
    assert!(core.certificate(1, VoteKind::Notarize).is_none());
    // Control: the genuine certificate is taken.
    let genuine = certificate(&f.keys, &[1, 2, 3], body);
    core.handle(T0, msg(3, Message::Certificate(genuine.clone())));
    assert_eq!(core.certificate(1, VoteKind::Notarize), Some(&genuine));
    assert_eq!(core.view(), 2);
}

#[test]
fn a_finalization_is_forwarded_only_when_it_moves_us_forward() {
    let f = Fixture::new();
    let x = hash(b"x");
    let fin = VoteBody::finalize(1, x);
    let broadcasts_finalization = |effects: &[Effect]| {
        effects.iter().any(|e| {
            matches!(e, Effect::Broadcast(Message::Certificate(c))
                if c.body.kind == VoteKind::Finalize)
        })
    };
    // Formed from votes in a view we have already left: everyone got the
    // same votes, so it is not sent again.
    let mut core = notarized_observer(&f, x);
    let mut effects = Vec::new();
    for s in [0, 1, 2] {
        effects.extend(core.handle(T0, msg(s, Message::Vote(f.vote(s, fin)))));
    }
    assert!(core.certificate(1, VoteKind::Finalize).is_some());
    assert!(!broadcasts_finalization(&effects), "{effects:?}");
    // Control: a finalization that takes a lagging validator past the view
    // is forwarded, like a notarization.
    let mut lagging = Core::new(&f.genesis, None).expect("core");
    lagging.handle(T0, Input::Start);
    let effects = lagging.handle(
        T0,
        msg(
            2,
            Message::Certificate(certificate(&f.keys, &[0, 1, 2], fin)),
        ),
    );
    assert_eq!(lagging.view(), 2);
    assert!(broadcasts_finalization(&effects), "{effects:?}");
}
