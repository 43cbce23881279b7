//! Property tests of the Simplex core under adversarial schedules.
//!
//! Each property drives a [`harness::Cluster`] of 4 (sometimes 7) real cores
//! with a proptest-chosen schedule. Besides the assertions written here, the
//! harness checks its per-step invariants on every step (see `harness/mod.rs`:
//! monotonic views and tips, no conflicting signature requests, persist before
//! speaking, justified proposals, linked and agreeing commits, evidence only
//! against byzantine validators). A violated invariant panics, which proptest
//! reports as a failing case and shrinks to a minimal schedule.
//!
//! Why each property can fail (what bug it would catch):
//! * `same_schedule_same_run`: any dependence on something but the inputs (a
//!   `HashMap` iteration order, a clock, an address) changes the effect trace.
//! * `reordering_never_forks_the_committed_prefix` and
//!   `no_conflicting_commits_under_drops_duplicates_and_crashes`: a wrong quorum
//!   size, counting a validator twice, finalizing after nullifying, voting for a
//!   second proposal, or committing a finalization that does not extend the tip
//!   lets two honest nodes commit different blocks at one height with one or two
//!   byzantine validators equivocating (checked at every commit).
//! * `views_and_tips_never_go_back`: a certificate or restore path that lowers
//!   `view` or the committed tip.
//! * `duplicate_delivery_is_idempotent`: counting a duplicate vote, re-requesting
//!   a signature, re-broadcasting a certificate or re-processing a proposal on a
//!   duplicate changes the trace of the whole run.
//! * `fork_choice_is_consistent`: a leader extending a parent other than the
//!   highest notarized one (or without nullifications of the gap), a commit that
//!   skips a height or does not link to the previous commit.
//!
//! Cross-schedule note: two *different* schedules may legitimately commit
//! different blocks (a view that is notarized under one schedule is nullified
//! under another, and timestamps follow virtual time), so "order independence"
//! is checked as: under every delivery order, all honest chains are prefixes of
//! one another, and they keep growing once delivery becomes fair.

mod harness;

use bitcraps_consensus::{Block, CommittedBlock, VoteBody};
use harness::{Action, Behavior, Cluster};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Cluster shape: behaviours (at most f byzantine) and the equivocators' split.
#[derive(Debug, Clone)]
struct Shape {
    behaviors: Vec<Behavior>,
    split: u8,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![3 => Just(4usize), 1 => Just(7usize)]
        .prop_flat_map(|n| {
            let f = (n - 1) / 3;
            (
                Just(n),
                prop::collection::vec((0..n, any::<bool>()), 0..=f),
                any::<u8>(),
            )
        })
        .prop_map(|(n, byz, split)| {
            let mut behaviors = vec![Behavior::Honest; n];
            for (i, silent) in byz {
                behaviors[i] = if silent {
                    Behavior::Silent
                } else {
                    Behavior::Equivocate
                };
            }
            Shape { behaviors, split }
        })
}

/// Reorderings only: every message is delivered exactly once, in any order;
/// timers fire in any order.
fn reorder_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => any::<u16>().prop_map(Action::Deliver),
        1 => any::<u16>().prop_map(Action::Timer),
    ]
}

/// Everything an asynchronous network and crashing machines can do.
fn chaos_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        120 => any::<u16>().prop_map(Action::Deliver),
        10 => any::<u16>().prop_map(Action::Drop),
        10 => any::<u16>().prop_map(Action::Duplicate),
        10 => any::<u16>().prop_map(Action::Timer),
        1 => any::<u16>().prop_map(Action::Crash),
    ]
}

fn schedule(
    action: impl Strategy<Value = Action>,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(action, len)
}

/// After the adversarial prefix, the network turns fair (GST): every honest
/// node must commit past the highest height any honest node had reached.
fn assert_progress_after_gst(c: &mut Cluster) {
    let target = c.max_height() + 1;
    let events = c.run_fair(30_000, |c| c.min_height() >= target);
    assert!(
        c.min_height() >= target,
        "no progress after GST: heights {:?}, target {target}, views {:?}, {events} fair events, stats {:?}",
        c.heights(),
        c.nodes.iter().map(|n| n.core.view()).collect::<Vec<_>>(),
        c.stats
    );
}

