//! Cluster-level simulation campaigns (issue: consensus core and deterministic
//! simulator). Each campaign runs the real consensus core, signing guard and
//! crash-consistent WAL for many seeds under seeded faults and checks safety,
//! liveness after healing, and determinism.

use bitcraps_chaos::{plan::Behavior, run_campaign, run_seed, Campaign, CampaignReport};

fn campaign(n: usize, f: usize, seeds: u64, swarm: bool) -> Campaign {
    Campaign {
        validators: n,
        byzantine: f,
        first_seed: 1,
        seeds,
        swarm,
        unsafe_beyond_threshold: false,
        behavior: None,
        determinism_every: 10,
        threads: 2,
        verbose: false,
    }
}

fn assert_clean(r: &CampaignReport) {
    let failures: Vec<String> = r
        .failing_seeds
        .iter()
        .map(|f| {
            format!(
                "{} [{}] {}\n  replay: {}",
                f.seed, f.kind, f.detail, f.replay
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    assert_eq!(r.safety_violations, 0);
    assert_eq!(r.liveness_failures, 0);
    assert_eq!(r.determinism_mismatches, 0);
    assert_eq!(r.seeds_without_commit, 0, "every seed must commit");
    assert!(r.min_committed_height > 0);
}

#[test]
fn n4_f1_swarm_is_safe_live_and_deterministic() {
    let r = run_campaign(&campaign(4, 1, 200, true)).unwrap();
    assert_eq!(r.seeds_run, 200);
    assert_clean(&r);
    // Byzantine behaviours were actually exercised.
    assert!(
        r.evidence_reported > 0,
        "no equivocation evidence in 200 seeds"
    );
    assert!(
        r.garbage_frames_rejected > 0,
        "no garbage frames in 200 seeds"
    );
}

#[test]
fn n4_f1_standard_plan_is_safe_and_live() {
    assert_clean(&run_campaign(&campaign(4, 1, 100, false)).unwrap());
}

#[test]
fn n7_f2_swarm_is_safe_live_and_deterministic() {
    assert_clean(&run_campaign(&campaign(7, 2, 100, true)).unwrap());
}

#[test]
fn each_byzantine_behavior_alone_is_tolerated() {
    for b in bitcraps_chaos::plan::ALL_BEHAVIORS {
        let mut c = campaign(4, 1, 6, true);
        c.behavior = Some(b);
        c.determinism_every = 0;
        let r = run_campaign(&c).unwrap();
        assert_eq!(r.failing_seeds.len(), 0, "{b:?}: {:?}", r.failing_seeds);
    }
}

#[test]
fn beyond_threshold_twins_are_caught_by_the_checker() {
    // n = 4 tolerates f = 1. With two twinned validators each side of a
    // partition has a quorum of 3 keys, so both sides finalize different blocks:
    // the safety checker must see it.
    let mut c = campaign(4, 2, 8, false);
    c.unsafe_beyond_threshold = true;
    c.behavior = Some(Behavior::Twin);
    let r = run_campaign(&c).unwrap();
    assert!(
        r.safety_violations > 0,
        "checker found no violation beyond the threshold"
    );
    assert!(r.failing_seeds.iter().any(|f| f.kind == "safety"
        && f.replay.contains("--unsafe-beyond-threshold")
        && f.replay.contains("--behavior Twin")));
}

#[test]
fn beyond_threshold_requires_the_flag() {
    let c = campaign(4, 2, 1, false);
    let err = run_campaign(&c).unwrap_err();
    assert!(err.contains("--unsafe-beyond-threshold"), "{err}");
}

#[test]
fn a_seed_replays_identically_and_seeds_differ() {
    let a = run_seed(4, 1, 42, true, None);
    let b = run_seed(4, 1, 42, true, None);
    let c = run_seed(4, 1, 43, true, None);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.plan, b.plan);
    assert_eq!(a.min_committed_height, b.min_committed_height);
    assert_ne!(a.trace_hash, c.trace_hash);
}
