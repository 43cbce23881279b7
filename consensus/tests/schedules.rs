//! Property tests of the consensus core under proptest-chosen schedules.

mod cluster;

use bitcraps_consensus::{Effect, Input, Message};
use cluster::{Byz, Cluster};
use proptest::prelude::*;

fn byz_config(n: usize, kind: u8) -> Vec<Byz> {
    let mut v = vec![Byz::Honest; n];
    match kind % 3 {
        1 => v[n - 1] = Byz::Silent,
        2 => v[n - 1] = Byz::Equivocate,
        _ => {}
    }
    if n >= 7 && kind % 2 == 1 {
        v[n - 2] = Byz::Equivocate;
    }
    v
}

fn run(n: usize, byz: u8, schedule: &[u32], lossy: bool) -> Cluster {
    let mut c = Cluster::new(n, byz_config(n, byz));
    for &s in schedule {
        c.step(s, lossy);
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_global_rejects: 4096, ..ProptestConfig::default() })]

    /// Same schedule, same everything.
    #[test]
    fn deterministic(byz in 0u8..3, schedule in prop::collection::vec(any::<u32>(), 0..1500)) {
        let a = run(4, byz, &schedule, true);
        let b = run(4, byz, &schedule, true);
        prop_assert_eq!(a.trace.finalize(), b.trace.finalize());
        prop_assert_eq!(&a.committed, &b.committed);
    }

    /// With f < n/3 byzantine, any delivery order, drops and duplicates: honest
    /// nodes never commit different blocks at a height (their chains are prefixes
    /// of one another), chains link parent to child, and no honest core asks to
    /// sign two conflicting votes.
    #[test]
    fn no_conflicting_commits_n4(byz in 0u8..3, schedule in prop::collection::vec(any::<u32>(), 0..3000)) {
        let c = run(4, byz, &schedule, true);
        prop_assert_eq!(c.check_safety(), Ok(()));
    }

    #[test]
    fn no_conflicting_commits_n7(byz in 0u8..3, schedule in prop::collection::vec(any::<u32>(), 0..3000)) {
        let c = run(7, byz, &schedule, true);
        prop_assert_eq!(c.check_safety(), Ok(()));
    }

    /// Views and committed heights never go backwards, at any step.
    #[test]
    fn views_and_heights_are_monotonic(byz in 0u8..3, schedule in prop::collection::vec(any::<u32>(), 0..1500)) {
        let mut c = Cluster::new(4, byz_config(4, byz));
        let mut last: Vec<(u64, u64)> = c.cores.iter().map(|k| (k.view(), k.committed().height)).collect();
        for s in schedule {
            c.step(s, true);
            for (i, k) in c.cores.iter().enumerate() {
                let now = (k.view(), k.committed().height);
                prop_assert!(now.0 >= last[i].0 && now.1 >= last[i].1, "node {} went from {:?} to {:?}", i, last[i], now);
                last[i] = now;
            }
        }
    }

    /// The committed prefix does not depend on delivery order. Without loss no
    /// timer fires (time only moves when nothing is pending), so every view is
    /// notarized with its leader's deterministic block: any two schedules must
    /// commit chains that are prefixes of one another, on every node. (Time
    /// jumps to the next timer only when nothing is pending; runs where a view
    /// still timed out are skipped by `prop_assume!`.)
    #[test]
    fn committed_prefix_is_order_independent(
        a in prop::collection::vec(any::<u32>(), 200..2000),
        b in prop::collection::vec(any::<u32>(), 200..2000),
    ) {
        let no_dup = |s: &Vec<u32>| s.iter().map(|x| x & !(1 << 17)).collect::<Vec<_>>();
        let x = run(4, 0, &no_dup(&a), false);
        let y = run(4, 0, &no_dup(&b), false);
        prop_assert_eq!(x.check_safety(), Ok(()));
        prop_assert_eq!(y.check_safety(), Ok(()));
        // A view that times out may be skipped in one schedule and not the
        // other; the claim is about runs where no view timed out.
        prop_assume!(x.view_timeouts == 0 && y.view_timeouts == 0);
        for node in 0..4 {
            for (p, q) in x.committed[node].iter().zip(y.committed[node].iter()) {
                prop_assert_eq!(p, q, "node {} diverged between schedules", node);
            }
        }
    }

    /// Duplicates are idempotent: a message delivered again right after the
    /// original makes no state change (no persist, broadcast, signature request,
    /// commit or view change).
    #[test]
    fn exact_duplicates_change_nothing(schedule in prop::collection::vec(any::<u32>(), 0..800), probe in any::<u32>()) {
        let mut c = run(4, 0, &schedule, false);
        // Drive a little more, capturing one delivered vote/certificate/proposal.
        for k in 0..50u32 {
            c.step(probe.wrapping_add(k), false);
        }
        let node = (probe % 4) as usize;
        let peer = ((probe / 4) % 4) as u16;
        if peer as usize == node { return Ok(()); }
        // Take the peer's latest own vote, if any, from its WAL-visible state:
        // simplest is to replay a certificate the node already holds.
        let view = c.cores[node].view().saturating_sub(1);
        for kind in [bitcraps_consensus::VoteKind::Notarize, bitcraps_consensus::VoteKind::Nullify] {
            if let Some(cert) = c.cores[node].certificate(view, kind).cloned() {
                let before = (c.cores[node].view(), c.cores[node].committed());
                let effects = c.input(node, Input::Message { from: peer, message: Message::Certificate(cert) });
                let changed = effects.iter().any(|e| matches!(e,
                    Effect::Persist { .. } | Effect::Broadcast(_) | Effect::RequestSignature(_) | Effect::Commit(_) | Effect::ViewEntered { .. }));
                prop_assert!(!changed, "duplicate certificate produced {:?}", effects);
                prop_assert_eq!(before, (c.cores[node].view(), c.cores[node].committed()));
            }
        }
    }
}

/// A fair, loss-free schedule commits steadily (and so the safety properties
/// above are not vacuous).
#[test]
fn fair_schedule_commits() {
    let mut c = Cluster::new(4, vec![Byz::Honest; 4]);
    for _ in 0..20_000 {
        c.step_fifo();
    }
    assert!(
        c.min_honest_height() >= 10,
        "committed only {}",
        c.min_honest_height()
    );
    assert_eq!(c.check_safety(), Ok(()));
}

/// With a silent validator the others still commit (views it leads time out).
#[test]
fn fair_schedule_commits_with_a_silent_validator() {
    let mut c = Cluster::new(4, vec![Byz::Honest, Byz::Honest, Byz::Honest, Byz::Silent]);
    for _ in 0..20_000 {
        c.step_fifo();
    }
    assert!(
        c.min_honest_height() >= 5,
        "committed only {}",
        c.min_honest_height()
    );
    assert_eq!(c.check_safety(), Ok(()));
}

/// Random schedules without loss make progress too, not just stay safe.
#[test]
fn random_schedules_make_progress() {
    let mut rng = 0x1234_5678_u64;
    let mut c = Cluster::new(4, vec![Byz::Honest; 4]);
    for _ in 0..30_000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        c.step(rng as u32 & !(1 << 17), false);
    }
    let state: Vec<_> = c
        .cores
        .iter()
        .map(|k| (k.view(), k.committed().height, k.wanted_blocks()))
        .collect();
    assert!(
        c.min_honest_height() >= 3,
        "committed only {} {:?}",
        c.min_honest_height(),
        state
    );
}