/// With `BITCRAPS_TEST_STATS=1`, prints what a case exercised (heights reached
/// under chaos and after GST, evidence seen, harness counters).
fn show_coverage(c: &Cluster, s: &Shape, chaos_heights: &[u64]) {
    if std::env::var_os("BITCRAPS_TEST_STATS").is_some() {
        eprintln!(
            "n={} {:?}: heights {:?} under chaos, {:?} after GST; evidence {:?}; {:?}",
            c.n(),
            s.behaviors,
            chaos_heights,
            c.heights(),
            c.nodes.iter().map(|n| n.evidence).collect::<Vec<_>>(),
            c.stats
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// Determinism: the same schedule, run twice, gives the same effect trace.
    #[test]
    fn same_schedule_same_run(s in shape(), sched in schedule(chaos_action(), 100..400)) {
        let mut a = Cluster::new(&s.behaviors, s.split);
        a.run(&sched);
        let mut b = Cluster::new(&s.behaviors, s.split);
        b.run(&sched);
        prop_assert_eq!(a.trace.len(), b.trace.len());
        for (k, (x, y)) in a.trace.iter().zip(&b.trace).enumerate() {
            prop_assert_eq!(x, y, "runs diverge at step {}", k);
        }
        prop_assert_eq!(a.chains(), b.chains());
        prop_assert_eq!(&a.stats, &b.stats);
    }

    /// Delivery-order independence of the committed prefix: with up to f silent
    /// or equivocating validators and any delivery order (no loss), honest
    /// chains never conflict, and they grow once delivery is fair.
    #[test]
    fn reordering_never_forks_the_committed_prefix(
        s in shape(),
        sched in schedule(reorder_action(), 300..1200),
    ) {
        let mut c = Cluster::new(&s.behaviors, s.split);
        c.run(&sched);
        c.assert_prefix_consistent();
        let chaos_heights = c.heights();
        assert_progress_after_gst(&mut c);
        show_coverage(&c, &s, &chaos_heights);
        c.assert_prefix_consistent();
        prop_assert!(c.stats.commits_checked > 0);
    }

    /// Honest validators never need a timer: whatever order their messages
    /// arrive in (none lost), every view completes by itself, so the pool of
    /// undelivered events never runs dry and heights keep growing. A node
    /// that waits for something already delivered (as the next leader once
    /// did for a parent whose certificate overtook its proposal) shows up as
    /// an empty pool: only a timeout would move it.
    #[test]
    fn honest_nodes_never_wait_for_a_timer(
        n in prop_oneof![3 => Just(4usize), 1 => Just(7usize)],
        picks in prop::collection::vec(any::<u16>(), 600..1200),
    ) {
        let mut c = Cluster::honest(n);
        for (i, k) in picks.iter().enumerate() {
            prop_assert!(
                c.pending() > 0,
                "stuck after {i} deliveries without a timer: heights {:?}, views {:?}",
                c.heights(),
                c.nodes.iter().map(|n| n.core.view()).collect::<Vec<_>>()
            );
            c.step(Action::Deliver(*k));
        }
        c.assert_prefix_consistent();
        prop_assert!(c.min_height() >= 2, "heights {:?}", c.heights());
    }

    /// Views and committed heights of every honest core never decrease, checked
    /// after every single step (the harness also checks inside each step).
    #[test]
    fn views_and_tips_never_go_back(
        s in shape(),
        sched in schedule(
            prop_oneof![
                40 => any::<u16>().prop_map(Action::Deliver),
                6 => any::<u16>().prop_map(Action::Drop),
                6 => any::<u16>().prop_map(Action::Duplicate),
                8 => any::<u16>().prop_map(Action::Timer),
            ],
            100..500,
        ),
    ) {
        let mut c = Cluster::new(&s.behaviors, s.split);
        let honest = c.honest_nodes();
        let mut last: Vec<(u64, u64)> = vec![(0, 0); c.n()];
        for a in sched {
            c.step(a);
            for &i in &honest {
                let core = &c.nodes[i].core;
                let now = (core.view(), core.committed().height);
                prop_assert!(now.0 >= last[i].0, "node {} view {} -> {}", i, last[i].0, now.0);
                prop_assert!(now.1 >= last[i].1, "node {} height {} -> {}", i, last[i].1, now.1);
                last[i] = now;
            }
        }
        prop_assert!(honest.iter().all(|&i| c.nodes[i].core.view() >= 1));
    }

    /// Idempotency: delivering every message twice in a row yields exactly the
    /// same run (trace, chains) as delivering it once; the second copy changes
    /// neither view nor tip and produces at most a certificate for the sender.
    #[test]
    fn duplicate_delivery_is_idempotent(
        s in shape(),
        sched in schedule(chaos_action(), 100..400),
    ) {
        let mut once = Cluster::new(&s.behaviors, s.split);
        once.run(&sched);
        let mut twice = Cluster::new(&s.behaviors, s.split);
        twice.dup_all = true;
        twice.run(&sched);
        prop_assert!(twice.stats.duplicates_checked > 0);
        prop_assert_eq!(once.trace.len(), twice.trace.len());
        for (k, (x, y)) in once.trace.iter().zip(&twice.trace).enumerate() {
            prop_assert_eq!(x, y, "duplicates changed the run at step {}", k);
        }
        prop_assert_eq!(once.chains(), twice.chains());
    }

    /// Safety under everything at once: drops, reorders, duplicates, crashes with
    /// loss of un-synced WAL entries, and up to f byzantine validators. Honest
    /// commits never conflict (checked at each commit), and after GST every
    /// honest node makes progress.
    #[test]
    fn no_conflicting_commits_under_drops_duplicates_and_crashes(
        s in shape(),
        sched in schedule(chaos_action(), 300..1200),
    ) {
        let mut c = Cluster::new(&s.behaviors, s.split);
        c.run(&sched);
        c.assert_prefix_consistent();
        let chaos_heights = c.heights();
        assert_progress_after_gst(&mut c);
        show_coverage(&c, &s, &chaos_heights);
        c.assert_prefix_consistent();
        prop_assert!(c.stats.commits_checked > 0);
    }

    /// Every honest proposal carries the justification of *its own* parent
    /// (the parent's notarization and the nullifications of the skipped views).
    /// Fails today: see `core_rules::bug_proposal_justification_matches_the_block_parent`.
    #[test]
    fn proposals_carry_the_justification_of_their_parent(
        s in shape(),
        sched in schedule(chaos_action(), 300..1200),
    ) {
        let mut c = Cluster::new(&s.behaviors, s.split);
        c.strict_justification = true;
        c.run(&sched);
        c.run_fair(3_000, |c| c.min_height() >= 3);
    }

    /// Fork choice: every honest proposal extends the parent `select_parent`
    /// must pick (checked per proposal by the harness), and every committed
    /// chain is linked: heights 1, 2, 3..., each block's parent the previous one.
    #[test]
    fn fork_choice_is_consistent(s in shape(), sched in schedule(chaos_action(), 200..500)) {
        let mut c = Cluster::new(&s.behaviors, s.split);
        c.run(&sched);
        c.run_fair(3_000, |c| c.min_height() >= 3);
        prop_assert!(c.stats.proposals_checked > 0);
        let genesis = c.genesis_block.id();
        for &i in &c.honest_nodes() {
            let mut parent = genesis;
            for (k, b) in c.nodes[i].chain.iter().enumerate() {
                prop_assert_eq!(b.header.height, k as u64 + 1);
                prop_assert_eq!(b.header.parent, parent);
                parent = b.id();
            }
        }
    }
}

/// Liveness sanity: with a fair schedule and no faults, 4 validators commit at
/// least 10 blocks, every view has a notarization (no timeouts needed), and
/// every node commits the same chain.
#[test]
fn four_honest_nodes_commit_ten_blocks() {
    let mut c = Cluster::honest(4);
    let events = c.run_fair(20_000, |c| c.min_height() >= 10);
    assert!(
        c.min_height() >= 10,
        "heights {:?} after {events} events",
        c.heights()
    );
    c.assert_prefix_consistent();
    // Optimistic responsiveness: with instant links no view timer had to fire.
    assert_eq!(c.stats.timers, 0, "a view timed out with an honest leader");
}

/// Liveness with f silent validators in a 7-validator set: views led by a silent
/// validator time out and are nullified, the others commit.
#[test]
fn seven_nodes_with_two_silent_still_commit() {
    let mut b = vec![Behavior::Honest; 7];
    b[2] = Behavior::Silent;
    b[5] = Behavior::Silent;
    let mut c = Cluster::new(&b, 0);
    let events = c.run_fair(50_000, |c| c.min_height() >= 6);
    assert!(
        c.min_height() >= 6,
        "heights {:?} after {events} events",
        c.heights()
    );
    c.assert_prefix_consistent();
}

/// A block at height 1 on genesis (or on `parent`), with a finalization by a quorum.
fn forged_commit(c: &Cluster, view: u64, parent: Option<&Block>) -> CommittedBlock {
    let g = c.genesis_block.clone();
    let parent = parent.unwrap_or(&g);
    let block = harness::block(&parent.header, parent.id(), view, (view % 4) as u16);
    let finalization =
        harness::certificate(&c.keys, &[0, 1, 2], VoteBody::finalize(view, block.id()));
    CommittedBlock {
        block,
        finalization,
    }
}

/// Self-test of the checker: two honest nodes committing different blocks at
/// the same height is reported as a safety violation (so the agreement check
/// is live, not vacuous).
#[test]
#[should_panic(expected = "SAFETY")]
fn harness_catches_conflicting_commits() {
    let mut c = Cluster::honest(4);
    let a = forged_commit(&c, 1, None);
    let b = forged_commit(&c, 2, None);
    c.check_commit_for_test(0, a);
    c.check_commit_for_test(1, b);
}

/// Self-test of the checker: a commit that does not extend the node's tip is
/// caught.
#[test]
#[should_panic(expected = "does not extend its tip")]
fn harness_catches_a_commit_that_skips_the_tip() {
    let mut c = Cluster::honest(4);
    let a = forged_commit(&c, 1, None);
    let mut b = forged_commit(&c, 2, Some(&a.block));
    // Height 2 on a block the node never committed.
    b.block.header.height = 1;
    c.check_commit_for_test(0, b);
}
